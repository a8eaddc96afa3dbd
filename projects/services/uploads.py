"""The PDF uploads of the projects app (slides and paper reviews): size, then pages counted by a child process."""

import tempfile

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from projects.pdfcheck import check_pdf

MAX_PDF_BYTES = 20 * 1024 * 1024


def checked_pdf(upload: UploadedFile, *, what: str, exact_pages: int | None = None) -> int:
    """Size, then the page count from the child-process check; returns the number of pages."""
    if upload.size > MAX_PDF_BYTES:
        raise ValidationError(
            f"The file is {upload.size / 1_000_000:.1f} MB; {what} may be at most {MAX_PDF_BYTES // 1_000_000} MB."
        )
    if upload.size == 0:
        raise ValidationError("The file is empty; choose the PDF again.")
    with tempfile.NamedTemporaryFile(suffix=".pdf") as copy:
        for chunk in upload.chunks():
            copy.write(chunk)
        copy.flush()
        result = check_pdf(copy.name)
    upload.seek(0)
    if result.error == "not-pdf":
        raise ValidationError(
            "This file is not a PDF (whatever its name says). Export or print your document to PDF and upload that."
        )
    if result.error in ("timeout", "crashed"):
        raise ValidationError(
            "We could not read this PDF in the time allowed. Re-export it (for example with Print to PDF) and try "
            "again; if it keeps failing, ask a TA."
        )
    if result.error:
        raise ValidationError("This PDF is damaged and cannot be read. Re-export it to PDF and upload it again.")
    if result.encrypted:
        raise ValidationError("This PDF is password-protected. Save a copy without a password and upload that.")
    if not result.pages:
        raise ValidationError("This PDF has no pages.")
    if exact_pages is not None and result.pages != exact_pages:
        raise ValidationError(
            f"{what[0].upper()}{what[1:]} must be exactly {exact_pages} page; your PDF has {result.pages} pages. "
            "Shorten it and upload it again."
        )
    return result.pages


def original_name(upload: UploadedFile) -> str:
    return (upload.name or "upload.pdf").rsplit("/", 1)[-1][:200]
