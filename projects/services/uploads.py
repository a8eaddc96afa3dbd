"""The PDF uploads of the projects app (slides and paper reviews): size, then the one PDF rule (courses.pdfcheck)."""

import tempfile

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from courses.pdfcheck import check_pdf, refusal

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
    problem = refusal(result)
    if problem:
        raise ValidationError(problem)
    if exact_pages is not None and result.pages != exact_pages:
        raise ValidationError(
            f"{what[0].upper()}{what[1:]} must be exactly {exact_pages} page; your PDF has {result.pages} pages. "
            "Shorten it and upload it again."
        )
    return result.pages


def original_name(upload: UploadedFile) -> str:
    return (upload.name or "upload.pdf").rsplit("/", 1)[-1][:200]
