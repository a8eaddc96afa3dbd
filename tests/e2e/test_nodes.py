"""Grading nodes that share no disk with the web: only PostgreSQL, Redis and an S3 bucket between them.

The web runs as its own gunicorn process and each node as its own Celery worker, every one with a VAR_DIR of its own
and its own access key to the bucket (moto's S3 server on loopback, which records who read what).
"""

import hashlib
from pathlib import Path

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from labs.models import Evaluation, Submission
from labs.selectors import leaderboard_for
from tests.e2e.conftest import WebProcess, WorkerProcess, wait_for
from tests.factories import make_music_lab, music_dataset, save_lstm, token_for
from tests.object_storage import storage_environment

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(420)]

LEASE_SECONDS = 4


@pytest.fixture
def lab(course, private_bucket, tmp_path):
    """The music lab, its hidden set registered by staff into the bucket (as from the web container's shell)."""
    from labs.management.commands.register_dataset import register_dataset

    return make_music_lab(course, dataset=register_dataset(music_dataset(tmp_path / "staff" / "hidden")))


@pytest.fixture
def web(s3_server, private_bucket, clean_broker, tmp_path):
    var = tmp_path / "web-var"
    var.mkdir()
    server = WebProcess(
        tmp_path / "web.log",
        VAR_DIR=var,
        ALLOWED_HOSTS="127.0.0.1",
        API_UPLOAD_RATE_LIMIT="",
        **storage_environment(s3_server, private_bucket, "web"),
    )
    server.var = var
    server.wait_ready()
    yield server
    server.stop()
    assert "Traceback" not in server.log(), server.log()[-3000:]


@pytest.fixture
def nodes(s3_server, private_bucket, clean_broker, tmp_path):
    """Start a grading node: a worker whose VAR_DIR, cache and temporary files are its own folder alone."""
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        var = tmp_path / name
        (var / "tmp").mkdir(parents=True)
        worker = WorkerProcess(
            tmp_path / f"{name}.log",
            VAR_DIR=var,
            WORKER_CACHE_DIR=var / "worker-cache",
            FILE_UPLOAD_TEMP_DIR=var / "tmp",
            EVALUATION_LEASE_SECONDS=LEASE_SECONDS,
            **storage_environment(s3_server, private_bucket, name),
        )
        worker.var, worker.log_path = var, tmp_path / f"{name}.log"
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    for worker in started:
        print(f"--- {worker.log_path.name} ---\n{worker.log_path.read_text(errors='replace')[-3000:]}")


