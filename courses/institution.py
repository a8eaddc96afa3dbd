"""Institution sign-in over OpenID Connect: the provider's metadata, and the two pages of the code flow.

mozilla-django-oidc does the protocol (state, nonce, PKCE, the code exchange, the ID token's signature); what is
added here: the provider is found from its issuer's discovery document (only when someone signs in, so a provider
that is down never stops password sign-in or a start), and a refusal is said in plain words on the sign-in page.
Who the signed-in person is lives in courses/identities.py, the backend in courses/backends.py.
"""

import logging
from functools import lru_cache

import requests
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.shortcuts import redirect
from django.views.generic import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

LOGGER = logging.getLogger(__name__)


def is_configured() -> bool:
    return bool(settings.OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def institution_name() -> str:
    return settings.INSTITUTION_NAME or "your institution"


@lru_cache(maxsize=8)
def _metadata(issuer: str) -> dict:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
    response.raise_for_status()
    metadata = response.json()
    # OpenID Connect Discovery 1.0, 4.3: a document naming another issuer is not this provider's.
    if metadata.get("issuer") != issuer:
        raise ImproperlyConfigured(f"{url} names the issuer {metadata.get('issuer')!r}, not {issuer!r}")
    return metadata


def provider_metadata() -> dict:
    """The configured provider's discovery document, fetched once per process (a failure is not remembered)."""
    return _metadata(settings.OIDC_ISSUER)


def is_institution_callback(request, credentials) -> bool:
    """django-axes's whitelist: the callback's authentication is no password attempt, so it never counts as a
    failed password nor is refused by a password lockout. Only the callback passes a nonce to authenticate()."""
    return bool(credentials) and "nonce" in credentials


class InstitutionSignIn(OIDCAuthenticationRequestView):
    """Sends her to the institution's sign-in page."""

    def __init__(self, **kwargs):
        # The parent reads fixed endpoints from settings here; ours come from discovery, when asked.
        View.__init__(self, **kwargs)

    @property
    def OIDC_RP_CLIENT_ID(self):  # noqa: N802 - the parent's attribute name
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_OP_AUTH_ENDPOINT(self):  # noqa: N802
        return provider_metadata()["authorization_endpoint"]

    def get(self, request):
        if not is_configured():
            messages.error(request, "Sign-in with an institution account is not set up on this site.")
            return redirect("login")
        try:
            provider_metadata()
        except (requests.RequestException, ValueError, KeyError, ImproperlyConfigured):
            LOGGER.exception("the OpenID Connect provider %s could not be reached", settings.OIDC_ISSUER)
            messages.error(
                request,
                f"The sign-in service of {institution_name()} does not answer. Try again in a few minutes.",
            )
            return redirect("login")
        return super().get(request)


class InstitutionCallback(OIDCAuthenticationCallbackView):
    """Where the institution sends her back: signs her in, or says on the sign-in page why not."""

    def login_failure(self):
        reason = getattr(self.request, "institution_sign_in_refusal", None) or (
            f"Signing in with {institution_name()} did not succeed. Try again; if it keeps failing, ask your "
            "course staff."
        )
        messages.error(self.request, reason)
        return redirect("login")
