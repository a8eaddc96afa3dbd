"""The allow-list a rendered notebook passes through before anyone sees it (nh3, with an attribute filter).

No scripts, event handlers or styles survive; no attribute may load anything from elsewhere: the only image
source allowed is a ``data:`` URL of a PNG, JPEG or GIF under a size cap, and links go to http(s) pages or to
anchors in the page. SVG is not on the list (it can carry script), so an SVG output is dropped.
"""

import re

import nh3

MAX_DATA_URL_CHARS = 4 * 1024 * 1024
DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif);base64,[A-Za-z0-9+/=\s]+", re.IGNORECASE)
LINK = re.compile(r"(?:https?://|#)[^\s\"'<>]*", re.IGNORECASE)

TAGS = {
    "a", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl", "dt", "em", "h1", "h2",
    "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "samp", "small", "span", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "id", "title"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


def _keep(tag: str, attribute: str, value: str) -> str | None:
    value = value.strip()
    if tag == "img" and attribute == "src":
        if len(value) <= MAX_DATA_URL_CHARS and DATA_IMAGE.fullmatch(value):
            return value
        return None
    if tag == "a" and attribute == "href":
        return value if LINK.fullmatch(value) else None
    return value


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        attribute_filter=_keep,
        url_schemes={"http", "https", "data"},
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )
