"""The bundle of one entry for staff: a zip of its files and texts, named for the student's display name."""

import io
import json
import zipfile

from django.core.files.storage import default_storage
from django.utils.text import slugify

from labs.entries.models import LabEntry


def bundle_name(entry: LabEntry) -> str:
    return f"{slugify(entry.member.public_name) or f'student-{entry.member_id}'}-{entry.lab.slug}-entry"


def bundle(entry: LabEntry) -> bytes:
    base = bundle_name(entry)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for item in entry.files.all():
            # Names come from the part and the detected type, never from what she called the file.
            with default_storage.open(item.key, "rb") as handle:
                archive.writestr(f"{base}/{item.part}.{item.extension}", handle.read())
        for part in ("description", "discussion"):
            text = getattr(entry, part)
            if text:
                archive.writestr(f"{base}/{part}.txt", text)
        summary = {
            "student": entry.member.public_name,
            "lab": entry.lab.slug,
            "title": entry.title,
            "submission": entry.submission.number if entry.submission_id else None,
            "late": entry.late,
            "updated_at": entry.updated_at.isoformat(),
        }
        archive.writestr(f"{base}/entry.json", json.dumps(summary, indent=2))
    return buffer.getvalue()
