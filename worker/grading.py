"""Grading one evaluation: claim it, fetch what it needs, run the grader in the sandbox, store what it says.

Only the holder of the current claim token may write the result, so a redelivered or re-sent message can never
grade twice; every path ends the evaluation in exactly one state.
"""

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connections

from grader.registry import get_lab
from labs import lifecycle
from labs.models import Evaluation, EvaluationStatus, Lab
from worker.datasets import DatasetUnavailable, cached_dataset, require_box_readable
from worker.health import node_health
from worker.sandbox import Limits, Mount, Outcome, RunningSandbox, Sandbox, SandboxUnavailable, get_sandbox
from worker.sandbox.account import sandbox_user
from worker.verdicts import (  # noqa: F401 - the verdict's names, as callers of the grading flow know them
    JOB,
    OUTPUT_FILES,
    RESULT_MAX_BYTES,
    Verdict,
    classify_outcome,
    sanitise,
)

log = logging.getLogger(__name__)

_sandbox: Sandbox | None = None
_sandbox_lock = threading.Lock()


def build_sandbox() -> Sandbox:
    """The backend this node's settings name, not yet probed."""
    from worker.sandbox.staging import sweep

    # What a killed worker left mounted (its boxes' views and output tmpfs) is detached before this one mounts.
    sweep(Path(settings.SANDBOX_STAGING_DIR))
    if settings.SANDBOX_BACKEND == "docker":
        return get_sandbox(
            "docker",
            image=settings.SANDBOX_DOCKER_IMAGE,
            base_url=settings.SANDBOX_DOCKER_URL,
            user=settings.SANDBOX_USER,
            seccomp_profile=settings.SANDBOX_DOCKER_SECCOMP or None,
            staging_root=settings.SANDBOX_STAGING_DIR,
        )
    return get_sandbox(settings.SANDBOX_BACKEND, user=settings.SANDBOX_USER, staging_root=settings.SANDBOX_STAGING_DIR)


def configured_sandbox() -> Sandbox:
    """The node's sandbox, probed once per process; raises SandboxUnavailable rather than ever running unconfined.

    The node's health (the probe, then a timed reference workload in a box) is measured at the same time.
    """
    global _sandbox
    with _sandbox_lock:
        if _sandbox is None:
            from labs.checks import lab_row_errors

            # A lab row that disagrees with the grader's declaration would rank by the wrong number: refuse.
            errors = lab_row_errors()
            if errors:
                raise SandboxUnavailable("lab rows disagree with the grader: " + "; ".join(errors[:5]))
            sandbox = build_sandbox()
            sandbox.sweep_leftovers()
            sandbox.probe()
            node_health(sandbox, limits=Limits(wall_seconds=60, memory_bytes=512 * 1024**2, pids=32, cpus=1))
            _sandbox = sandbox
        return _sandbox


def worker_name() -> str:
    return f"{socket.gethostname()}:{threading.get_native_id()}"


class Heartbeat(threading.Thread):
    """Renews the lease while the grader runs; if the claim is lost, stops the sandbox."""

    def __init__(self, evaluation_id: int, token: uuid.UUID):
        super().__init__(daemon=True, name=f"heartbeat-{evaluation_id}")
        self.evaluation_id = evaluation_id
        self.token = token
        self.stopped = threading.Event()
        self.lost = threading.Event()
        self.on_lost = None

    def run(self):
        interval = max(1.0, settings.EVALUATION_LEASE_SECONDS / 4)
        try:
            while not self.stopped.wait(interval):
                try:
                    still_ours = lifecycle.renew(self.evaluation_id, self.token)
                except Exception:
                    log.warning("heartbeat of evaluation %s could not reach the database", self.evaluation_id)
                    connections.close_all()  # reconnect on the next beat rather than reuse a broken connection
                    continue
                if not still_ours:
                    self.lost.set()
                    if self.on_lost:
                        self.on_lost()
                    return
        finally:
            # The thread's own database connection would otherwise stay open until the thread object is collected.
            connections.close_all()

    def stop(self):
        self.stopped.set()


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


@dataclass
class WarmSandbox:
    key: tuple
    job_dir: Path
    running: RunningSandbox


# At most one sandbox per worker process waits, interpreter started and imports done, for the next job of its lab.
_warm: WarmSandbox | None = None
warm_hits = 0


def warm_key(lab: Lab, data_dir: Path) -> tuple:
    base = lab.base_model.config_sha256 if lab.base_model_id else ""
    return (lab.kind, str(data_dir), lab.time_limit_s, lab.memory_limit_mb, str(base_model_dir(lab)), base)


def start_sandbox(sandbox: Sandbox, lab: Lab, job_dir: Path, data_dir: Path) -> RunningSandbox:
    return sandbox.start(
        ["python", "-m", "grader", "serve-one", "--lab", lab.kind], mounts_for(lab, job_dir, data_dir), limits_for(lab)
    )


def take_warm(key: tuple) -> WarmSandbox | None:
    global _warm
    warm, _warm = _warm, None
    if warm is not None and warm.key != key:
        discard(warm)
        return None
    return warm


