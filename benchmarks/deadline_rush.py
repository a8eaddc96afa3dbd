"""The deadline rush: hundreds of students upload Lab 1 through the token API within a minute, then the queue drains.

Usage: .venv/bin/python benchmarks/deadline_rush.py [--students 300] [--window 60] [--web-workers 3] [--threads 4]
                                                    [--drain-workers 2] [--drain-sample 30]
It creates its own database on the machine's PostgreSQL (dropped afterwards; RUSH_POSTGRES_URL names the server,
default postgres://postgres@127.0.0.1:5432/postgres), its own redis-server on a free port, serves the platform with
gunicorn on 127.0.0.1, and sends each student's distinct artifact at a random moment of the window. It prints
accepted, refused (by error code), lost, 5xx and upload latency percentiles; then it starts Celery workers and
times how long they take to grade the first --drain-sample evaluations, and extrapolates to the whole queue.
Figures only: nothing here asserts. RUSH_TRACE=1 also prints each upload (its moment, status and latency).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PYTHON = sys.executable
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"gave up waiting for {what} after {timeout:.0f}s")


@contextmanager
def scratch_database(prefix: str):
    """A fresh database on the machine's PostgreSQL, migrated; dropped on the way out. Yields its URL."""
    import psycopg

    admin = os.environ.get("RUSH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    name = f"{prefix}_{os.getpid()}"
    parts = urlsplit(admin)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_redis(directory: Path):
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        import redis

        wait_until(lambda: redis.Redis(port=port).ping(), timeout=30, what="redis")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=30)


def platform_env(*, database_url: str, broker_url: str, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "VAR_DIR": str(var_dir),
        "WORKER_CACHE_DIR": str(var_dir / "worker-cache"),
        "DEBUG": "0",
        "ALLOW_INSECURE_SECRET": "1",
        "SECURE_HTTPS": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }


def setup_django(env: dict[str, str]) -> None:
    """Point this process at the scratch services, migrate, and set Django up."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    import django

    django.setup()


def make_course(*, students: int, work: Path, options: dict):
    """A course, Lab 1 with a tiny hidden set and small grader options, and students with API tokens."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from courses.models import Course, Deadline, Membership, Role
    from labs.management.commands.register_dataset import register_dataset
    from labs.services import create_token
    from tests.factories import make_music_lab, music_dataset

    course = Course.objects.create(name="Deadline rush", slug="rush", term="January 2025")
    Deadline.objects.create(course=course, key="lab1", title="Lab 1", due_at=timezone.now() + timedelta(hours=1))
    dataset = register_dataset(music_dataset(work / "hidden"))
    lab = make_music_lab(course, dataset=dataset, evaluator_options=options, expected_seconds=5)
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"s{k}@rush.example", email=f"s{k}@rush.example", password="!") for k in range(students)]
    )
    members = Membership.objects.bulk_create(
        [Membership(user=u, course=course, role=Role.STUDENT, display_name=f"s{k}") for k, u in enumerate(users)]
    )
    return lab, [create_token(member=m, name="rush", days=1)[1] for m in members]


def multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, data in files.items():
        body += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


