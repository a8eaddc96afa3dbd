"""Hidden datasets on a grading node: fetched from private storage by hash into a node-local cache."""

import fcntl
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from django.conf import settings

from grader.dataset import load_manifest
from labs.models import EvaluationDataset
from worker.sandbox.account import sandbox_user


class DatasetUnavailable(RuntimeError):
    """The platform's fault: the registered dataset is missing or does not match its hash."""


def restrict_to_box_group(folder: Path, gid: int) -> None:
    """Readable by the box's group and nobody else: folders 0750, files 0640, owned by the worker."""
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        os.chown(path, -1, gid)
        path.chmod(0o750 if path.is_dir() else 0o640)


def cached_dataset(dataset: EvaluationDataset) -> Path:
    """The dataset's folder in the node cache, fetched and verified on first use; safe across processes."""
    root = Path(settings.WORKER_CACHE_DIR) / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    gid = sandbox_user(settings.SANDBOX_USER).gid
    target = root / dataset.manifest_hash
    if (target / "manifest.json").is_file():
        info = target.stat()
        if info.st_gid != gid or info.st_mode & 0o007:  # a cache laid out before the box had a group of its own
            restrict_to_box_group(target, gid)
        return target
    with open(root / f".{dataset.manifest_hash}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "manifest.json").is_file():
            return target
        scratch = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
        try:
            try:
                source = dataset.archive.open("rb")
            except (FileNotFoundError, OSError) as exc:
                raise DatasetUnavailable(f"dataset {dataset.name} archive cannot be read: {exc}") from exc
            with source, tarfile.open(fileobj=source, mode="r:*") as archive:
                archive.extractall(scratch, filter="data")
            manifest = load_manifest(scratch)
            if manifest.hash != dataset.manifest_hash:
                raise DatasetUnavailable(
                    f"dataset {dataset.name}: manifest hash {manifest.hash[:12]} is not the registered "
                    f"{dataset.manifest_hash[:12]}"
                )
            restrict_to_box_group(scratch, gid)
            scratch.rename(target)
        except Exception as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            if isinstance(exc, DatasetUnavailable):
                raise
            raise DatasetUnavailable(f"dataset {dataset.name} could not be prepared: {exc}") from exc
    return target


def require_box_readable(folder: Path, gid: int) -> None:
    """A provisioned folder the box must read (a base model): refuse clearly when the box's user could not."""

    def readable(info, bits_other: int, bits_group: int) -> bool:
        return bool(info.st_mode & bits_other) or (info.st_gid == gid and bool(info.st_mode & bits_group))

    for path in [folder, *folder.rglob("*")]:
        info = path.stat()
        ok = readable(info, 0o005, 0o050) if path.is_dir() else readable(info, 0o004, 0o040)
        if not ok:
            raise DatasetUnavailable(
                f"{path} is not readable by the sandbox user; make the folder readable by it "
                f"(chmod -R a+rX {folder}, or chgrp -R to its group and chmod -R g+rX)"
            )
