"""The grader as one file a student runs on her own machine: `python grader.pyz check --lab L DIR`.

Its artifact checks read only the files' headers with the standard library, so the zip application needs nothing
installed beyond Python itself. It is built from the grader this site runs, so a check passes at home exactly when
it passes at upload.
"""

import io
import zipfile
from functools import cache
from pathlib import Path

import grader

FILENAME = "grader.pyz"
# The command line of `python -m grader`, started as a zip application.
MAIN = "import sys\n\nfrom grader.cli import main\n\nsys.exit(main())\n"


@cache
def grader_zipapp() -> bytes:
    """The zip application: the grader package's source files and its schema, and a __main__ that runs its CLI."""
    root = Path(grader.__file__).resolve().parent
    buffer = io.BytesIO()
    # A zip application may start with a shebang line (as zipapp writes it); "python grader.pyz" works either way.
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py", MAIN)
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
                archive.write(path, f"grader/{path.relative_to(root).as_posix()}")
    return buffer.getvalue()
