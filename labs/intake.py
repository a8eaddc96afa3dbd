"""Receiving an artifact: the upload streamed to disk within size and time bounds, unpacked, and header-checked.

Everything here is cheap and header-level; anything that parses a complex format runs in a child process.
"""

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler

from courses.ratelimit import upload_window
from grader.dataset import sha256_file
from grader.errors import GraderFault, Rejected
from grader.limited_child import ChildLimits, run_limited
from grader.registry import get_lab
from labs import unzip

logger = logging.getLogger(__name__)

UNZIP_SECONDS = 60
UNZIP_MEMORY_BYTES = 512 * 1024 * 1024


class UploadRefused(Exception):
    """The one refusal of an upload, whoever refuses it (the deadline rule, her rate, the intake, the store): the
    message tells the student what is wrong and what to do; web form and token API show it as it is."""

    def __init__(self, message: str, *, code: str = "bad_upload", status: int = 400, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after


def admit(*, member) -> None:
    """The per-student upload rate, whichever path the upload comes through; UploadRefused (429) past it.

    Counted before the body is read, so refused and failed uploads count too: that is what the limit is for.
    """
    window = upload_window(member)
    if window.exceeded():
        wait = window.retry_after()
        raise UploadRefused(
            f"You have sent {window.limit} uploads in the last {window.seconds} seconds, the most allowed; wait "
            f"{wait} seconds and send it again.",
            code="rate_limited",
            status=429,
            retry_after=wait,
        )
    window.hit()


class BoundedUploadHandler(TemporaryFileUploadHandler):
    """Streams every file to disk, stopping when the total passes the size limit or the body takes too long."""

    def __init__(self, request, *, max_bytes: int, started: float, max_seconds: float):
        super().__init__(request)
        self.max_bytes = max_bytes
        self.started = started
        self.max_seconds = max_seconds
        self.total = 0
        self.problem: str | None = None

    def receive_data_chunk(self, raw_data, start):
        self.total += len(raw_data)
        if self.total > self.max_bytes:
            self.problem = "too_large"
            raise StopUpload(connection_reset=True)
        if time.monotonic() - self.started > self.max_seconds:
            self.problem = "too_slow"
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)


def install_handler(request, *, max_bytes: int) -> BoundedUploadHandler:
    handler = BoundedUploadHandler(
        request, max_bytes=max_bytes, started=request.received_monotonic, max_seconds=settings.UPLOAD_BODY_SECONDS
    )
    request.upload_handlers = [handler]
    return handler


@dataclass
class Artifact:
    """A checked artifact in a private temporary folder, ready to be stored."""

    directory: Path
    files: list[dict] = field(default_factory=list)  # [{name, sha256, size}]
    sha256: str = ""
    size: int = 0
    summary: dict = field(default_factory=dict)

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def identity(files: list[dict]) -> str:
    """The artifact's identity: sha256 of the sorted list of (name, sha256 of the file)."""
    pairs = sorted((item["name"], item["sha256"]) for item in files)
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def _plain_name(name: str) -> bool:
    return bool(name) and not any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in name)


def _describe(names) -> str:
    return " and ".join(sorted(names))


