"""Seals the tool keys stored before they were encrypted at rest (lms.keyring); reversed, opens them again."""

from django.db import migrations

from lms import keyring


def seal_keys(apps, schema_editor):
    Registration = apps.get_model("lms", "Registration")
    for registration in Registration.objects.filter(tool_private_key__startswith=keyring.PEM_START):
        registration.tool_private_key = keyring.seal(registration.tool_private_key)
        registration.save(update_fields=["tool_private_key"])


def open_keys(apps, schema_editor):
    Registration = apps.get_model("lms", "Registration")
    for registration in Registration.objects.exclude(tool_private_key__startswith=keyring.PEM_START):
        registration.tool_private_key = keyring.unseal(registration.tool_private_key)
        registration.save(update_fields=["tool_private_key"])


class Migration(migrations.Migration):
    dependencies = [("lms", "0002_section_grade_sync_outcome")]

    operations = [migrations.RunPython(seal_keys, open_keys)]
