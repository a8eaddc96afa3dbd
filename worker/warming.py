"""Which labs this worker process keeps a box warm for, and the process's one pool of them (closed when it ends)."""

import logging
import shutil
import threading
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db.models import F, Max, Min

from grader.registry import get_lab
from labs.models import EvaluationStatus, Lab
from worker.datasets import DatasetUnavailable, cached_dataset
from worker.jobs import new_job_dir, start_sandbox, warm_key
from worker.sandbox import RunningSandbox, Sandbox
from worker.warm_pool import WarmPool

log = logging.getLogger(__name__)

_pool: WarmPool | None = None
_pool_lock = threading.Lock()
# Lab ids this process has graded, the most recent last: the labs it serves even while their queues are empty.
_served: dict[int, None] = {}


def pool() -> WarmPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WarmPool(
                max_boxes=settings.SANDBOX_WARM_BOXES if settings.SANDBOX_PREWARM else 0,
                memory_budget_bytes=settings.SANDBOX_WARM_MEMORY_MB * 1024 * 1024,
                device=settings.GRADER_DEVICE,
                startup_seconds=float(settings.SANDBOX_STARTUP_SECONDS),
            )
        return _pool


def close() -> None:
    """Kill this process's idle boxes (worker shutdown); a later job starts a fresh pool."""
    global _pool
    with _pool_lock:
        current, _pool = _pool, None
    if current is not None:
        current.close()
    from worker.grading import close_sandbox

    close_sandbox()  # its fork servers


def consumed_queues() -> set[str] | None:
    """The queues this worker takes jobs from (its -Q list); None outside a Celery worker (every lab's queue)."""
    try:
        from celery import current_app

        queues = current_app.amqp.queues.consume_from
    except Exception:  # noqa: BLE001 - no worker app configured: treat every queue as ours
        return None
    return set(queues) if queues else None


def labs_to_keep_warm(just_served: Lab | None) -> list[Lab]:
    """The labs whose next job this process should find a box for, most wanted first: those with jobs waiting in
    its queues (the oldest waiting first), then the labs it graded itself, the most recent first. A process that
    has graded nothing yet (``just_served`` None: it is starting) takes the labs of its queues with the most
    recent submissions instead, so that its first job finds a box too."""
    if just_served is not None:
        _served.pop(just_served.pk, None)
        _served[just_served.pk] = None
    queues = consumed_queues()

    def ours(kind: str) -> bool:
        return queues is None or get_lab(kind).queue in queues

    waiting = (
        Lab.objects.filter(submissions__evaluations__status=EvaluationStatus.QUEUED, dataset__isnull=False)
        .annotate(oldest=Min("submissions__evaluations__queued_at"))
        .order_by("oldest")
        .values_list("pk", "kind")
    )
    ids = [pk for pk, kind in waiting if ours(kind)]
    ids += [pk for pk in reversed(_served) if pk not in ids]
    if just_served is None:
        recent = (
            Lab.objects.filter(dataset__isnull=False)
            .annotate(latest=Max("submissions__received_at"))
            .order_by(F("latest").desc(nulls_last=True), "-pk")
            .values_list("pk", "kind")[:50]
        )
        ids += [pk for pk, kind in recent if ours(kind) and pk not in ids]
    ids = ids[: max(0, settings.SANDBOX_WARM_BOXES)]
    by_id = Lab.objects.select_related("dataset", "base_model").in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id]


def _start(sandbox: Sandbox, lab: Lab, data_dir: Path, cuda: bool) -> tuple[Path, RunningSandbox]:
    job_dir = new_job_dir()
    try:
        return job_dir, start_sandbox(sandbox, lab, job_dir, data_dir, warm_cuda=cuda)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise


def refill(sandbox: Sandbox, just_served: Lab | None) -> None:
    """After a job: replace the box it used and keep one ready for each lab this process serves, within bounds.
    Before the first (``just_served`` None): start the boxes its first jobs are likely to want."""
    warm = pool()
    if warm.max_boxes <= 0:
        return
    wanted = []
    for lab in labs_to_keep_warm(just_served):
        if lab.dataset is None:
            continue
        try:
            data_dir = cached_dataset(lab.dataset)
            key = warm_key(lab, data_dir)
        except (DatasetUnavailable, OSError):
            log.warning("cannot pre-start a sandbox for lab %s", lab.slug, exc_info=True)
            continue
        wanted.append((key, partial(_start, sandbox, lab, data_dir)))
    warm.keep(wanted)
