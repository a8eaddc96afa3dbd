"""The tool's private keys are encrypted at rest: the database holds no PEM, the migration seals keys stored before,
and a production site does not start without the encryption key."""

import importlib
import os
import subprocess
import sys

from django.apps import apps
from django.db import connection

from lms import keyring
from lms.models import Registration
from lms.tool import new_key_pair, tool_jwks
from tests.e2e.conftest import REPO

migration = importlib.import_module("lms.migrations.0003_encrypt_tool_private_keys")


def stored_key(registration) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tool_private_key FROM lms_registration WHERE id = %s", [registration.pk])
        return cursor.fetchone()[0]


def test_a_registered_lms_key_is_stored_encrypted_and_still_signs(deployed):
    registration = deployed.registration
    column = stored_key(registration)
    assert "BEGIN" not in column and "PRIVATE KEY" not in column
    assert registration.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert tool_jwks()["keys"][0]["kid"] == registration.tool_kid  # the public half still comes from it


def test_the_migration_seals_the_keys_stored_in_the_clear_and_its_reverse_opens_them(db):
    pem, kid = new_key_pair()
    registration = Registration.objects.create(
        issuer="https://lms.example",
        client_id="c1",
        auth_login_url="https://lms.example/auth",
        auth_token_url="https://lms.example/token",
        key_set_url="https://lms.example/jwks",
        frame_origin="https://lms.example",
        tool_private_key=pem,  # as stored before encryption
        tool_kid=kid,
    )
    migration.seal_keys(apps, None)
    assert "PRIVATE KEY" not in stored_key(registration)
    registration.refresh_from_db()
    assert registration.private_key_pem == pem
    migration.seal_keys(apps, None)  # run twice, it seals nothing twice
    registration.refresh_from_db()
    assert registration.private_key_pem == pem
    migration.open_keys(apps, None)
    assert stored_key(registration) == pem


def test_a_key_sealed_under_a_retired_encryption_key_opens_while_that_key_is_listed(settings):
    settings.LMS_KEY_ENCRYPTION_KEYS = ["oZ6ktXUSU2tu7ghR2mO3Jpxg3cvHHJ6d3bKRt5pV8GQ="]
    sealed = keyring.seal("-----BEGIN PRIVATE KEY-----x")
    settings.LMS_KEY_ENCRYPTION_KEYS = [
        "6uhHPmavvLdVeDCt4Il3NwbT6oV6t3TXhYoEzkvc8jY=",
        *settings.LMS_KEY_ENCRYPTION_KEYS,
    ]
    assert keyring.unseal(sealed) == "-----BEGIN PRIVATE KEY-----x"


def test_a_production_site_without_the_encryption_key_refuses_to_start():
    env = {k: v for k, v in os.environ.items() if k not in {"ALLOW_INSECURE_SECRET", "LMS_KEY_ENCRYPTION_KEYS"}}
    env.update(DEBUG="0", SECRET_KEY="s" * 50, DJANGO_SETTINGS_MODULE="config.settings")
    probe = "import django; django.setup()"
    refused = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert refused.returncode != 0 and "LMS_KEY_ENCRYPTION_KEYS must be set" in refused.stderr
    env["LMS_KEY_ENCRYPTION_KEYS"] = "6uhHPmavvLdVeDCt4Il3NwbT6oV6t3TXhYoEzkvc8jY="
    started = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