def upload(web: WebProcess, lab, key: str, directory: Path) -> Submission:
    files = {p.name: (p.name, p.read_bytes(), "application/octet-stream") for p in sorted(directory.iterdir())}
    response = requests.post(
        f"{web.url}/api/labs/{lab.slug}/submissions",
        files=files,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return Submission.objects.get(pk=response.json()["id"])


def final(submission: Submission) -> Evaluation | None:
    evaluation = Evaluation.objects.get(submission=submission)
    return evaluation if evaluation.is_final else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: Path) -> dict[Path, str]:
    return {p: sha256(p) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def copies_of(artifact: Path, folder: Path) -> set[str]:
    """The names of the artifact's files that have a byte-identical copy somewhere under ``folder``."""
    wanted = {sha256(p): p.name for p in artifact.iterdir()}
    return {wanted[digest] for digest in files_under(folder).values() if digest in wanted}


def test_nodes_sharing_only_database_broker_and_bucket_grade_uploads_and_survive_one_killed_mid_job(
    s3_server, private_bucket, lab, student, web, nodes, tmp_path, client, settings
):
    from worker.reaper import reap

    bucket = private_bucket
    settings.EVALUATION_LEASE_SECONDS = LEASE_SECONDS
    archive = lab.dataset.archive.name
    key = token_for(student)
    node_a = nodes("node-a")

    # The upload goes through the web process into the bucket, and node A grades it from there.
    first_dir = save_lstm(tmp_path / "student" / "first")
    first = upload(web, lab, key, first_dir)
    first_keys = {item["key"] for item in first.files}
    stored = s3_server.objects(bucket)
    assert {k: hashlib.sha256(v).hexdigest() for k, v in stored.items() if k in first_keys} == {
        item["key"]: sha256(first_dir / item["name"]) for item in first.files
    }
    assert s3_server.written_by("web", bucket) == first_keys
    done = wait_for(lambda: final(first), timeout=180, what="the first evaluation")
    assert done.status == "succeeded", (done.error_code, done.error_message, done.staff_log[-1500:])
    assert s3_server.read_by("node-a", bucket) == {archive, *first_keys}
    cache_a = node_a.var / "worker-cache" / "datasets" / lab.dataset.manifest_hash
    assert (cache_a / "manifest.json").is_file()
    # The result is the database's, so the web serves it though it never saw the node.
    shown = requests.get(
        f"{web.url}/api/submissions/{first.pk}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).json()
    assert shown["status"] == "succeeded"
    assert shown["evaluation"]["metrics"]["public"]["bpc"] == pytest.approx(done.public_score)

    # A slower second upload: node A fetches it, then the whole node dies (SIGKILL) while it grades.
    lab.evaluator_options = {"songs": "4", "song_length": "600"}
    lab.save()
    second_dir = save_lstm(tmp_path / "student" / "second", h=64, seed=1)
    second = upload(web, lab, key, second_dir)
    second_keys = {item["key"] for item in second.files}
    wait_for(lambda: second_keys <= s3_server.read_by("node-a", bucket), timeout=120, interval=0.05, what="fetch")
    jobs_a = node_a.var / "worker-cache" / "jobs"
    names = {item["name"] for item in second.files}
    wait_for(lambda: copies_of(second_dir, jobs_a) == names, timeout=30, interval=0.05, what="the job's copy")
    assert Evaluation.objects.get(submission=second).status == "running"
    node_a.kill()
    assert final(second) is None

    # Node B has never seen the dataset or the artifact: it fetches both into its own cache and finishes the job.
    node_b = nodes("node-b")
    wait_for(
        lambda: Evaluation.objects.get(submission=second).lease_expires_at < timezone.now(),
        timeout=30,
        what="the lease to expire",
    )
    assert reap() == {"requeued": 1, "resent": 1, "gave_up": 0}
    done = wait_for(lambda: final(second), timeout=240, what="the re-queued evaluation")
    assert (done.status, done.attempt) == ("succeeded", 2), (done.error_code, done.error_message)
    assert s3_server.read_by("node-b", bucket) == {archive, *second_keys}
    cache_b = node_b.var / "worker-cache" / "datasets" / lab.dataset.manifest_hash
    assert files_under(cache_b).keys() and [p.relative_to(cache_b) for p in files_under(cache_b)] == [
        p.relative_to(cache_a) for p in files_under(cache_a)
    ]
    best = min((first, second), key=lambda submission: final(submission).public_score)
    assert [row.submission_id for row in leaderboard_for(lab=lab, split="public", viewer=None).rows] == [best.pk]

    # Every upload is in the bucket and nowhere on the web's disk; the web serves it back from there.
    assert set(s3_server.objects(bucket)) == {archive, *first_keys, *second_keys}
    assert files_under(web.var) == {} and files_under(Path(settings.VAR_DIR)) == {}
    client.force_login(student.user)
    url = reverse(
        "labs:artifact_file",
        kwargs={"course_slug": lab.course.slug, "lab_slug": lab.slug, "pk": second.pk, "name": "model.safetensors"},
    )
    served = client.get(url)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == (second_dir / "model.safetensors").read_bytes()
    # Each node holds only what it fetched: the killed node its job's copy, the other nothing once the job is done.
    assert copies_of(second_dir, node_a.var) == names and copies_of(first_dir, node_a.var) == set()
    assert copies_of(second_dir, node_b.var) == set() and copies_of(first_dir, node_b.var) == set()
