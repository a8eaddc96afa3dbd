"""End to end with real parts: the API, PostgreSQL, Redis, a Celery worker process and the bubblewrap sandbox."""

import re
from pathlib import Path

import pytest
from django.utils import timezone

from labs.models import Evaluation, Submission
from labs.selectors import leaderboard_for
from tests.e2e.conftest import wait_for
from tests.factories import artifact_files, make_music_lab, music_dataset, save_lstm, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lab(course, tmp_path):
    from labs.management.commands.register_dataset import register_dataset

    dataset = register_dataset(music_dataset(tmp_path / "hidden"))
    return make_music_lab(course, dataset=dataset)


def grader_processes(worker_pid: int) -> tuple[list[int], list[int]]:
    """The worker's fork servers and the boxes forked from them (a forked box keeps its server's command line)."""
    from tests.faults.conftest import descendants

    graders = {pid for pid, cmd, _ in descendants(worker_pid) if cmd.split()[1:4] == ["-m", "grader", "fork-server"]}

    def parent(pid: int) -> int | None:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None

    servers = [pid for pid in graders if parent(pid) not in graders]
    return servers, [pid for pid in graders if parent(pid) in servers]


def final(evaluation_id):
    evaluation = Evaluation.objects.get(pk=evaluation_id)
    return evaluation if evaluation.is_final else None


def test_uploaded_artifact_is_graded_by_the_worker_and_reaches_the_leaderboard(
    client, lab, student, start_worker, tmp_path
):
    start_worker()
    key = token_for(student)
    response = client.post(
        f"/api/labs/{lab.slug}/submissions",
        artifact_files(save_lstm(tmp_path / "a")),
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 201
    evaluation = Submission.objects.get(pk=response.json()["id"]).evaluations.get()
    done = wait_for(lambda: final(evaluation.pk), timeout=180, what="the evaluation to finish")
    assert done.status == "succeeded", (done.error_code, done.error_message, done.staff_log)
    assert done.public_score is not None and done.public_score > 0
    board = leaderboard_for(lab=lab, split="public", viewer=student)
    assert [(row.rank, row.member_id) for row in board.rows] == [(1, student.pk)]
    api_view = client.get(f"/api/submissions/{done.submission_id}", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert api_view["status"] == "succeeded"
    assert api_view["evaluation"]["metrics"]["public"]["bpc"] == pytest.approx(done.public_score)


def test_broken_artifact_ends_failed_with_the_students_message(lab, student, start_worker, tmp_path):
    from tests.factories import submit_folder

    start_worker()

    def poison(state):
        state["embedding.weight"][3, 2] = float("inf")

    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "inf", mutate=poison))
    done = wait_for(lambda: final(submission.evaluations.get().pk), timeout=180, what="the evaluation to finish")
    assert done.status == "failed"
    assert done.error_code == "non_finite_weights"
    assert "embedding.weight" in done.error_message


def test_worker_killed_mid_evaluation_is_requeued_by_the_reaper_and_graded_exactly_once(
    lab, student, start_worker, tmp_path, settings
):
    from tests.factories import submit_folder
    from worker.reaper import reap

    settings.EVALUATION_LEASE_SECONDS = 4
    lab.evaluator_options = {"songs": "4", "song_length": "600"}
    lab.save()
    first = start_worker(EVALUATION_LEASE_SECONDS=4)
    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a", h=64))
    evaluation = submission.evaluations.get()
    wait_for(lambda: Evaluation.objects.get(pk=evaluation.pk).status == "running", timeout=120, what="the claim")
    first.kill()  # SIGKILL to the whole worker: the pool child, its sandbox and the main process
    wait_for(
        lambda: Evaluation.objects.get(pk=evaluation.pk).lease_expires_at < timezone.now(),
        timeout=30,
        what="the lease to expire",
    )
    assert Evaluation.objects.get(pk=evaluation.pk).status == "running"
    counts = reap()
    assert counts["requeued"] == 1 and counts["resent"] == 1
    start_worker(EVALUATION_LEASE_SECONDS=4)
    done = wait_for(lambda: final(evaluation.pk), timeout=240, what="the re-queued evaluation to finish")
    assert done.status == "succeeded", (done.error_code, done.error_message)
    assert done.attempt == 2
    assert submission.evaluations.count() == 1
    board = leaderboard_for(lab=lab, split="public", viewer=None)
    assert [row.submission_id for row in board.rows] == [submission.pk]


def test_a_worker_given_jobs_of_three_labs_in_alternation_starts_each_after_the_first_in_a_warm_box(
    course, lab, student, student2, start_worker, tmp_path
):
    from tests.factories import submit_folder

    # Three labs with configurations of their own (so boxes of their own) on one small hidden set.
    labs = [
        lab,
        make_music_lab(course, slug="lab-b", number=2, dataset=lab.dataset, evaluator_options={"songs": "1"}),
        make_music_lab(course, slug="lab-c", number=3, dataset=lab.dataset, evaluator_options={"song_length": "150"}),
    ]
    submissions = [
        submit_folder(lab=each, member=member, directory=save_lstm(tmp_path / f"{r}{n}", seed=10 * r + n))
        for r, member in enumerate([student, student2])
        for n, each in enumerate(labs)
    ]
    worker = start_worker()
    for submission in submissions:
        done = wait_for(lambda s=submission: final(s.evaluations.get().pk), timeout=300, what="the evaluation")
        assert done.status == "succeeded", (done.error_code, done.staff_log)
    # The worker logs each job's box after storing its result.
    log = wait_for(
        lambda: (
            (text := (tmp_path / "worker.log").read_text(errors="replace")).count(" box (this process") == 6 and text
        ),
        timeout=30,
        what="the worker's line for each job",
    )
    # The first job may find the box its process pre-started at its start, or arrive before it and start cold.
    assert log.count("ran in a cold box") <= 1 and log.count("ran in a warm box") >= 5, log[-3000:]
    servers, boxes = grader_processes(worker.process.pid)
    assert len(servers) == 1  # the three labs' boxes share one command and mounts, so one fork server
    assert 1 <= len(boxes) <= 3  # at most one idle box per lab
    worker.stop()
    assert [pid for pid in servers + boxes if Path(f"/proc/{pid}").exists()] == []


def test_a_worker_process_prestarts_the_box_of_its_lab_so_its_first_job_starts_warm(
    lab, student, start_worker, tmp_path
):
    from tests.factories import submit_folder

    worker = start_worker()
    # Nothing was ever submitted to the lab: the process starts its box because the lab is in its queues.
    wait_for(lambda: grader_processes(worker.process.pid)[1], timeout=120, what="the worker process to pre-start a box")
    log_path = tmp_path / "worker.log"
    wait_for(lambda: "pre-started the sandboxes" in log_path.read_text(errors="replace"), timeout=60, what="prewarm")
    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a"))
    done = wait_for(lambda: final(submission.evaluations.get().pk), timeout=180, what="the evaluation")
    assert done.status == "succeeded", (done.error_code, done.staff_log)
    log = wait_for(
        lambda: (text := log_path.read_text(errors="replace")).count(" box (this process") == 1 and text,
        timeout=30,
        what="the worker's line for the job",
    )
    assert "ran in a warm box (this process: 1 warm, 0 cold)" in log, log[-3000:]
    # The line says what the box's cgroup counted: CPU for the job, and the little spent forking it before.
    spent = re.search(r"box CPU ([\d.]+) s for the job, ([\d.]+) s before it", log)
    assert spent is not None, log[-3000:]
    assert 0 < float(spent[1]) <= done.duration_s * 2 + 1 and float(spent[2]) < 5, spent[0]
