"""The tool's private keys at rest: encrypted with Fernet under ``LMS_KEY_ENCRYPTION_KEYS`` before they reach the
database, decrypted only where a launch, a JWKS or a service request needs them."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PEM_START = "-----BEGIN"


def _fernet() -> MultiFernet:
    keys = list(settings.LMS_KEY_ENCRYPTION_KEYS)
    if not keys:
        # Development only (settings refuse to start a production site without keys): derived from SECRET_KEY.
        keys = [base64.urlsafe_b64encode(hashlib.sha256(f"lms-keys:{settings.SECRET_KEY}".encode()).digest())]
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"LMS_KEY_ENCRYPTION_KEYS holds a key that is not a Fernet key: {exc}") from exc


def seal(pem: str) -> str:
    return _fernet().encrypt(pem.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "An LMS tool key cannot be decrypted: LMS_KEY_ENCRYPTION_KEYS no longer holds the key it was sealed with."
        ) from exc
