"""The warm boxes of one worker process: one per lab it serves, started ahead, each used for exactly one job.

A box is started with a lab's mounts and limits, does that lab's imports and verifies its dataset, says ready and
waits for its one job; after the job it is gone and a fresh one replaces it (one box, one job: nothing of one
student's run can reach the next). The key a box was started for (lab configuration, dataset, limits, base model)
must equal the job's, or the box is killed instead of used.

Idle boxes cost memory, so the pool is bounded twice: by a count and by a budget of the memory the boxes hold once
ready (measured from their cgroups, remembered per key). On a GPU node at most one idle box of the process holds a
CUDA context; the others warm on their CPU imports only.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from worker.sandbox import RunningSandbox

log = logging.getLogger(__name__)

# How a caller starts one lab's box: given whether it may create a CUDA context, it returns the box's job folder
# and the running box.
Starter = Callable[[bool], tuple[Path, RunningSandbox]]


@dataclass
class WarmBox:
    key: tuple
    job_dir: Path
    running: RunningSandbox
    cuda: bool
    memory_bytes: int | None = None  # measured once ready


def discard(box: WarmBox) -> None:
    try:
        box.running.kill()
    finally:
        shutil.rmtree(box.job_dir, ignore_errors=True)


def cuda_box_allowed(*, device: str, boxes: list[WarmBox]) -> bool:
    """Whether a box started now may create its CUDA context while it waits: on a GPU node, only when no idle box
    of this process holds one (a context takes hundreds of MB of the GPU's memory before any job)."""
    return device == "cuda" and not any(box.cuda for box in boxes)


class WarmPool:
    """The idle boxes of this worker process, at most one per key, within a count and a memory budget."""

    def __init__(self, *, max_boxes: int, memory_budget_bytes: int, device: str, startup_seconds: float):
        self.max_boxes = max_boxes
        self.memory_budget_bytes = memory_budget_bytes
        self.device = device
        self.startup_seconds = startup_seconds
        self.boxes: dict[tuple, WarmBox] = {}
        # The memory a ready box of each key held when last measured: the estimate for its next box.
        self.footprints: dict[tuple, int] = {}
        self.hits = 0
        self.misses = 0
        self.started = 0
        self.over_budget = 0
        self._lock = threading.Lock()
        self._watchers: list[threading.Thread] = []

    def take(self, key: tuple) -> WarmBox | None:
        """The idle box started for ``key``, handed over for its one job (it leaves the pool); None: start cold."""
        with self._lock:
            box = self.boxes.pop(key, None)
            if box is None:
                self.misses += 1
            else:
                self.hits += 1
        return box

    def held_bytes(self) -> int:
        """What the idle boxes hold: measured where ready, else the last measurement of their key."""
        with self._lock:
            return self._held_bytes()

    def _held_bytes(self) -> int:
        return sum(box.memory_bytes or self.footprints.get(box.key, 0) for box in self.boxes.values())

    def keep(self, wanted: list[tuple[tuple, Starter]]) -> None:
        """Make the idle boxes those of ``wanted`` (keys in order of priority, each with how to start its box).

        Boxes of other keys (a lab whose configuration, dataset or limits changed, or one no longer served) are
        killed; missing ones are started, the first ``max_boxes`` keys only, while the budget allows.
        """
        wanted = wanted[: max(0, self.max_boxes)]
        keys = {key for key, _ in wanted}
        with self._lock:
            stale = [box for key, box in self.boxes.items() if key not in keys]
            for box in stale:
                del self.boxes[box.key]
        for box in stale:
            discard(box)
        for key, start in wanted:
            with self._lock:
                if key in self.boxes:
                    continue
                if self._held_bytes() + self.footprints.get(key, 0) > self.memory_budget_bytes:
                    self.over_budget += 1
                    continue
                cuda = cuda_box_allowed(device=self.device, boxes=list(self.boxes.values()))
            try:
                job_dir, running = start(cuda)
            except Exception:
                log.warning("could not pre-start a sandbox for %s", key[0], exc_info=True)
                continue
            box = WarmBox(key, job_dir, running, cuda)
            with self._lock:
                self.boxes[key] = box
                self.started += 1
            watcher = threading.Thread(target=self._measure, args=(box,), daemon=True, name="warm-box-memory")
            self._watchers = [w for w in self._watchers if w.is_alive()] + [watcher]
            watcher.start()

    def _measure(self, box: WarmBox) -> None:
        """Once the box is ready, record what it holds; a box past the budget (or never ready) is killed."""
        ready = box.running.wait_ready(self.startup_seconds)
        memory = box.running.memory_bytes() if ready else None
        drop = False
        with self._lock:
            if self.boxes.get(box.key) is not box:
                return  # taken for a job (or replaced) meanwhile
            if not ready:
                drop = True
            else:
                box.memory_bytes = memory
                if memory:
                    self.footprints[box.key] = memory
                if self._held_bytes() > self.memory_budget_bytes:
                    self.over_budget += 1
                    drop = True
            if drop:
                del self.boxes[box.key]
        if drop:
            log.info("dropping the pre-started sandbox for %s (ready: %s, %s bytes)", box.key[0], ready, memory)
            discard(box)

    def settle(self, timeout: float | None = None) -> None:
        """Wait until every started box has been measured (tests and benchmarks, to see the pool at rest)."""
        for watcher in list(self._watchers):
            watcher.join(timeout)

    def close(self) -> None:
        """Kill every idle box (the worker process is ending)."""
        with self._lock:
            boxes, self.boxes = list(self.boxes.values()), {}
        for box in boxes:
            discard(box)