def discard(warm: WarmSandbox) -> None:
    try:
        warm.running.kill()
    finally:
        shutil.rmtree(warm.job_dir, ignore_errors=True)


def prewarm(sandbox: Sandbox, lab: Lab, data_dir: Path) -> None:
    """Start the next job's sandbox now, so that its interpreter's imports are done before the job arrives."""
    global _warm
    if not settings.SANDBOX_PREWARM or _warm is not None:
        return
    job_dir = new_job_dir()
    try:
        _warm = WarmSandbox(warm_key(lab, data_dir), job_dir, start_sandbox(sandbox, lab, job_dir, data_dir))
    except Exception:
        shutil.rmtree(job_dir, ignore_errors=True)
        log.warning("could not pre-start a sandbox for lab %s", lab.slug, exc_info=True)


def mounts_for(lab: Lab, job_dir: Path, data_dir: Path) -> list[Mount]:
    mounts = [
        Mount(job_dir / "submission", f"{JOB}/submission"),
        Mount(data_dir, f"{JOB}/data"),
        Mount(job_dir / "out", f"{JOB}/out", writable=True),
    ]
    base = base_model_dir(lab)
    if base is not None:
        require_box_readable(base, box_gid())
        mounts.append(Mount(base, f"{JOB}/base-model"))
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


class SandboxStartFailed(RuntimeError):
    """The sandbox's interpreter never became ready: the platform's fault, retried."""


def run_in_sandbox(running: RunningSandbox, lab: Lab, heartbeat: Heartbeat) -> Outcome:
    heartbeat.on_lost = running.kill
    try:
        # Starting the interpreter is the platform's work, not the student's: it has its own allowance, and the
        # lab's wall clock starts only when the job is handed over.
        if not running.wait_ready(timeout=float(settings.SANDBOX_STARTUP_SECONDS)):
            outcome = running.kill()
            raise SandboxStartFailed(f"the sandbox did not start: {outcome.stderr_tail[-300:]}")
        return running.submit(job_line(lab))
    finally:
        running.kill()


def grade(evaluation_id: int) -> str:
    """Grade one evaluation end to end; returns what happened (for logs and tests)."""
    sandbox = configured_sandbox()  # raises SandboxUnavailable before anything is claimed
    token = lifecycle.claim(evaluation_id, worker=worker_name())
    if token is None:
        return "not-claimed"
    evaluation = Evaluation.objects.select_related(
        "submission__lab__dataset", "submission__lab__base_model", "submission__member__user"
    ).get(pk=evaluation_id)
    lab = evaluation.submission.lab
    if lifecycle.attempts_left(evaluation) < 0:
        lifecycle.give_up(
            evaluation_id,
            token,
            code="too_many_attempts",
            message=f"Gave up after {settings.EVALUATION_MAX_ATTEMPTS} attempts.",
        )
        return "gave-up"
    heartbeat = Heartbeat(evaluation_id, token)
    heartbeat.start()
    global warm_hits
    job_dir: Path | None = None
    data_dir: Path | None = None
    try:
        if lab.dataset is None:
            raise DatasetUnavailable(f"lab {lab.slug} has no registered hidden dataset")
        data_dir = cached_dataset(lab.dataset)
        warm = take_warm(warm_key(lab, data_dir))
        if warm is not None:
            warm_hits += 1
            job_dir, running = warm.job_dir, warm.running
        else:
            job_dir = new_job_dir()
            running = start_sandbox(sandbox, lab, job_dir, data_dir)
        fill_submission(evaluation, job_dir)
        outcome = run_in_sandbox(running, lab, heartbeat)
        if heartbeat.lost.is_set():
            return "claim-lost"
        verdict = classify_outcome(lab, evaluation, outcome, job_dir / "out", job_dir)
    except (DatasetUnavailable, SandboxUnavailable, SandboxStartFailed, OSError) as exc:
        log.exception("evaluation %s: platform fault before grading", evaluation_id)
        verdict = Verdict(
            EvaluationStatus.ERROR, {"error_code": "platform", "error_message": str(exc)[:500]}, retry=True
        )
    finally:
        heartbeat.stop()
        if job_dir is not None:
            shutil.rmtree(job_dir, ignore_errors=True)
    result = conclude(evaluation, token, verdict)
    if data_dir is not None:
        prewarm(sandbox, lab, data_dir)
    return result


def conclude(evaluation: Evaluation, token: uuid.UUID, verdict: Verdict) -> str:
    """Store the verdict; platform faults go back to the queue with backoff until the attempts run out."""
    if verdict.retry and lifecycle.attempts_left(evaluation) > 0:
        fields = {k: v for k, v in verdict.fields.items() if k in {"staff_log", "error_code", "error_message"}}
        return "retrying" if lifecycle.retry(evaluation, token, **fields) else "claim-lost"
    if not lifecycle.finish(evaluation.pk, token, verdict.status, **verdict.fields):
        return "claim-lost"
    if verdict.status == EvaluationStatus.SUCCEEDED and evaluation.submission.lab.evaluator_options.get("judge_url"):
        lifecycle.send_style_judging(evaluation.pk)
    return verdict.status
