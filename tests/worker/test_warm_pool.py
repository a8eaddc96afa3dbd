"""A worker process keeps one box warm per lab it serves, in the real bubblewrap sandbox: each box serves one job."""

import os
import time
from pathlib import Path

import pytest

from labs.models import Evaluation
from tests.factories import make_music_lab, save_lstm, submit_folder
from worker import grading, warming
from worker.datasets import cached_dataset
from worker.jobs import fill_submission, job_line, warm_key
from worker.warm_pool import WarmBox, WarmPool, cuda_box_allowed, discard


@pytest.fixture
def pool_settings(settings, tmp_path):
    settings.WORKER_CACHE_DIR = tmp_path / "cache"
    settings.SANDBOX_PREWARM = True
    settings.SANDBOX_WARM_BOXES = 3
    settings.SANDBOX_WARM_MEMORY_MB = 8192
    warming.close()
    warming._served.clear()
    yield settings
    warming.close()
    warming._served.clear()


@pytest.fixture
def three_labs(course, graded_lab):
    """Three labs of one course, each with its own configuration (so its own box), on the tiny hidden set."""
    second = make_music_lab(
        course, slug="lab-b", number=2, dataset=graded_lab.dataset, evaluator_options={"songs": "1"}
    )
    third = make_music_lab(
        course, slug="lab-c", number=3, dataset=graded_lab.dataset, evaluator_options={"song_length": "150"}
    )
    return [graded_lab, second, third]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def pid_of(box: WarmBox) -> int:
    """The box's process as the host sees it: bwrap's, or for a box forked from a server, the server's child."""
    running = box.running
    if hasattr(running, "proc"):
        return running.proc.pid
    assert running.wait_ready(120) and running.pid is not None
    return running.pid


def box_of(lab) -> WarmBox | None:
    return warming.pool().boxes.get(warm_key(lab, cached_dataset(lab.dataset)))


def test_jobs_of_three_labs_in_alternation_each_start_in_a_warm_box_used_once(
    pool_settings, three_labs, student, student2, tmp_path
):
    members = [student, student2]
    rounds = [
        (
            lab,
            submit_folder(
                lab=lab, member=members[r], directory=save_lstm(tmp_path / f"{lab.slug}-{r}", seed=10 * r + n)
            ),
        )
        for r in range(2)
        for n, lab in enumerate(three_labs)
    ]
    used_pids = []
    for number, (lab, submission) in enumerate(rounds):
        warming.pool().settle(150)  # the next job arrives once the queue of boxes to start has run
        box = box_of(lab)
        if number == 0:
            assert box is None  # a fresh worker process has nothing warm yet
        else:
            assert box is not None, f"job {number} (lab {lab.slug}) found no warm box"
            used_pids.append(pid_of(box))
        result = grading.grade(submission.evaluations.get().pk)
        assert result == "succeeded", {
            k: v
            for k, v in Evaluation.objects.filter(submission=submission).values().first().items()
            if "error" in k or "log" in k
        }
        if box is not None:
            # The box that ran the job is gone, and the pool holds a fresh one for that lab.
            assert not alive(pid_of(box))
            assert not box.job_dir.exists()
            warming.pool().settle(150)
            replacement = box_of(lab)
            assert replacement is not None and pid_of(replacement) != pid_of(box)
    pool = warming.pool()
    assert (pool.hits, pool.misses) == (5, 1)
    assert len(set(used_pids)) == len(used_pids) == 5  # no process ever served two jobs
    scores = [Evaluation.objects.get(submission=s).public_score for _, s in rounds]
    assert len(set(scores)) == len(scores)  # each box graded its own artifact
    assert len(pool.boxes) == 3


