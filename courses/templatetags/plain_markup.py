"""The one piece of markup the platform's messages carry: `code` between backticks, shown as code, all else escaped."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

BACKTICKED = re.compile(r"`([^`\n]+)`")


@register.filter
def code_spans(text) -> str:
    """Messages are written once for the page, the API and the command line; the page shows their `code` as code."""
    # Escaped first, so nothing a message quotes (a file name she chose) can become markup.
    return mark_safe(BACKTICKED.sub(r"<code>\1</code>", escape(str(text))))  # noqa: S308 - escaped on this line
