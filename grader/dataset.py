"""The hidden-dataset format: a folder of files and a manifest.json that lists each file with its sha256."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from grader.errors import GraderFault

MANIFEST = "manifest.json"
FORMAT = 1


@dataclass
class Manifest:
    name: str
    lab: str
    demo_only: bool
    description: str
    files: dict[str, str]
    splits: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    hash: str = ""  # sha256 of the manifest.json bytes: the dataset's identity
    path: Path = Path()  # the dataset folder

    def file(self, relative: str) -> Path:
        """The path of a file the manifest lists (and nothing else)."""
        if relative not in self.files:
            raise GraderFault("dataset_corrupt", f"the dataset has no file {relative!r}")
        return self.path / relative


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_below(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            raise GraderFault("dataset_corrupt", f"the dataset holds a symbolic link {rel!r}")
        if path.is_file() and rel != MANIFEST:
            found[rel] = path
    return found


def write_manifest(
    directory: Path | str,
    *,
    name: str,
    lab: str,
    demo_only: bool,
    description: str,
    splits: dict[str, Any],
    meta: dict[str, Any] | None = None,
) -> Manifest:
    """Hash every file below ``directory`` and write its manifest.json."""
    directory = Path(directory)
    files = {rel: sha256_file(path) for rel, path in _files_below(directory).items()}
    data = {
        "format": FORMAT,
        "name": name,
        "lab": lab,
        "demo_only": demo_only,
        "description": description,
        "files": files,
        "splits": splits,
        "meta": meta or {},
    }
    (directory / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return load_manifest(directory, verify=False)


def load_manifest(directory: Path | str, *, verify: bool = True) -> Manifest:
    """Read a dataset's manifest; with ``verify`` every file must be present, unchanged and listed."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise GraderFault("dataset_corrupt", f"no {MANIFEST} in the dataset folder {directory}")
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise GraderFault("dataset_corrupt", f"{path} is not valid JSON: {exc}")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise GraderFault("dataset_corrupt", f"{path} is not a format-{FORMAT} manifest")
    for key, kind in (("name", str), ("lab", str), ("files", dict), ("splits", dict)):
        if not isinstance(data.get(key), kind):
            raise GraderFault("dataset_corrupt", f"{path} lacks a valid {key!r}")
    for rel in data["files"]:
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or rel == MANIFEST:
            raise GraderFault("dataset_corrupt", f"{path} lists an unsafe file name {rel!r}")
    manifest = Manifest(
        name=data["name"],
        lab=data["lab"],
        demo_only=bool(data.get("demo_only", False)),
        description=str(data.get("description", "")),
        files=dict(data["files"]),
        splits=data["splits"],
        meta=data.get("meta") or {},
        hash=hashlib.sha256(raw).hexdigest(),
        path=directory,
    )
    if verify:
        verify_files(manifest)
    return manifest


def verify_files(manifest: Manifest) -> None:
    present = _files_below(manifest.path)
    missing = sorted(set(manifest.files) - set(present))
    extra = sorted(set(present) - set(manifest.files))
    changed = sorted(
        rel for rel in manifest.files if rel in present and sha256_file(present[rel]) != manifest.files[rel]
    )
    problems = []
    if missing:
        problems.append(f"missing files {missing[:5]}")
    if extra:
        problems.append(f"files not in the manifest {extra[:5]}")
    if changed:
        problems.append(f"files whose sha256 differs from the manifest {changed[:5]}")
    if problems:
        raise GraderFault("dataset_corrupt", f"dataset {manifest.name!r} at {manifest.path}: " + "; ".join(problems))


def pack_dataset(directory: Path, archive_path: Path) -> None:
    """A dataset folder as a gzip tar (what registering a dataset stores)."""
    with tarfile.open(archive_path, "w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