def test_a_lab_whose_configuration_changes_gets_a_new_box_and_the_old_one_is_killed(
    pool_settings, graded_lab, student, student2, tmp_path
):
    first = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a", seed=1))
    assert grading.grade(first.evaluations.get().pk) == "succeeded"
    warming.pool().settle(150)
    old = box_of(graded_lab)
    assert old is not None and alive(pid_of(old))
    graded_lab.evaluator_options = {"songs": "1", "song_length": "120"}
    graded_lab.save()
    second = submit_folder(lab=graded_lab, member=student2, directory=save_lstm(tmp_path / "b", seed=2))
    assert grading.grade(second.evaluations.get().pk) == "succeeded"
    pool = warming.pool()
    pool.settle(150)
    assert (pool.hits, pool.misses) == (0, 2)  # the box of the old configuration was never used
    assert not alive(pid_of(old)) and not old.job_dir.exists()
    assert list(pool.boxes) == [warm_key(graded_lab, cached_dataset(graded_lab.dataset))]


def test_idle_boxes_stay_within_the_memory_budget(pool_settings, three_labs):
    sandbox = grading.configured_sandbox()

    def wanted():
        out = []
        for lab in three_labs:
            data_dir = cached_dataset(lab.dataset)
            out.append(
                (warm_key(lab, data_dir), lambda cuda, lab=lab, d=data_dir: warming._start(sandbox, lab, d, cuda))
            )
        return out

    roomy = WarmPool(max_boxes=3, memory_budget_bytes=8 * 1024**3, device="cpu", startup_seconds=120)
    roomy.keep(wanted())
    roomy.settle(150)
    footprints = [box.memory_bytes for box in roomy.boxes.values()]
    roomy.close()
    assert len(footprints) == 3 and all(f and f > 10 * 1024**2 for f in footprints), footprints

    # Room for one box and a half: the second that becomes ready passes the budget and is dropped.
    budget = int(max(footprints) * 1.5)
    tight = WarmPool(max_boxes=3, memory_budget_bytes=budget, device="cpu", startup_seconds=120)
    tight.keep(wanted())
    tight.settle(150)
    assert len(tight.boxes) == 1
    assert tight.held_bytes() <= budget and tight.over_budget >= 2
    # With the footprints known, a refill starts nothing that would not fit.
    started = tight.started
    tight.keep(wanted())
    tight.settle(150)
    assert tight.started == started and len(tight.boxes) == 1
    kept = next(iter(tight.boxes.values()))
    tight.close()
    assert not alive(pid_of(kept)) and not kept.job_dir.exists()


def test_closing_the_pool_leaves_no_sandbox_process_cgroup_or_folder(pool_settings, three_labs, student, tmp_path):
    submission = submit_folder(lab=three_labs[0], member=student, directory=save_lstm(tmp_path / "a"))
    assert grading.grade(submission.evaluations.get().pk) == "succeeded"
    pool = warming.pool()
    pool.settle(150)
    boxes = list(pool.boxes.values())
    assert len(boxes) == 1  # only the lab it served: no other lab has work waiting
    cgroups = [Path(d) for box in boxes for d in box.running.cgroup.dirs.values()]
    assert all(d.exists() for d in cgroups)
    warming.close()  # what the worker process's shutdown signal calls
    assert not any(alive(pid_of(box)) for box in boxes)
    assert not any(d.exists() for d in cgroups)
    assert not any(box.job_dir.exists() for box in boxes)
    assert list((Path(pool_settings.WORKER_CACHE_DIR) / "jobs").iterdir()) == []


def test_with_prewarming_off_no_box_waits(pool_settings, graded_lab, student, tmp_path):
    pool_settings.SANDBOX_PREWARM = False
    warming.close()
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    assert grading.grade(submission.evaluations.get().pk) == "succeeded"
    assert warming.pool().boxes == {} and warming.pool().misses == 1


