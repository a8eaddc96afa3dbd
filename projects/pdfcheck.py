"""Checking an uploaded PDF (page count, encryption) in a separate, resource-limited process.

PDF parsers have had infinite loops and memory blow-ups on crafted files, so the web process never parses one:
``check_pdf`` runs ``python -m projects.pdfcheck FILE`` through ``grader.limited_child`` (an environment without
the web process's secrets; CPU, memory, no-file-write and wall-clock limits), and the child prints
``{"pages": int | null, "encrypted": bool, "error": str | null}`` as one JSON line.
"""

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from grader.limited_child import ChildLimits, run_limited

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
# The header may follow a little junk (some tools write a BOM or a comment first); readers look in the first KB.
MAGIC_WINDOW = 1024
CHILD_LIMITS = ChildLimits(cpu_seconds=10, memory_bytes=768 * 1024 * 1024, file_size_bytes=0, wall_seconds=20)
PROJECT_ROOT = str(Path(__file__).resolve().parents[1])  # where the child imports projects.pdfcheck from


@dataclass(frozen=True)
class PdfCheck:
    pages: int | None
    encrypted: bool
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.encrypted and bool(self.pages)


def looks_like_pdf(head: bytes) -> bool:
    return PDF_MAGIC in head[:MAGIC_WINDOW]


def check_pdf(path: str | Path) -> PdfCheck:
    """Inspect the PDF at ``path`` in a child process; a file the child cannot handle comes back with ``error``."""
    with open(path, "rb") as handle:
        if not looks_like_pdf(handle.read(MAGIC_WINDOW)):
            return PdfCheck(pages=None, encrypted=False, error="not-pdf")
    done = run_limited("projects.pdfcheck", [str(path)], limits=CHILD_LIMITS, pythonpath=[PROJECT_ROOT])
    if done.timed_out:
        logger.warning("PDF check of %s ran past %s s and was killed", path, CHILD_LIMITS.wall_seconds)
        return PdfCheck(pages=None, encrypted=False, error="timeout")
    try:
        payload = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        return PdfCheck(
            pages=payload.get("pages"), encrypted=bool(payload.get("encrypted")), error=payload.get("error")
        )
    except (IndexError, ValueError, AttributeError):
        # Killed by a limit (CPU, memory) or crashed: treat as unreadable and keep the details for the logs.
        logger.warning("PDF check of %s failed: exit %s, stderr %r", path, done.returncode, done.stderr[-2000:])
        return PdfCheck(pages=None, encrypted=False, error="crashed")


def inspect(path: str) -> dict:
    """Run inside the child: parse with pypdf and describe the file."""
    import logging as child_logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    # pypdf logs recoverable oddities at WARNING; the JSON line is the only output the parent reads.
    child_logging.disable(child_logging.CRITICAL)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return {"pages": None, "encrypted": True, "error": None}
        return {"pages": len(reader.pages), "encrypted": False, "error": None}
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        return {"pages": None, "encrypted": False, "error": f"unreadable: {type(exc).__name__}"}
    except MemoryError:
        return {"pages": None, "encrypted": False, "error": "unreadable: too large to parse"}
    except Exception as exc:  # noqa: BLE001 - any parser failure means "not a usable PDF"
        return {"pages": None, "encrypted": False, "error": f"unreadable: {type(exc).__name__}"}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m projects.pdfcheck FILE", file=sys.stderr)
        return 2
    print(json.dumps(inspect(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
