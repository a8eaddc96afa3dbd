"""Grading one evaluation: claim it, fetch what it needs, run the grader in the sandbox, store what it says.

Only the holder of the current claim token may write the result, so a redelivered or re-sent message can never
grade twice; every path ends the evaluation in exactly one state.
"""

import logging
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connections

from grader.registry import get_lab  # noqa: F401 - tests replace a lab's methods through this name
from labs import lifecycle
from labs.models import Evaluation, EvaluationStatus, Lab
from worker import warming
from worker.datasets import DatasetUnavailable, cached_dataset
from worker.health import node_health
from worker.jobs import (  # noqa: F401 - one job's box, as callers of the grading flow know its parts
    base_model_dir,
    fill_submission,
    job_line,
    limits_for,
    mounts_for,
    new_job_dir,
    start_sandbox,
    warm_key,
)
from worker.sandbox import Limits, Outcome, RunningSandbox, Sandbox, SandboxUnavailable, get_sandbox
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
    if settings.SANDBOX_BACKEND == "bubblewrap":
        return get_sandbox(
            "bubblewrap",
            user=settings.SANDBOX_USER,
            staging_root=settings.SANDBOX_STAGING_DIR,
            fork_servers=settings.SANDBOX_FORK_SERVERS,
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


def close_sandbox() -> None:
    """Stop what this process's sandbox keeps running between boxes (its fork servers); the probed sandbox stays."""
    with _sandbox_lock:
        sandbox = _sandbox
    if sandbox is not None:
        sandbox.close()


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


class SandboxStartFailed(RuntimeError):
    """The sandbox's interpreter never became ready: the platform's fault, retried."""


def spans(marks: dict[str, float]) -> str:
    """Where the time from claim to stored result went, for the log (what a job costs beyond its evaluation)."""
    names = list(marks)
    return ", ".join(f"{b} +{marks[b] - marks[a]:.3f} s" for a, b in zip(names, names[1:], strict=False))


def box_cpu(outcome: Outcome | None) -> str:
    """The CPU the box spent on the job and, before it, on its warm-up (from its cgroup), for the log line."""
    details = outcome.details if outcome is not None else {}
    job, total = details.get("cpu_seconds"), details.get("cpu_seconds_total")
    if job is None or total is None:
        return ""
    return f"; box CPU {job:.3f} s for the job, {max(0.0, total - job):.3f} s before it"


def run_in_sandbox(running: RunningSandbox, lab: Lab, heartbeat: Heartbeat, marks: dict | None = None) -> Outcome:
    heartbeat.on_lost = running.kill
    try:
        # Starting the interpreter is the platform's work, not the student's: it has its own allowance, and the
        # lab's wall clock starts only when the job is handed over.
        if not running.wait_ready(timeout=float(settings.SANDBOX_STARTUP_SECONDS)):
            outcome = running.kill()
            raise SandboxStartFailed(f"the sandbox did not start: {outcome.stderr_tail[-300:]}")
        if marks is not None:
            marks["ready"] = time.monotonic()
        return running.submit(job_line(lab))
    finally:
        running.kill()
        if marks is not None:
            marks["box done"] = time.monotonic()


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
    marks = {"claimed": time.monotonic()}
    heartbeat = Heartbeat(evaluation_id, token)
    heartbeat.start()
    job_dir: Path | None = None
    data_dir: Path | None = None
    warm = None
    running: RunningSandbox | None = None
    outcome: Outcome | None = None
    try:
        if lab.dataset is None:
            raise DatasetUnavailable(f"lab {lab.slug} has no registered hidden dataset")
        data_dir = cached_dataset(lab.dataset)
        warm = warming.pool().take(warm_key(lab, data_dir))
        if warm is not None:
            job_dir, running = warm.job_dir, warm.running
        else:
            job_dir = new_job_dir()
            running = start_sandbox(sandbox, lab, job_dir, data_dir)
            running.prioritise()  # a job waits on this box's warm-up: it is not background work
        fill_submission(evaluation, job_dir)
        marks["filled"] = time.monotonic()
        outcome = run_in_sandbox(running, lab, heartbeat, marks)
        if heartbeat.lost.is_set():
            return "claim-lost"
        verdict = classify_outcome(lab, evaluation, outcome, job_dir / "out", job_dir, data_dir=data_dir)
        marks["classified"] = time.monotonic()
    except (DatasetUnavailable, SandboxUnavailable, SandboxStartFailed, OSError) as exc:
        log.exception("evaluation %s: platform fault before grading", evaluation_id)
        verdict = Verdict(
            EvaluationStatus.ERROR, {"error_code": "platform", "error_message": str(exc)[:500]}, retry=True
        )
    finally:
        heartbeat.stop()
        if running is not None:
            running.kill()  # whatever went wrong on the way, no box outlives its job (kill is idempotent)
        if job_dir is not None:
            shutil.rmtree(job_dir, ignore_errors=True)
    result = conclude(evaluation, token, verdict)
    marks["stored"] = time.monotonic()
    boxes = warming.pool()
    log.info(
        "evaluation %s of lab %s ran in a %s box (this process: %d warm, %d cold); %s%s",
        evaluation_id,
        lab.slug,
        "warm" if warm is not None else "cold",
        boxes.hits,
        boxes.misses,
        spans(marks),
        box_cpu(outcome),
    )
    if data_dir is not None:
        # After the result is stored: starting the replacement is not on this job's clock.
        warming.refill(sandbox, lab)
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
