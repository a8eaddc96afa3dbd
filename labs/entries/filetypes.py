"""What an uploaded entry file really is, from its first bytes (its name and the browser's type are not trusted)."""

from courses.pdfcheck import looks_like_pdf


def _audio(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def _image(head: bytes) -> str | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def _pdf(head: bytes) -> str | None:
    # Only a first sight: the report is then parsed by the one PDF rule (courses.pdfcheck) in a limited child.
    return "pdf" if looks_like_pdf(head) else None


def _notebook(head: bytes) -> str | None:
    return "ipynb" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") else None


# The formats a browser may show inline (audio player, image) and the type they are served under. A PDF is not among
# them: browsers' PDF viewers refuse a sandboxed document, and a student's PDF is not shown unsandboxed on the site.
INLINE_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
    "flac": "audio/flac",
    "png": "image/png",
    "jpeg": "image/jpeg",
}

DETECTORS = {"song": _audio, "plot": _image, "report": _pdf, "notebook": _notebook}
WHAT = {
    "song": "an audio file",
    "plot": "an image",
    "report": "a PDF",
    "notebook": "a Jupyter notebook (.ipynb, which is JSON)",
}


def detect(part: str, head: bytes) -> str | None:
    """The file's format for ``part`` ("wav", "png", "pdf", "ipynb"...), or None when it is not one."""
    return DETECTORS[part](head)
