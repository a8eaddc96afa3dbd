"""Pages opened from an LMS live in its frame: their session cookie must cross sites, and the LMS may frame them."""

import re

from django.conf import settings

from lms.launch import FRAME_ORIGIN_KEY

_FRAME_ANCESTORS = re.compile(r"frame-ancestors [^;]*")


class EmbeddedInLmsMiddleware:
    """For a session that began with a launch: ``SameSite=None; Secure`` on the session cookie (the LMS's frame is
    another site, where a Lax cookie is not sent) and ``frame-ancestors`` naming that LMS only, instead of 'none'.
    The same framing for a launch's refusal that names its LMS (``response.lms_frame_origin``), so that a student
    whose browser blocks the LMS frame's cookies sees why, and a link out, rather than an empty frame.

    Listed above SessionMiddleware, so that it sees the cookie that middleware sets, and above the CSP and
    X-Frame-Options middleware, so that it sees their headers.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        # A launch's refusal names the LMS of that launch; otherwise the session's launch does.
        origin = getattr(response, "lms_frame_origin", None) or (
            session.get(FRAME_ORIGIN_KEY) if session is not None else None
        )
        if not origin:
            return response
        cookie = response.cookies.get(settings.SESSION_COOKIE_NAME)
        if cookie is not None and cookie.value:
            cookie["samesite"] = "None"
            cookie["secure"] = True
        policy = response.headers.get("Content-Security-Policy")
        if policy:
            response.headers["Content-Security-Policy"] = _FRAME_ANCESTORS.sub(f"frame-ancestors {origin}", policy)
        if "X-Frame-Options" in response.headers:
            del response.headers["X-Frame-Options"]
        return response
