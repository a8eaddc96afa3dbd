"""Checking an uploaded PDF in a separate, resource-limited process: the one rule for every PDF a person uploads.

Project slides, paper reviews and lab entries' reports are all read by others (TAs, judges, sponsors), so they are
held to one rule: a PDF that pypdf can parse, that is not also a zip archive, not encrypted, holds no JavaScript,
launch or import action and no embedded file, and has from one to ``MAX_PAGES`` pages.

PDF parsers have had infinite loops and memory blow-ups on crafted files, so the web process never parses one:
``check_pdf`` runs ``python -m courses.pdfcheck FILE`` through ``grader.limited_child`` (an environment without
the web process's secrets; CPU, memory, no-file-write and wall-clock limits), and the child prints
``{"pages": int | null, "encrypted": bool, "active": [str], "error": str | null}`` as one JSON line.
This module imports no Django, so the child starts quickly and needs no settings.
"""

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.limited_child import ChildLimits, run_limited

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
ZIP_MAGIC = b"PK\x03\x04"
# The header may follow a little junk (some tools write a BOM or a comment first); readers look in the first KB.
MAGIC_WINDOW = 1024
MAX_PAGES = 200
CHILD_LIMITS = ChildLimits(cpu_seconds=10, memory_bytes=768 * 1024 * 1024, file_size_bytes=0, wall_seconds=20)
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])  # where the child imports courses.pdfcheck from
# Walking the object graph for active content stops here: a file with more objects is refused, not half-checked.
MAX_OBJECTS = 200_000

# What a PDF may not carry, by the name the student is told. Keys of any dictionary, and action types (/S).
ACTIVE_KEYS = {
    "/JS": "JavaScript",
    "/JavaScript": "JavaScript",
    "/EmbeddedFiles": "embedded files",
    "/EF": "embedded files",
}
ACTIVE_ACTIONS = {
    "/JavaScript": "JavaScript",
    "/Launch": "a launch action",
    "/ImportData": "an import action",
    "/RichMediaExecute": "rich media",
}
ACTIVE_TYPES = {"/EmbeddedFile": "embedded files", "/FileAttachment": "embedded files", "/RichMedia": "rich media"}


@dataclass(frozen=True)
class PdfCheck:
    pages: int | None
    encrypted: bool
    error: str | None
    active: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and not self.encrypted and not self.active and bool(self.pages)


def looks_like_pdf(head: bytes) -> bool:
    # A zip whose bytes also hold a PDF header further in is still a zip to every unzip tool.
    return not head.startswith(ZIP_MAGIC) and PDF_MAGIC in head[:MAGIC_WINDOW]


def check_pdf(path: str | Path) -> PdfCheck:
    """Inspect the PDF at ``path`` in a child process; a file the child cannot handle comes back with ``error``."""
    with open(path, "rb") as handle:
        if not looks_like_pdf(handle.read(MAGIC_WINDOW)):
            return PdfCheck(pages=None, encrypted=False, error="not-pdf")
    done = run_limited("courses.pdfcheck", [str(path)], limits=CHILD_LIMITS, pythonpath=[PROJECT_ROOT])
    if done.timed_out:
        logger.warning("PDF check of %s ran past %s s and was killed", path, CHILD_LIMITS.wall_seconds)
        return PdfCheck(pages=None, encrypted=False, error="timeout")
    try:
        payload = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        active = payload.get("active") or []
        return PdfCheck(
            pages=payload.get("pages"),
            encrypted=bool(payload.get("encrypted")),
            error=payload.get("error"),
            active=tuple(str(item) for item in active) if isinstance(active, list) else ("unknown content",),
        )
    except (IndexError, ValueError, AttributeError):
        # Killed by a limit (CPU, memory) or crashed: treat as unreadable and keep the details for the logs.
        logger.warning("PDF check of %s failed: exit %s, stderr %r", path, done.returncode, done.stderr[-2000:])
        return PdfCheck(pages=None, encrypted=False, error="crashed")


def refusal(result: PdfCheck, *, max_pages: int = MAX_PAGES) -> str | None:
    """Why this PDF is refused, in words that tell her what to do next; None when it is accepted."""
    if result.error == "not-pdf":
        return "This file is not a PDF (whatever its name says). Export or print your document to PDF and upload that."
    if result.error == "zip":
        return (
            "This file is a zip archive with a PDF header in front, not a PDF. Export or print your document to PDF "
            "and upload that."
        )
    if result.error in ("timeout", "crashed"):
        return (
            "We could not read this PDF in the time allowed. Re-export it (for example with Print to PDF) and try "
            "again; if it keeps failing, ask a TA."
        )
    if result.error:
        return "This PDF is damaged and cannot be read. Re-export it to PDF and upload it again."
    if result.encrypted:
        return "This PDF is password-protected. Save a copy without a password and upload that."
    if result.active:
        return (
            f"This PDF carries {' and '.join(dict.fromkeys(result.active))}, which we do not accept in files others "
            "open. Print it to a plain PDF (Print to PDF) and upload that."
        )
    if not result.pages:
        return "This PDF has no pages."
    if result.pages > max_pages:
        return f"This PDF has {result.pages} pages; at most {max_pages} are accepted."
    return None


# The child side: everything below runs in the limited process only.


def active_content(reader, limit: int = MAX_OBJECTS) -> list[str]:
    """What the document reachable from its trailer carries that runs or unpacks in a reader (names, sorted)."""
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    found: set[str] = set()
    seen: set[tuple[int, int]] = set()
    stack = [reader.trailer]
    visited = 0
    while stack:
        node = stack.pop()
        if isinstance(node, IndirectObject):
            ref = (node.idnum, node.generation)
            if ref in seen:
                continue
            seen.add(ref)
            node = node.get_object()
        visited += 1
        if visited > limit:
            raise ValueError("too many objects to check")
        if isinstance(node, DictionaryObject):
            for key in node:
                if key in ACTIVE_KEYS:
                    found.add(ACTIVE_KEYS[key])
            for key, table in (("/S", ACTIVE_ACTIONS), ("/Type", ACTIVE_TYPES), ("/Subtype", ACTIVE_TYPES)):
                value = node.get(key)
                if isinstance(value, str) and value in table:
                    found.add(table[value])
            stack.extend(node.values())
        elif isinstance(node, ArrayObject):
            stack.extend(node)
    return sorted(found)


def inspect(path: str) -> dict:
    """Run inside the child: parse with pypdf and describe the file."""
    import logging as child_logging
    import zipfile

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs recoverable oddities at WARNING; the JSON line is the only output the parent reads.
    child_logging.disable(child_logging.CRITICAL)
    answer = {"pages": None, "encrypted": False, "active": [], "error": None}
    try:
        # A zip with a PDF header put in front opens in an unzip tool as readily as in a PDF reader: not a PDF.
        if zipfile.is_zipfile(path):
            return {**answer, "error": "zip"}
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return {**answer, "encrypted": True}
        return {**answer, "pages": len(reader.pages), "active": active_content(reader)}
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        return {**answer, "error": f"unreadable: {type(exc).__name__}"}
    except MemoryError:
        return {**answer, "error": "unreadable: too large to parse"}
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not a usable PDF"
        return {**answer, "error": f"unreadable: {type(exc).__name__}"}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m courses.pdfcheck FILE", file=sys.stderr)
        return 2
    print(json.dumps(inspect(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
