"""The two ways to sign in: a local password, and an institution account over OpenID Connect."""

import logging

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from courses.identities import InstitutionSignInRefused, account_for_institution_sign_in, password_sign_in_allowed
from courses.institution import is_configured, provider_metadata

LOGGER = logging.getLogger(__name__)


class PasswordBackend(ModelBackend):
    """Django's password sign-in, closed to students when LOCAL_PASSWORDS_FOR_STUDENTS is off."""

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and password_sign_in_allowed(user)


class InstitutionBackend(OIDCAuthenticationBackend):
    """Signs in the person the institution's ID token names, by its issuer and ``sub``."""

    OIDC_RP_IDP_SIGN_KEY = None

    def __init__(self, *args, **kwargs):
        # The parent reads every endpoint here, for every sign-in of any kind; ours are read when used.
        self.UserModel = get_user_model()

    @property
    def OIDC_RP_CLIENT_ID(self):  # noqa: N802 - the parent's attribute names
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_RP_CLIENT_SECRET(self):  # noqa: N802
        return settings.OIDC_RP_CLIENT_SECRET

    @property
    def OIDC_RP_SIGN_ALGO(self):  # noqa: N802
        return settings.OIDC_RP_SIGN_ALGO

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self):  # noqa: N802
        return provider_metadata()["token_endpoint"]

    @property
    def OIDC_OP_USER_ENDPOINT(self):  # noqa: N802
        return provider_metadata().get("userinfo_endpoint")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self):  # noqa: N802
        return provider_metadata()["jwks_uri"]

    def authenticate(self, request, **kwargs):
        # Only the callback passes a nonce: a password sign-in never reaches the provider.
        if request is None or "nonce" not in kwargs or not is_configured():
            return None
        try:
            return super().authenticate(request, **kwargs)
        except InstitutionSignInRefused as refusal:
            request.institution_sign_in_refusal = str(refusal)
        except (SuspiciousOperation, requests.RequestException, jwt.PyJWTError, ImproperlyConfigured, KeyError) as exc:
            LOGGER.warning("institution sign-in refused from %s: %s", request.META.get("REMOTE_ADDR"), exc)
        return None

    def _verify_jws(self, payload, key):
        """The ID token's signature, and (OpenID Connect Core 1.0, 3.1.3.7) its issuer, audience and lifetime,
        which the parent leaves unchecked."""
        algorithm = self.OIDC_RP_SIGN_ALGO
        if jwt.get_unverified_header(payload).get("alg") != algorithm:
            raise SuspiciousOperation(f"the ID token is not signed with {algorithm}")
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[algorithm],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}")
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token refused: issued to several clients, and authorized for another")
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            # OpenID Connect Core 1.0, 5.3.2: a UserInfo answer about another subject must not be used.
            if userinfo.get("sub") != payload["sub"]:
                raise SuspiciousOperation("the UserInfo answer is about another subject")
            claims.update({name: value for name, value in userinfo.items() if name not in {"iss", "aud", "sub"}})
        user = account_for_institution_sign_in(
            issuer=payload["iss"],
            subject=payload["sub"],
            email=claims.get("email") or "",
            email_verified=claims.get("email_verified") is True,
        )
        return user if user.is_active else None
