"""The course's public data (tunes, faces, style texts), taken from the `mitdeeplearning` 0.7.5 sdist and cached."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from grader.dataset import sha256_file
from grader.errors import GraderFault

PACKAGE = "mitdeeplearning"
VERSION = "0.7.5"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "56b1588e1574d17f3ff07a3d56e3b45f2f568f78a92855141f959f407084242b"
DATA_PREFIX = f"{PACKAGE}-{VERSION}/{PACKAGE}/data/"
# The data we need; anything else in the sdist is ignored.
REQUIRED = ("irish.abc", "faces", "text_styles", "lab3/yoda_test_text.txt")
# Lab 3's notebook scores the string ``yoda_test_text`` of the package's lab3 module; it is read from the source as
# a literal (never imported or run) into data/lab3/.
LAB3_SOURCE = f"{PACKAGE}-{VERSION}/{PACKAGE}/lab3.py"
TEST_TEXT_NAME = "yoda_test_text"
MAX_MEMBER_BYTES = 64 * 1024 * 1024
COMPLETE_MARK = ".complete"


def default_cache_dir() -> Path:
    return Path(os.environ.get("GRADER_CACHE") or Path.cwd() / "var" / "cache")


def course_data(cache_dir: Path | str | None = None) -> Path:
    """The extracted ``data/`` folder of the course package; downloaded once, then served from the cache."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / f"{PACKAGE}-{VERSION}" / "data"
    if (target / COMPLETE_MARK).is_file() and all((target / r).exists() for r in REQUIRED):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / SDIST_NAME
    if not sdist.is_file() or sha256_file(sdist) != SDIST_SHA256:
        _download(sdist)
    _extract_data(sdist, target)
    return target


def _download(dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="coursedata-") as tmp:
        tmpdir = Path(tmp)
        constraint = tmpdir / "constraints.txt"
        # The package's setup.py imports pkg_resources, which setuptools 81 removed; pip prepares the sdist's
        # metadata with an isolated build, so the pin has to reach that build (PIP_BUILD_CONSTRAINT in recent pip,
        # PIP_CONSTRAINT in older ones).
        constraint.write_text("setuptools<81\n")
        env = dict(os.environ, PIP_CONSTRAINT=str(constraint), PIP_BUILD_CONSTRAINT=str(constraint))
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "-d", str(tmpdir / "dl"), f"{PACKAGE}=={VERSION}",
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        got = tmpdir / "dl" / SDIST_NAME
        if proc.returncode != 0 or not got.is_file():
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise GraderFault("course_data_unavailable", f"pip download of {PACKAGE}=={VERSION} failed:\n{tail}")
        digest = sha256_file(got)
        if digest != SDIST_SHA256:
            raise GraderFault(
                "course_data_unavailable", f"{SDIST_NAME} has sha256 {digest}, expected {SDIST_SHA256}; refusing it"
            )
        partial = dest.with_suffix(".partial")
        shutil.copyfile(got, partial)
        partial.replace(dest)


def literal_assignment(source: str, name: str) -> str:
    """The string literal assigned to ``name`` at the top of a Python module's source, read by parsing it."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise GraderFault("course_data_unavailable", f"{LAB3_SOURCE} assigns no string {name}")


def _extract_data(sdist: Path, target: Path) -> None:
    """Extract the package's data folder, refusing links, special files and any path that would escape it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # Staged beside the target so that the final rename is atomic and a half-extracted folder is never used.
    staging = Path(tempfile.mkdtemp(prefix=".data-", dir=target.parent))
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar:
                name = member.name
                if name == LAB3_SOURCE and member.isfile() and member.size <= MAX_MEMBER_BYTES:
                    src = tar.extractfile(member)
                    assert src is not None
                    with src:
                        text = literal_assignment(src.read().decode("utf-8"), TEST_TEXT_NAME)
                    (staging / "lab3").mkdir(exist_ok=True)
                    (staging / "lab3" / "yoda_test_text.txt").write_text(text)
                    continue
                if not name.startswith(DATA_PREFIX):
                    continue
                rel = PurePosixPath(name[len(DATA_PREFIX) :])
                if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                    raise GraderFault("course_data_unavailable", f"unsafe path {name!r} in {SDIST_NAME}")
                dest = staging.joinpath(*rel.parts)
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise GraderFault("course_data_unavailable", f"{name!r} in {SDIST_NAME} is not a regular file")
                if member.size > MAX_MEMBER_BYTES:
                    raise GraderFault("course_data_unavailable", f"{name!r} in {SDIST_NAME} is too large")
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                assert src is not None
                with src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
        missing = [r for r in REQUIRED if not (staging / r).exists()]
        if missing:
            raise GraderFault("course_data_unavailable", f"{SDIST_NAME} lacks data/{', data/'.join(missing)}")
        (staging / COMPLETE_MARK).write_text(SDIST_SHA256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