def collect(
    *,
    kind: str,
    uploads: dict,
    max_bytes: int,
    handler: BoundedUploadHandler | None = None,
    options: dict | None = None,
) -> Artifact:
    """Turn the request's files into a checked artifact folder, or raise UploadRefused (nothing is kept)."""
    if handler is not None and handler.problem == "too_large":
        raise UploadRefused(
            f"The upload is larger than this lab's limit of {max_bytes // (1024 * 1024)} MB.",
            code="too_large",
            status=413,
        )
    if handler is not None and handler.problem == "too_slow":
        raise UploadRefused(
            f"The upload took longer than {settings.UPLOAD_BODY_SECONDS // 60} minutes and was stopped; try again "
            "on a faster connection (a slow upload does not extend the deadline).",
            code="too_slow",
            status=408,
        )
    lab = get_lab(kind)
    file_sets = [set(names) for names in lab.artifact_file_sets(options)]
    required = file_sets[0]
    accepted = set().union(*file_sets)
    if not uploads:
        raise UploadRefused(
            f"The upload is empty: send {_describe(required)}, or one .zip holding exactly them.", code="empty"
        )
    directory = Path(tempfile.mkdtemp(prefix="artifact-", dir=settings.FILE_UPLOAD_TEMP_DIR))
    artifact = Artifact(directory=directory)
    try:
        items = list(uploads.items())
        if len(items) == 1 and (items[0][1].name or "").lower().endswith(".zip"):
            _unzip(items[0][1], directory, accepted, max_bytes)
        else:
            for field_name, upload in items:
                name = field_name if field_name in accepted else os.path.basename(upload.name or "")
                if not _plain_name(name) or not _plain_name(field_name):
                    raise UploadRefused("A file name contains control or direction-changing characters; rename it.")
                if name not in accepted:
                    raise UploadRefused(
                        f"Unexpected file {name!r}: a {lab.title} artifact is exactly {_describe(required)}.",
                        code="wrong_files",
                    )
                target = directory / name
                if target.exists():
                    raise UploadRefused(f"{name} was sent twice.", code="wrong_files")
                _store_upload(upload, target)
        names = {p.name for p in directory.iterdir()}
        if names not in file_sets:
            missing = required - names if names <= required else set()
            alternatives = " or ".join(_describe(s) for s in file_sets)
            raise UploadRefused(
                (f"Missing {_describe(missing)}: " if missing else "")
                + f"a {lab.title} artifact is exactly {alternatives}.",
                code="wrong_files",
            )
        for path in sorted(directory.iterdir()):
            size = path.stat().st_size
            if size == 0:
                raise UploadRefused(f"{path.name} is empty.", code="empty")
            artifact.files.append({"name": path.name, "sha256": sha256_file(path), "size": size})
            artifact.size += size
        if artifact.size > max_bytes:
            raise UploadRefused(
                f"The files add up to more than this lab's limit of {max_bytes // (1024 * 1024)} MB.",
                code="too_large",
                status=413,
            )
        artifact.sha256 = identity(artifact.files)
        try:
            artifact.summary = lab.check(directory, deep=False, options=options)
        except Rejected as exc:
            raise UploadRefused(exc.message, code=exc.code)
        except GraderFault as exc:
            # The lab is misconfigured (e.g. its base model folder is missing): the platform's fault, not hers.
            logger.error("lab %s cannot check uploads: %s", kind, exc.message)
            raise UploadRefused(
                "This lab cannot check uploads right now (the staff have been told); try again later.",
                code="lab_unavailable",
                status=503,
            ) from exc
        return artifact
    except BaseException:
        artifact.cleanup()
        raise


def _store_upload(upload, target: Path) -> None:
    temporary = getattr(upload, "temporary_file_path", None)
    if temporary:
        shutil.move(temporary(), target)
    else:
        with target.open("xb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)


def _unzip(upload, directory: Path, required: set[str], max_bytes: int) -> None:
    with tempfile.TemporaryDirectory(prefix="zip-", dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
        zip_path = Path(scratch) / "upload.zip"
        _store_upload(upload, zip_path)
        done = run_limited(
            "labs.unzip",
            [str(zip_path), str(directory), "--names", ",".join(sorted(required)), "--max-bytes", str(max_bytes)],
            limits=ChildLimits(
                cpu_seconds=UNZIP_SECONDS,
                memory_bytes=UNZIP_MEMORY_BYTES,
                # It writes the files: no one larger than the lab's limit plus the chunk that finds it too large.
                file_size_bytes=max_bytes + unzip.CHUNK,
                wall_seconds=UNZIP_SECONDS,
            ),
            cwd=scratch,
            pythonpath=[str(settings.BASE_DIR)],
        )
        if done.timed_out:
            raise UploadRefused("The .zip took too long to unpack; send the files themselves instead.", code="bad_zip")
        try:
            verdict = json.loads(done.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            verdict = {"ok": False, "error": "the archive could not be unpacked within the limits"}
        if not verdict.get("ok"):
            for path in directory.iterdir():
                path.unlink()
            raise UploadRefused(f"The .zip was refused: {verdict.get('error')}.", code="bad_zip")