def test_on_a_gpu_node_only_one_idle_box_creates_a_cuda_context():
    holding = WarmBox(("music",), Path("/nonexistent"), running=None, cuda=True)
    plain = WarmBox(("vision",), Path("/nonexistent"), running=None, cuda=False)
    assert cuda_box_allowed(device="cuda", boxes=[]) is True
    assert cuda_box_allowed(device="cuda", boxes=[plain]) is True
    assert cuda_box_allowed(device="cuda", boxes=[plain, holding]) is False
    assert cuda_box_allowed(device="cpu", boxes=[]) is False


def cpu_shares(box: WarmBox) -> int | None:
    return box.running.cgroup.cpu_weight()


def test_a_warming_box_runs_at_the_low_cpu_weight_and_a_box_handed_its_job_at_the_normal_one(
    pool_settings, graded_lab, student, tmp_path
):
    sandbox = grading.configured_sandbox()
    data_dir = cached_dataset(graded_lab.dataset)
    key = warm_key(graded_lab, data_dir)
    pool = WarmPool(max_boxes=1, memory_budget_bytes=8 * 1024**3, device="cpu", startup_seconds=120)
    pool.keep([(key, lambda cuda: warming._start(sandbox, graded_lab, data_dir, cuda))])
    deadline = time.monotonic() + 30
    while key not in pool.boxes and time.monotonic() < deadline:
        time.sleep(0.01)
    warming_box = pool.boxes[key]
    cgroup = warming_box.running.cgroup
    assert cgroup.version == 1  # this machine; on v2 the file is cpu.weight and the values 1 and 100
    shares = cgroup.dirs["cpu"] / "cpu.shares"
    # From its first instruction: the weight is set before the box enters its cgroup.
    assert not warming_box.ready and int(shares.read_text()) == 2
    pool.settle(150)
    assert warming_box.ready and int(shares.read_text()) == 2  # ready and idle, still low
    handed = pool.take(key)
    assert handed is warming_box and int(shares.read_text()) == 1024
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    fill_submission(submission.evaluations.get(), handed.job_dir)
    outcome = handed.running.submit(job_line(graded_lab))
    assert outcome.exit_code == 0, outcome.stderr_tail[-2000:]
    assert (handed.job_dir / "out" / "result.json").is_file()
    discard(handed)
    pool.close()


def test_boxes_are_started_one_at_a_time_each_once_the_last_is_ready(pool_settings, three_labs):
    sandbox = grading.configured_sandbox()
    wanted = []
    for lab in three_labs:
        data_dir = cached_dataset(lab.dataset)
        wanted.append(
            (warm_key(lab, data_dir), lambda cuda, lab=lab, d=data_dir: warming._start(sandbox, lab, d, cuda))
        )
    pool = WarmPool(max_boxes=3, memory_budget_bytes=8 * 1024**3, device="cpu", startup_seconds=120)
    pool.keep(wanted)
    seen_warming = []
    deadline = time.monotonic() + 300
    while not pool.settle(0.02) and time.monotonic() < deadline:
        with pool._lock:
            seen_warming.append(sum(not box.ready for box in pool.boxes.values()))
    assert len(pool.boxes) == 3 and all(box.ready for box in pool.boxes.values())
    assert max(seen_warming) == 1 and len(seen_warming) > 10  # never two interpreters warming at once
    # The boxes were started in the order wanted, each after the one before said ready.
    order = sorted(pool.boxes.values(), key=lambda box: box.running.started)
    assert [box.key for box in order] == [key for key, _ in wanted]
    pool.close()


def test_a_new_worker_process_prewarms_its_labs_so_its_first_job_starts_in_a_warm_box(
    pool_settings, graded_lab, student, tmp_path
):
    sandbox = grading.configured_sandbox()
    warming.refill(sandbox, None)  # what the worker process's start signal runs
    warming.pool().settle(150)
    box = box_of(graded_lab)
    assert box is not None and box.ready
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    assert grading.grade(submission.evaluations.get().pk) == "succeeded"
    pool = warming.pool()
    assert (pool.hits, pool.misses) == (1, 0)
    assert not alive(pid_of(box))
