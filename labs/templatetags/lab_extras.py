"""Template helpers for lab pages: metric formatting and dictionary look-ups."""

from django import template
from django.utils.safestring import mark_safe

register = template.Library()


@register.simple_tag
def metric(values, key):
    value = (values or {}).get(key)
    if value is None:
        return mark_safe('<span class="muted" title="not available">n/a</span>')
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key, [])


GROUP_NAMES = {
    "LF": "lighter-skinned women",
    "LM": "lighter-skinned men",
    "DF": "darker-skinned women",
    "DM": "darker-skinned men",
}


@register.filter
def group_name(code):
    return f"{GROUP_NAMES[code]} ({code})" if code in GROUP_NAMES else code
