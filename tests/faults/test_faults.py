"""Real faults under a real worker: restarted Redis and PostgreSQL, a full disk, a sandbox that never ends, a redelivery.

Each test ends by checking that every accepted submission reached exactly one final state and that the leaderboard
holds each student once.
"""

import re
import subprocess
import time

import pytest
from django.db import connection
from django.utils import timezone

from labs.models import Evaluation, Submission
from labs.selectors import leaderboard_for
from tests.conftest import make_member
from tests.e2e.conftest import wait_for
from tests.factories import artifact_files, make_music_lab, music_dataset, save_lstm, submit_folder, token_for
from tests.faults.conftest import descendants, worker_log

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

GRADING_SECONDS = 150


@pytest.fixture
def lab(course, tmp_path):
    from labs.management.commands.register_dataset import register_dataset

    return make_music_lab(course, dataset=register_dataset(music_dataset(tmp_path / "hidden")))


def students(course, count: int):
    return [make_member(course, f"student{k}@example.edu") for k in range(count)]


def submit(lab, member, tmp_path, seed: int, **model):
    return submit_folder(lab=lab, member=member, directory=save_lstm(tmp_path / f"artifact-{seed}", seed=seed, **model))


def evaluation_of(submission: Submission) -> Evaluation:
    return Evaluation.objects.get(submission=submission)


def all_final(submissions) -> bool:
    return all(evaluation_of(s).is_final for s in submissions)


def assert_each_ends_once(lab, submissions, status: str, attempts: int | list[int]) -> list[Evaluation]:
    """One evaluation per accepted submission, final, consistent, and each student at most once on the board."""
    attempts = attempts if isinstance(attempts, list) else [attempts] * len(submissions)
    evaluations = []
    for submission, attempt in zip(submissions, attempts, strict=True):
        evaluation = evaluation_of(submission)  # .get(): exactly one row
        assert (evaluation.status, evaluation.attempt) == (status, attempt), (
            evaluation.error_code,
            evaluation.error_message,
            evaluation.staff_log[-1500:],
        )
        assert evaluation.finished_at is not None and evaluation.finished_at >= evaluation.started_at
        assert evaluation.lease_expires_at is None
        evaluations.append(evaluation)
    board = leaderboard_for(lab=lab, split="public", viewer=None)
    graded = sorted(s.member_id for s, e in zip(submissions, evaluations, strict=True) if e.status == "succeeded")
    assert sorted(row.member_id for row in board.rows) == graded
    return evaluations


def test_evaluations_queued_when_redis_restarts_are_kept_by_its_append_only_file_and_graded(
    lab, course, broker, workers, tmp_path
):
    submissions = [submit(lab, member, tmp_path, seed) for seed, member in enumerate(students(course, 3))]
    assert broker.queued(lab.queue) == 3
    broker.stop()
    broker.start()
    assert broker.queued(lab.queue) == 3
    workers()
    wait_for(lambda: all_final(submissions), timeout=GRADING_SECONDS, what="the queued evaluations to finish")
    assert_each_ends_once(lab, submissions, "succeeded", 1)


def test_evaluations_whose_messages_redis_lost_are_resent_by_the_reaper_and_graded(
    lab, course, broker, workers, tmp_path, settings
):
    settings.QUEUED_RESEND_AFTER_SECONDS = 1
    submissions = [submit(lab, member, tmp_path, seed) for seed, member in enumerate(students(course, 2))]
    broker.stop()
    broker.wipe()
    broker.start()
    assert broker.queued(lab.queue) == 0
    workers()
    time.sleep(1.5)
    from worker.reaper import reap

    assert reap() == {"requeued": 0, "resent": 2, "gave_up": 0}
    wait_for(lambda: all_final(submissions), timeout=GRADING_SECONDS, what="the resent evaluations to finish")
    assert_each_ends_once(lab, submissions, "succeeded", 1)


def test_upload_while_the_broker_is_down_is_accepted_and_graded_once_the_reaper_resends_it(
    client, lab, student, broker, workers, tmp_path
):
    from worker.reaper import reap

    workers()
    broker.stop()
    response = client.post(
        f"/api/labs/{lab.slug}/submissions",
        artifact_files(save_lstm(tmp_path / "a")),
        HTTP_AUTHORIZATION=f"Bearer {token_for(student)}",
    )
    assert response.status_code == 201, response.content
    submission = Submission.objects.get(pk=response.json()["id"])
    evaluation = evaluation_of(submission)
    assert (evaluation.status, evaluation.sent_at, evaluation.attempt) == ("queued", None, 0)
    broker.start()
    assert reap() == {"requeued": 0, "resent": 1, "gave_up": 0}
    assert evaluation_of(submission).sent_at is not None
    wait_for(lambda: all_final([submission]), timeout=GRADING_SECONDS, what="the resent evaluation to finish")
    assert_each_ends_once(lab, [submission], "succeeded", 1)


