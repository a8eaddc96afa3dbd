"""Fixed-window rate limits kept in Django's cache: failed sign-ins per address and per username, uploads per token."""

import hashlib
import time
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render

# (attempts, seconds); a course can tighten them in settings without touching the code.
SIGN_IN_LIMIT = (10, 300)
API_UPLOAD_LIMIT = (30, 60)


@dataclass(frozen=True)
class Window:
    """One counter: how often ``key`` was seen in the current window of ``seconds``."""

    scope: str
    key: str
    limit: int
    seconds: int

    def _cache_key(self, now: float) -> str:
        # Hashed, so that a username with spaces or odd characters is a valid cache key of bounded length.
        digest = hashlib.sha256(self.key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"ratelimit:{self.scope}:{digest}:{int(now // self.seconds)}"

    def count(self, now: float | None = None) -> int:
        return int(cache.get(self._cache_key(time.time() if now is None else now), 0))

    def exceeded(self, now: float | None = None) -> bool:
        return self.count(now) >= self.limit

    def hit(self, now: float | None = None) -> int:
        """Count one more; returns the new count. ``add`` then ``incr`` keeps it atomic on Redis."""
        key = self._cache_key(time.time() if now is None else now)
        cache.add(key, 0, timeout=self.seconds + 1)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=self.seconds + 1)
            return 1

    def retry_after(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(1, int(self.seconds - now % self.seconds) + 1)


def _limit(name: str, default: tuple[int, int]) -> tuple[int, int]:
    limit, seconds = getattr(settings, name, default)
    return int(limit), int(seconds)


def client_address(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is written by the client unless a trusted proxy replaces it, and the
    # production proxy passes the real address as REMOTE_ADDR.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def sign_in_windows(request) -> list[Window]:
    limit, seconds = _limit("SIGN_IN_RATE_LIMIT", SIGN_IN_LIMIT)
    windows = [Window("sign-in-ip", client_address(request), limit, seconds)]
    username = (request.POST.get("username") or "").strip().lower()
    if username:
        windows.append(Window("sign-in-user", username[:254], limit, seconds))
    return windows


def sign_in_rate_limited(view):
    """Wrap the sign-in view: failed attempts are counted per address and per username; past the limit, 429."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        windows = sign_in_windows(request)
        blocked = [w for w in windows if w.exceeded()]
        if blocked:
            wait = max(w.retry_after() for w in blocked)
            minutes = max(1, round(wait / 60))
            message = (
                f"Too many failed sign-in attempts from this address or for this account. "
                f"Wait {minutes} minute{'s' if minutes != 1 else ''} and try again, or reset your password."
            )
            response = _too_many(request, message)
            response["Retry-After"] = str(wait)
            return response
        response = view(request, *args, **kwargs)
        # LoginView answers a failed attempt by showing the form again (200); a success redirects.
        if response.status_code == 200:
            for window in windows:
                window.hit()
        return response

    wrapped.access_rule = ("public", ())
    return wrapped


def _too_many(request, message: str) -> HttpResponse:
    """The sign-in page again, with the reason on top and status 429."""
    from django.contrib.auth.forms import AuthenticationForm

    messages.error(request, message)
    context = {"form": AuthenticationForm(request), "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=429)


def api_upload_rate_limited(view):
    """Limit the token API's uploads per token (POST only); past the limit a 429 JSON error, nothing read."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        token = getattr(request, "token", None)
        if request.method == "POST" and token is not None:
            limit, seconds = _limit("API_UPLOAD_RATE_LIMIT", API_UPLOAD_LIMIT)
            window = Window("api-upload", str(token.pk), limit, seconds)
            if window.exceeded():
                wait = window.retry_after()
                response = JsonResponse(
                    {
                        "error": {
                            "code": "rate_limited",
                            "message": (
                                f"This token has sent {limit} uploads in the last {seconds} seconds, the most allowed; "
                                f"wait {wait} seconds and send it again."
                            ),
                        }
                    },
                    status=429,
                )
                response["Retry-After"] = str(wait)
                return response
            window.hit()
        return view(request, *args, **kwargs)

    return wrapped
