"""The one PDF rule, run in its limited child: what pypdf cannot parse, zips, encryption, active content, pages."""

import io
import zipfile

import pytest
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, TextStringObject

from courses import pdfcheck
from tests.projects.conftest import pdf_bytes


def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_open_action(action: dict) -> bytes:
    """A one-page PDF whose catalogue runs ``action`` when it is opened."""
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer._root_object[NameObject("/OpenAction")] = writer._add_object(DictionaryObject(action))
    return _written(writer)


def pdf_with_javascript() -> bytes:
    return _with_open_action(
        {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject("app.alert('hello');")}
    )


def pdf_with_launch_action() -> bytes:
    return _with_open_action({NameObject("/S"): NameObject("/Launch"), NameObject("/F"): TextStringObject("calc.exe")})


def pdf_with_attachment() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    writer.add_attachment("payload.exe", b"MZ not a program")
    return _written(writer)


def zip_with_pdf_header() -> bytes:
    """A zip (holding a real PDF) with a PDF header put in front: a PDF to a careless sniffer, a zip to unzip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("report.pdf", pdf_bytes(1))
    return b"%PDF-1.7\n" + buffer.getvalue()


def checked(tmp_path, data: bytes) -> pdfcheck.PdfCheck:
    path = tmp_path / "file.pdf"
    path.write_bytes(data)
    return pdfcheck.check_pdf(path)


def test_a_plain_pdf_is_accepted_with_its_pages(tmp_path):
    result = checked(tmp_path, pdf_bytes(3))
    assert result == pdfcheck.PdfCheck(pages=3, encrypted=False, error=None, active=())
    assert result.ok and pdfcheck.refusal(result) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pdf_with_javascript, "This PDF carries JavaScript, which we do not accept"),
        (pdf_with_launch_action, "This PDF carries a launch action, which we do not accept"),
        (pdf_with_attachment, "This PDF carries embedded files, which we do not accept"),
        (lambda: pdf_bytes(1, password="secret"), "This PDF is password-protected."),
        (zip_with_pdf_header, "This file is a zip archive with a PDF header in front, not a PDF."),
        (lambda: b"%PDF-1.7\n" + b"\x00garbage" * 200, "This PDF is damaged and cannot be read."),
        (lambda: b"PK\x03\x04%PDF-1.7\n" + b"\x00" * 100, "This file is not a PDF (whatever its name says)."),
    ],
    ids=["javascript", "launch", "attachment", "encrypted", "zip-with-pdf-header", "unparsable", "zip"],
)
def test_a_pdf_others_should_not_open_is_refused_with_a_reason(tmp_path, data, message):
    result = checked(tmp_path, data())
    assert not result.ok
    assert pdfcheck.refusal(result).startswith(message)


def test_a_pdf_with_too_many_pages_is_refused_with_its_count(tmp_path):
    result = checked(tmp_path, pdf_bytes(6))
    assert result.ok
    assert pdfcheck.refusal(result, max_pages=5) == "This PDF has 6 pages; at most 5 are accepted."