def test_postgres_restarted_while_the_worker_stores_a_result_ends_in_one_state_through_the_reaper(
    database, lab, student, workers, tmp_path, settings
):
    from worker.reaper import reap

    settings.EVALUATION_LEASE_SECONDS = 4
    lab.evaluator_options = {"songs": "4", "song_length": "600"}
    lab.save()
    worker = workers(EVALUATION_LEASE_SECONDS=4)
    submission = submit(lab, student, tmp_path, 0, h=64)
    evaluation = evaluation_of(submission)
    wait_for(lambda: evaluation_of(submission).status == "running", timeout=120, interval=0.1, what="the claim")
    database.stop()
    connection.close()
    failed = re.compile(r"Task worker\.tasks\.evaluate\[[^\]]+\] raised unexpected: .*(OperationalError|connection)")
    wait_for(lambda: failed.search(worker_log(worker)), timeout=120, what="the worker's write to fail")
    database.start()
    connection.close()
    stuck = evaluation_of(submission)
    assert (stuck.status, stuck.attempt, stuck.finished_at, stuck.metrics) == ("running", 1, None, None)
    wait_for(lambda: evaluation_of(submission).lease_expires_at < timezone.now(), timeout=30, what="lease expiry")
    assert reap() == {"requeued": 1, "resent": 1, "gave_up": 0}
    wait_for(lambda: all_final([submission]), timeout=GRADING_SECONDS, what="the re-queued evaluation to finish")
    (done,) = assert_each_ends_once(lab, [submission], "succeeded", 2)
    assert done.pk == evaluation.pk and done.public_score is not None


def test_full_output_disk_ends_the_evaluation_in_a_platform_error_and_the_worker_grades_the_next(
    lab, student, student2, broker, workers, tmp_path
):
    jobs = tmp_path / "worker-cache" / "jobs"
    jobs.mkdir(parents=True)
    # Room for the artifact (a few pages) but not for fifty generated songs of a page each.
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(jobs)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        lab.evaluator_options = {"songs": "50", "song_length": "300"}
        lab.save()
        workers(EVALUATION_MAX_ATTEMPTS=1)
        first = submit(lab, student, tmp_path, 0)
        wait_for(lambda: all_final([first]), timeout=GRADING_SECONDS, what="the evaluation on a full disk to end")
        (broken,) = assert_each_ends_once(lab, [first], "error", 1)
        assert broken.error_code in {"no_result", "bad_result", "grader_fault"}
        assert "No space left on device" in broken.staff_log
        lab.evaluator_options = {"songs": "2", "song_length": "200"}
        lab.save()
        second = submit(lab, student2, tmp_path, 1)
        wait_for(lambda: all_final([second]), timeout=GRADING_SECONDS, what="the next evaluation to finish")
        assert_each_ends_once(lab, [second], "succeeded", 1)
        # Nothing of either job is left on the small disk; at most the empty folder of the next, pre-started job.
        assert [p for p in jobs.rglob("*") if p.is_file()] == []
        assert len(list(jobs.iterdir())) <= 1
    finally:
        subprocess.run(["umount", "-l", str(jobs)], check=False)


def test_sandbox_that_runs_past_the_time_limit_ends_in_timeout_after_its_attempts_with_nothing_left_running(
    lab, student, broker, workers, tmp_path
):
    # Fifty songs of 5,000 characters from a wider model take far longer than the lab's 3 seconds (a warm box that
    # has done its imports still needs several seconds for them on this machine).
    lab.time_limit_s = 3
    lab.evaluator_options = {"songs": "50", "song_length": "5000"}
    lab.save()
    worker = workers(EVALUATION_MAX_ATTEMPTS=2)
    submission = submit(lab, student, tmp_path, 0, h=256)
    wait_for(lambda: all_final([submission]), timeout=GRADING_SECONDS, what="the evaluation to time out")
    (done,) = assert_each_ends_once(lab, [submission], "error", 2)
    # Her files are within the lab's bounds: running out of its time is the lab's configuration, not her fault.
    assert done.error_code == "timeout"
    assert done.error_message.startswith("The evaluation ran past the lab's time limit of 3 s.")
    assert "does not count against your submissions" in done.error_message
    assert "timed_out=True" in done.staff_log
    # The worker keeps one fresh sandbox waiting for its next job; the one that ran past the clock must be gone.
    ended_ago = (timezone.now() - done.finished_at).total_seconds()
    processes = descendants(worker.process.pid)
    assert [pid for pid, cmd, age in processes if "serve-one" in cmd and age > ended_ago] == []
    graders = [pid for pid, cmd, _ in processes if cmd.split()[1:4] == ["-m", "grader", "serve-one"]]
    assert len(graders) <= 1


def test_a_second_delivery_while_the_first_still_runs_finds_it_claimed_and_writes_nothing(
    lab, student, broker, workers, tmp_path
):
    from worker.tasks import evaluate

    lab.evaluator_options = {"songs": "4", "song_length": "600"}
    lab.save()
    first, second = workers("first"), workers("second")
    submission = submit(lab, student, tmp_path, 0, h=64)
    evaluation = evaluation_of(submission)
    wait_for(lambda: evaluation_of(submission).status == "running", timeout=120, interval=0.1, what="the claim")
    # The same message again, as the broker redelivers it once its visibility timeout has passed.
    evaluate.apply_async(args=[evaluation.pk], queue=lab.queue)
    skipped = f"evaluation {evaluation.pk}: not-claimed"
    wait_for(lambda: skipped in worker_log(first) + worker_log(second), timeout=60, interval=0.1, what="the redelivery")
    assert evaluation_of(submission).status == "running"
    wait_for(lambda: all_final([submission]), timeout=GRADING_SECONDS, what="the evaluation to finish")
    assert_each_ends_once(lab, [submission], "succeeded", 1)
    # The task logs its outcome after the result is stored (and the next box is pre-started): wait for the line.
    done = f"evaluation {evaluation.pk}: succeeded"
    wait_for(lambda: done in worker_log(first) + worker_log(second), timeout=60, interval=0.1, what="the log line")
    logs = [worker_log(first), worker_log(second)]
    graded = [log for log in logs if done in log]
    refused = [log for log in logs if skipped in log]
    assert len(graded) == 1 and len(refused) == 1 and graded != refused
