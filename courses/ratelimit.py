"""Limits on what can be tried before sign-in, and on uploads per student, kept in Django's cache.

Failed passwords lock a (username, address) pair: that is django-axes's job (settings AXES_*). What it does not
do lives here: a ceiling of failures per address high enough for a campus behind one NAT at a deadline, a delay
(never a refusal) for an account whose failures come from many addresses, per-address and per-target limits on
password reset, joining and invitations, and the per-student upload rate both upload paths share. The client's
address comes from ``client_address``, which believes X-Forwarded-For only from the configured trusted proxies.
"""

import hashlib
import ipaddress
import time
from dataclasses import dataclass
from functools import cache, wraps

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache as django_cache
from django.http import HttpResponse
from django.shortcuts import render

# (count, seconds); each can be tightened or loosened in settings without touching the code.
SIGN_IN_ADDRESS_CEILING = (200, 300)
SIGN_IN_ACCOUNT_FREE_FAILURES = 5
SIGN_IN_ACCOUNT_DELAY_STEP = 0.2  # seconds added per failure past the free ones
SIGN_IN_ACCOUNT_DELAY_CAP = 2.0
PASSWORD_RESET_ADDRESS_LIMIT = (20, 3600)
PASSWORD_RESET_EMAIL_LIMIT = (3, 3600)
JOIN_ADDRESS_LIMIT = (30, 3600)
INVITE_MEMBER_LIMIT = (30, 3600)
UPLOAD_MEMBER_LIMIT = (30, 60)


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
        return int(django_cache.get(self._cache_key(time.time() if now is None else now), 0))

    def exceeded(self, now: float | None = None) -> bool:
        return self.count(now) >= self.limit

    def hit(self, now: float | None = None) -> int:
        """Count one more; returns the new count. ``add`` then ``incr`` keeps it atomic on Redis."""
        key = self._cache_key(time.time() if now is None else now)
        django_cache.add(key, 0, timeout=self.seconds + 1)
        try:
            return django_cache.incr(key)
        except ValueError:  # expired between add and incr
            django_cache.set(key, 1, timeout=self.seconds + 1)
            return 1

    def clear(self, now: float | None = None) -> None:
        django_cache.delete(self._cache_key(time.time() if now is None else now))

    def retry_after(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(1, int(self.seconds - now % self.seconds) + 1)


def _limit(name: str, default: tuple[int, int]) -> tuple[int, int]:
    limit, seconds = getattr(settings, name, default)
    return int(limit), int(seconds)


def window(scope: str, key: str, setting: str, default: tuple[int, int]) -> Window:
    limit, seconds = _limit(setting, default)
    return Window(scope, key, limit, seconds)


@cache
def _trusted(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _is_trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, unless that is a trusted proxy; then the nearest untrusted hop of
    X-Forwarded-For (read from the right: hops left of an untrusted one were written by the client)."""
    # A request made in-process (a test client's login, a signal) may carry no address at all.
    remote = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"  # noqa: S104 - a placeholder, never bound to
    networks = _trusted(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if not networks or not _is_trusted(remote, networks):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed chain: trust only what the proxy itself is
        if not _is_trusted(hop, networks):
            return hop
    return hops[0] if hops else remote


def sign_in_username(request, credentials: dict | None = None) -> str:
    """The username a sign-in is for, as the lockout counts it: trimmed, case-folded (e-mail addresses)."""
    raw = (credentials or {}).get("username") or request.POST.get("username") or ""
    return str(raw).strip().lower()[:254]


def retry_text(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def sign_in_page(request, message: str, *, status: int, retry_after: int) -> HttpResponse:
    """The sign-in page again, with the reason on top (the admin's sign-in shows the same page)."""
    from django.contrib.auth.forms import AuthenticationForm

    messages.error(request, message)
    context = {"form": AuthenticationForm(request), "next": request.POST.get("next", "")}
    response = render(request, "registration/login.html", context, status=status)
    response["Retry-After"] = str(retry_after)
    return response


def locked_out(request, original_response=None, credentials=None) -> HttpResponse:
    """What django-axes answers for a locked (username, address) pair: no word on whether the account exists."""
    cooloff = getattr(settings, "AXES_COOLOFF_TIME", None)
    seconds = int(cooloff.total_seconds()) if cooloff else 3600
    return sign_in_page(
        request,
        f"Too many failed sign-in attempts for this account from here. Wait {retry_text(seconds)}, or reset your "
        "password (that lifts the block at once).",
        status=429,
        retry_after=seconds,
    )


def sign_in_throttled(view):
    """Wrap a sign-in view (the site's and the admin's): a per-address ceiling and a per-account delay."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)
        ceiling = window("sign-in-address", client_address(request), "SIGN_IN_ADDRESS_CEILING", SIGN_IN_ADDRESS_CEILING)
        if ceiling.exceeded():
            wait = ceiling.retry_after()
            return sign_in_page(
                request,
                f"Too many failed sign-in attempts from your network. Wait {retry_text(wait)} and try again.",
                status=429,
                retry_after=wait,
            )
        response = view(request, *args, **kwargs)
        # The sign-in views answer a failed attempt by showing the form again (200); a success redirects.
        if response.status_code == 200:
            ceiling.hit()
            username = sign_in_username(request)
            if username:
                failures = account_window(username).hit()
                extra = failures - int(
                    getattr(settings, "SIGN_IN_ACCOUNT_FREE_FAILURES", SIGN_IN_ACCOUNT_FREE_FAILURES)
                )
                if extra > 0:
                    # Many addresses failing for one account slow each failure down; a right password is never
                    # delayed or refused for it.
                    step = float(getattr(settings, "SIGN_IN_ACCOUNT_DELAY_STEP", SIGN_IN_ACCOUNT_DELAY_STEP))
                    cap = float(getattr(settings, "SIGN_IN_ACCOUNT_DELAY_CAP", SIGN_IN_ACCOUNT_DELAY_CAP))
                    time.sleep(min(cap, step * extra))
        return response

    wrapped.access_rule = ("public", ())
    return wrapped


def account_window(username: str) -> Window:
    return window("sign-in-account", username, "SIGN_IN_ACCOUNT_WINDOW", (10_000, 300))


def clear_sign_in_failures(user) -> None:
    """A password reset lifts every block on the account: the lockouts of its pairs and its failure count."""
    from axes.utils import reset

    for name in {user.get_username().strip().lower(), (user.email or "").strip().lower()} - {""}:
        reset(username=name)
        account_window(name).clear()


def too_many(request, message: str, wait: int, *, template: str, context: dict) -> HttpResponse:
    messages.error(request, message)
    response = render(request, template, context, status=429)
    response["Retry-After"] = str(wait)
    return response


def upload_window(member) -> Window:
    """Uploads of one student, whichever path (web form or token API) they come through."""
    return window("upload", str(member.pk), "UPLOAD_RATE_LIMIT", UPLOAD_MEMBER_LIMIT)
