"""The warm boxes of one worker process: one per lab it serves, started ahead, each used for exactly one job.

A box is started with a lab's mounts and limits at a low CPU weight, does that lab's imports and verifies its
dataset, says ready and waits for its one job, which raises it to the normal weight; after the job it is gone and a
fresh one replaces it (one box, one job: nothing of one student's run can reach the next). Boxes start one at a
time, from a queue, so warming never crowds the job that runs meanwhile. The key a box was started for (lab
configuration, dataset, limits, base model) must equal the job's, or the box is killed instead of used.

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
    ready: bool = False


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
        self._queue: list[tuple[tuple, Starter]] = []  # boxes still to start, most wanted first
        self._starter: threading.Thread | None = None
        self._changed = threading.Condition(self._lock)  # the queue, the pool or a box's warm-up changed
        self._fresh = False  # the queue was just renewed and its head is not started yet
        self._starting = False
        self._warming: list[WarmBox] = []  # started, not yet ready (or dropped)
        self._closed = False

    def take(self, key: tuple) -> WarmBox | None:
        """The box started for ``key``, handed over for its one job at the normal CPU weight (it leaves the pool);
        None: start cold. A box still warming is taken too: what is left of its warm-up is less than a cold start."""
        with self._lock:
            box = self.boxes.pop(key, None)
            if box is None:
                self.misses += 1
            else:
                self.hits += 1
                self._changed.notify_all()  # the next box of the queue may start
        if box is not None:
            box.running.prioritise()
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
        killed now; missing ones, the first ``max_boxes`` keys only, form the queue of boxes to start. The head of
        the queue (most likely the next job's) is started before this returns; the rest one at a time, the next
        once the last is ready or taken for a job: several interpreters importing torch at once would each take
        longer, and a box warming beside a job should be one at most.
        """
        wanted = wanted[: max(0, self.max_boxes)]
        keys = {key for key, _ in wanted}
        with self._lock:
            if self._closed:
                return
            stale = [box for key, box in self.boxes.items() if key not in keys]
            for box in stale:
                del self.boxes[box.key]
            self._queue = [(key, start) for key, start in wanted if key not in self.boxes]
            self._fresh = bool(self._queue)
            if self._queue and self._starter is None:
                # One thread for the pool's life: bwrap's --die-with-parent kills a box when the thread that
                # started it ends (the parent-death signal follows the thread), so the starter never ends early.
                self._starter = threading.Thread(target=self._start_queued, daemon=True, name="warm-box-starter")
                self._starter.start()
            self._changed.notify_all()
            # Bounded: starting a box (staging, cgroup, exec) takes a fraction of a second.
            self._changed.wait_for(lambda: not (self._fresh and self._queue) or self._closed, timeout=10)
        for box in stale:
            discard(box)

    def _may_start_next(self) -> bool:
        """The head of a fresh queue starts at once; otherwise only once no box is warming idle in the pool."""
        if not self._queue:
            return False
        return self._fresh or not any(self.boxes.get(box.key) is box for box in self._warming)

    def _start_queued(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._closed or self._may_start_next())
                if self._closed:
                    return
                key, start = self._queue.pop(0)
                if key in self.boxes:
                    continue
                if self._held_bytes() + self.footprints.get(key, 0) > self.memory_budget_bytes:
                    self.over_budget += 1
                    continue
                cuda = cuda_box_allowed(device=self.device, boxes=list(self.boxes.values()))
                self._starting = True
            try:
                job_dir, running = start(cuda)
            except Exception:
                log.warning("could not pre-start a sandbox for %s", key[0], exc_info=True)
                running = None
            with self._lock:
                self._starting = False
                self._fresh = False
                closed = self._closed
                if running is not None and not closed:
                    box = WarmBox(key, job_dir, running, cuda)
                    self.boxes[key] = box
                    self._warming.append(box)
                    self.started += 1
                    threading.Thread(target=self._measure, args=(box,), daemon=True, name="warm-box-ready").start()
                self._changed.notify_all()
            if running is not None and closed:
                discard(WarmBox(key, job_dir, running, cuda))
                return

    def _measure(self, box: WarmBox) -> None:
        """Once the box is ready, record what it holds; a box past the budget (or never ready) is killed."""
        ready = box.running.wait_ready(self.startup_seconds)
        memory = box.running.memory_bytes() if ready else None
        drop = False
        with self._lock:
            self._warming.remove(box)
            self._changed.notify_all()
            if self.boxes.get(box.key) is not box:
                return  # taken for a job (or replaced) meanwhile
            if not ready:
                drop = True
            else:
                box.ready = True
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

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the queue is empty and every started box measured (tests and benchmarks: the pool at rest);
        False if ``timeout`` passed first."""
        with self._lock:
            return self._changed.wait_for(
                lambda: self._closed or not (self._queue or self._starting or self._warming), timeout=timeout
            )

    def close(self) -> None:
        """Kill every idle box (the worker process is ending)."""
        with self._lock:
            self._closed = True
            self._queue = []
            self._changed.notify_all()
            boxes, self.boxes = list(self.boxes.values()), {}
        for box in boxes:
            discard(box)
