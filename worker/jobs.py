"""One job's box: its folder, what it mounts, its limits, the line that hands it the job, and how it starts."""

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from grader.registry import get_lab
from labs.models import Evaluation, Lab
from worker.datasets import DatasetUnavailable, require_box_readable
from worker.sandbox import ForkTemplate, Limits, Mount, RunningSandbox, Sandbox
from worker.sandbox.account import sandbox_user
from worker.verdicts import JOB, OUTPUT_FILES, RESULT_MAX_BYTES


def grader_options(lab: Lab) -> dict:
    return {str(k): str(v) for k, v in (lab.evaluator_options or {}).items() if not str(k).startswith("judge_")}


def box_gid() -> int:
    return sandbox_user(settings.SANDBOX_USER).gid


def new_job_dir() -> Path:
    """A fresh job folder, the worker's alone (0700), holding an empty submission folder that only the box's group
    may read, and an empty output folder the box never sees (its output is copied there after the run)."""
    gid = box_gid()
    job_dir = Path(settings.WORKER_CACHE_DIR) / "jobs" / uuid.uuid4().hex
    job_dir.mkdir(parents=True, mode=0o700)
    (job_dir / "submission").mkdir(mode=0o750)
    os.chown(job_dir / "submission", -1, gid)
    (job_dir / "out").mkdir(mode=0o700)
    return job_dir


def fill_submission(evaluation: Evaluation, job_dir: Path) -> None:
    """Copy the artifact from private storage into the job; a warm sandbox sees it through its bind mount."""
    submission_dir = job_dir / "submission"
    gid = box_gid()
    for item in evaluation.submission.files:
        target = submission_dir / item["name"]
        with default_storage.open(item["key"], "rb") as source, target.open("wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)
        os.chown(target, -1, gid)
        target.chmod(0o640)


def mounts_for(lab: Lab, job_dir: Path, data_dir: Path) -> list[Mount]:
    mounts = [
        Mount(job_dir / "submission", f"{JOB}/submission"),
        Mount(data_dir, f"{JOB}/data", shared=True),
        Mount(job_dir / "out", f"{JOB}/out", writable=True),
    ]
    base = base_model_dir(lab)
    if base is not None:
        require_box_readable(base, box_gid())
        mounts.append(Mount(base, f"{JOB}/base-model", shared=True))
    return mounts


def base_model_dir(lab: Lab) -> Path | None:
    """The node's copy of the lab's registered base model (a lab that declares it needs one): provisioned with the
    node, never downloaded, named by the registration's folder (a name under BASE_MODELS_DIR, or absolute).

    A folder that is missing, or whose config.json is not the one registered with the lab, is the platform's
    fault: the node would grade on another model than the one the uploads were checked against.
    """
    if not get_lab(lab.kind).needs_base_model:
        return None
    registered = lab.base_model
    if registered is None:
        raise DatasetUnavailable(f"lab {lab.slug} has no base model registered; staff register one on its page")
    base = Path(settings.BASE_MODELS_DIR) / registered.folder  # an absolute folder replaces BASE_MODELS_DIR
    config = base / "config.json"
    if not config.is_file():
        raise DatasetUnavailable(f"the base model {registered.name} of lab {lab.slug} is not on this node ({base})")
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    if digest != registered.config_sha256:
        raise DatasetUnavailable(
            f"the base model folder {base} on this node has a config.json of sha256 {digest[:12]}…, but lab "
            f"{lab.slug} registered {registered.name} with {registered.config_sha256[:12]}…; provision the "
            "registered model on this node"
        )
    return base


def job_line(lab: Lab, *, seed: int = 0) -> bytes:
    options = grader_options(lab)
    for key in ("base_model", "base_model_name", "base_config_sha256"):
        options.pop(key, None)
    if get_lab(lab.kind).needs_base_model and lab.base_model is not None:
        options["base_model"] = f"{JOB}/base-model"
        options["base_model_name"] = lab.base_model.name
        options["base_config_sha256"] = lab.base_model.config_sha256
    job = {
        "submission": f"{JOB}/submission",
        "data": f"{JOB}/data",
        "out": f"{JOB}/out",
        "device": settings.GRADER_DEVICE,
        "seed": seed,
        "options": options,
    }
    return (json.dumps(job) + "\n").encode()


def limits_for(lab: Lab) -> Limits:
    gpu: bool | str = settings.GRADER_GPU_ID if settings.GRADER_DEVICE == "cuda" else False
    return Limits(
        wall_seconds=float(lab.time_limit_s),
        memory_bytes=lab.memory_limit_mb * 1024 * 1024,
        pids=256,
        file_size_bytes=256 * 1024 * 1024,
        cpus=settings.SANDBOX_CPUS,
        output_bytes=RESULT_MAX_BYTES * 8,
        output_files=256,
        output_names=OUTPUT_FILES,
        gpu=gpu,
    )


def warm_key(lab: Lab, data_dir: Path) -> tuple:
    """What a box started ahead was started for: a job whose key differs never runs in it."""
    base = lab.base_model.config_sha256 if lab.base_model_id else ""
    return (
        lab.kind,
        lab.pk,
        str(data_dir),
        lab.time_limit_s,
        lab.memory_limit_mb,
        json.dumps(grader_options(lab), sort_keys=True),
        str(base_model_dir(lab)),
        base,
        settings.GRADER_DEVICE,
        settings.SANDBOX_CPUS,
    )


def start_sandbox(
    sandbox: Sandbox, lab: Lab, job_dir: Path, data_dir: Path, *, warm_cuda: bool = False
) -> RunningSandbox:
    """Start the box of one job of ``lab``: it warms up (imports, the dataset verified) and waits for its job line."""
    command = ["python", "-m", "grader", "serve-one", "--lab", lab.kind, "--data", f"{JOB}/data"]
    if warm_cuda:
        command.append("--warm-cuda")
    # Where the backend can, the box is forked from a server of the lab that did these imports once.
    template = ForkTemplate(
        ("python", "-m", "grader", "fork-server", "--lab", lab.kind, "--data", f"{JOB}/data"), warm_cuda
    )
    return sandbox.start(command, mounts_for(lab, job_dir, data_dir), limits_for(lab), template=template)