def upload(port: int, lab_slug: str, token: str, body: bytes, content_type: str) -> tuple[int, str, float, int | None]:
    """One student's upload: (status, error code, seconds, submission id)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            f"/api/labs/{lab_slug}/submissions",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        response = conn.getresponse()
        payload = response.read()
        status = response.status
    except OSError as exc:
        return 0, f"connection: {type(exc).__name__}", time.perf_counter() - started, None
    finally:
        conn.close()
    elapsed = time.perf_counter() - started
    try:
        data = json.loads(payload)
    except ValueError:
        data = {}
    if status == 201:
        return status, "", elapsed, data.get("id")
    return status, (data.get("error") or {}).get("code", "not_json"), elapsed, None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def rush(args, env, lab, tokens, work: Path) -> list[int]:
    from tests.factories import save_lstm

    print(f"preparing {len(tokens)} distinct artifacts (LSTM e=8 h=16, one seed each)", flush=True)
    bodies = []
    for k in range(len(tokens)):
        folder = save_lstm(work / "artifacts" / str(k), e=8, h=16, seed=1000 + k)
        bodies.append(multipart({p.name: p.read_bytes() for p in sorted(folder.iterdir())}))
    port = free_port()
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(args.web_workers), "--threads", str(args.threads), "--timeout", "120"]
        + ["--log-level", "warning", "--error-logfile", str(work / "gunicorn.log")],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    try:
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None,
            timeout=60,
            what="gunicorn",
        )
        # Warm the web processes first (their first upload pays for lazy imports and connections), as a
        # deadline finds them; these uploads come from extra accounts and are removed before the figures.
        warm: list = [upload(port, lab.slug, tokens[-1 - k], *bodies[-1 - k]) for k in range(args.warmup)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.web_workers * args.threads) as pool:
            warm += list(
                pool.map(
                    lambda k: upload(port, lab.slug, tokens[-1 - k], *bodies[-1 - k]),
                    range(args.warmup, 2 * args.warmup),
                )
            )
        from labs.models import Submission

        Submission.objects.filter(pk__in=[w[3] for w in warm if w[3]]).delete()
        rushing = len(tokens) - 2 * args.warmup
        tokens, bodies = tokens[:rushing], bodies[:rushing]
        if warm:
            print(f"warm-up         {len(warm)} uploads, slowest {max(w[2] for w in warm) * 1000:.0f} ms (not counted)")
        rng = random.Random(7)
        schedule = sorted((rng.uniform(0, args.window), k) for k in range(len(tokens)))
        results: list[tuple[int, str, float, int | None]] = []
        lock = threading.Lock()

        def one(at: float, k: int, t0: float) -> None:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            outcome = upload(port, lab.slug, tokens[k], *bodies[k])
            with lock:
                results.append(outcome)
                if os.environ.get("RUSH_TRACE"):
                    print(f"  {at:6.2f}s {outcome[0]} {outcome[2] * 1000:.0f} ms", flush=True)

        print(
            f"rush: {len(tokens)} uploads at random moments of {args.window:.0f}s to gunicorn "
            f"({args.web_workers} workers x {args.threads} threads) on 127.0.0.1:{port}",
            flush=True,
        )
        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            futures = [pool.submit(one, at, k, t0) for at, k in schedule]
            concurrent.futures.wait(futures, timeout=args.window + 300)
        wall = time.monotonic() - t0
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=60)

    from labs.models import Evaluation

    accepted = [r for r in results if r[0] == 201]
    refused: dict[str, int] = {}
    for status, code, _, _ in results:
        if status != 201:
            refused[f"{status} {code}"] = refused.get(f"{status} {code}", 0) + 1
    ids = [r[3] for r in accepted]
    with_row = set(Evaluation.objects.filter(submission_id__in=ids).values_list("submission_id", flat=True))
    latencies = [r[2] for r in results]
    print(f"sent            {len(results)} of {len(tokens)} in {wall:.1f}s")
    print(f"accepted        {len(accepted)}")
    print(f"refused         {len(results) - len(accepted)}  {json.dumps(refused, sort_keys=True)}")
    print(f"lost            {len([i for i in ids if i not in with_row])}  (accepted without an evaluation row)")
    print(f"5xx             {len([r for r in results if r[0] >= 500])}")
    print(
        "upload latency  "
        f"p50 {percentile(latencies, 50) * 1000:.0f} ms  p95 {percentile(latencies, 95) * 1000:.0f} ms  "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms  max {max(latencies) * 1000:.0f} ms  "
        f"mean {statistics.mean(latencies) * 1000:.0f} ms",
        flush=True,
    )
    return ids


def drain(args, env, work: Path, total: int) -> None:
    from django.db import connection
    from django.db.models import Count

    from labs.models import Evaluation

    def finished() -> int:
        connection.close()  # a fresh read each time, never a stale connection
        return Evaluation.objects.filter(status__in=["succeeded", "failed", "error"]).count()

    sample = min(args.drain_sample, total)
    workers = []
    t0 = time.monotonic()
    for n in range(args.drain_workers):
        log = (work / f"worker-{n}.log").open("ab")
        workers.append(
            subprocess.Popen(
                [PYTHON, "-m", "celery", "-A", "config", "worker", "-Q", "grading-music", "--concurrency", "1"]
                + ["--pool", "prefork", "--without-gossip", "--without-mingle", "-n", f"rush-{n}@%h", "-l", "WARNING"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    print(f"drain: {args.drain_workers} Celery workers (concurrency 1 each), timing the first {sample} of {total}")
    try:
        deadline = time.monotonic() + args.drain_timeout
        first_done = None
        done = 0
        while time.monotonic() < deadline:
            done = finished()
            if done and first_done is None:
                first_done = time.monotonic() - t0
            if done >= sample:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    counts = dict(Evaluation.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    durations = list(
        Evaluation.objects.filter(status="succeeded", duration_s__isnull=False).values_list("duration_s", flat=True)
    )
    print(f"graded          {done} in {elapsed:.1f}s (first result after {first_done or 0:.1f}s, workers starting)")
    print(f"statuses        {json.dumps(counts, sort_keys=True)}")
    if durations:
        print(f"sandbox time    mean {statistics.mean(durations):.2f}s per evaluation")
    if done:
        steady = (elapsed - (first_done or 0)) / max(1, done - 1)
        estimate = (first_done or 0) + steady * (total - 1)
        print(
            f"throughput      {done / elapsed:.2f} evaluations/s overall, {1 / steady if steady else 0:.2f}/s once warm"
        )
        print(f"extrapolated    {estimate:.0f}s ({estimate / 60:.1f} min) to drain all {total} with these workers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the uploads arrive")
    parser.add_argument("--clients", type=int, default=64, help="concurrent client connections at most")
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--drain-workers", type=int, default=2)
    parser.add_argument("--drain-sample", type=int, default=30)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--warmup", type=int, default=6, help="uploads sent one by one, then as many at once")
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.students <= 2000 or not 1 <= args.window <= 600:
        raise SystemExit("--students must be 1..2000 and --window 1..600 seconds")

    work = Path(tempfile.mkdtemp(prefix="deadline-rush-"))
    try:
        with scratch_database("deadline_rush") as database_url, scratch_redis(work) as broker_url:
            env = platform_env(database_url=database_url, broker_url=broker_url, var_dir=work / "var")
            setup_django(env)
            lab, tokens = make_course(
                students=args.students + 2 * args.warmup, work=work, options={"songs": "2", "song_length": "200"}
            )
            ids = rush(args, env, lab, tokens, work)
            if ids and not args.skip_drain:
                drain(args, env, work, len(ids))
            from django.db import connections

            connections.close_all()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
