"""The paper a review is about: checking that its reference is a web link or an arXiv identifier."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

LINK_MAX = 500
# New-style (2007 on) and old-style arXiv identifiers, with an optional version.
ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?$", re.IGNORECASE)


def clean_paper_link(value: str) -> str:
    """A normalised link or ``arXiv:<id>``; anything else is refused with an example of what works."""
    value = value.strip()
    match = ARXIV_ID.match(value)
    if match:
        return f"arXiv:{match.group(1)}{match.group(2) or ''}"
    if len(value) <= LINK_MAX and value.lower().startswith(("https://", "http://")):
        try:
            URLValidator(schemes=["http", "https"])(value)
        except ValidationError:
            pass
        else:
            return value
    raise ValidationError("Give a link to the paper (https://...) or its arXiv id (for example 1706.03762).")


def paper_url(link: str) -> str:
    """Where the reference points on the web, for a clickable link."""
    if link.startswith("arXiv:"):
        return f"https://arxiv.org/abs/{link.removeprefix('arXiv:')}"
    return link
