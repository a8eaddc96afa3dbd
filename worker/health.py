"""Whether this grading node is healthy enough for a timeout to be the student's fault.

A node is healthy when its sandbox probe passed and a reference workload, a fixed amount of arithmetic timed in a
box, finished within ``SANDBOX_HEALTH_BUDGET_SECONDS``. On an overloaded or broken node a timeout proves nothing
about the submission, so it stays the platform's fault.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.conf import settings

from worker.sandbox import Limits, Sandbox

log = logging.getLogger(__name__)

# About 0.2 s of one core on this project's CI machine; the budget leaves room for slow but sound nodes.
REFERENCE_WORKLOAD = "total = 0\nfor i in range(3_000_000):\n    total += i * i\nprint(total)"
REFERENCE_ANSWER = str(sum(i * i for i in range(3_000_000)))


@dataclass(frozen=True)
class NodeHealth:
    healthy: bool
    workload_seconds: float | None
    reason: str


_health: NodeHealth | None = None
_lock = threading.Lock()


def node_health(sandbox: Sandbox | None = None, *, limits: Limits | None = None) -> NodeHealth:
    """Measured once per process (the first call must pass the probed sandbox); later calls return it."""
    global _health
    with _lock:
        if _health is None:
            if sandbox is None:
                return NodeHealth(False, None, "the sandbox has not been probed in this process")
            _health = _measure(sandbox, limits or Limits(wall_seconds=60, memory_bytes=512 * 1024**2, pids=32))
            log.info("node health: %s", _health)
        return _health


def _measure(sandbox: Sandbox, limits: Limits) -> NodeHealth:
    budget = float(settings.SANDBOX_HEALTH_BUDGET_SECONDS)
    try:
        outcome = sandbox.run(["python", "-c", REFERENCE_WORKLOAD], [], limits)
    except Exception as exc:  # noqa: BLE001 - any failure means "not known to be healthy"
        return NodeHealth(False, None, f"the reference workload could not run: {exc!r}")
    if outcome.exit_code != 0 or outcome.stdout_tail.strip() != REFERENCE_ANSWER:
        return NodeHealth(False, None, f"the reference workload failed (exit {outcome.exit_code})")
    if outcome.duration_s > budget:
        return NodeHealth(False, outcome.duration_s, f"the reference workload took {outcome.duration_s:.1f} s")
    return NodeHealth(True, outcome.duration_s, "probe passed, reference workload within budget")


def reset() -> None:
    """Forget the measurement (tests, or a worker that re-probes)."""
    global _health
    with _lock:
        _health = None
