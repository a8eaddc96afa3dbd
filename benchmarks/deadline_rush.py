"""The deadline rush: hundreds of students upload their lab artifacts through the token API within a minute, then the
queue drains.

Usage: .venv/bin/python benchmarks/deadline_rush.py [--students 300] [--window 60] [--web-workers 3] [--threads 4]
                                                    [--artifacts toy|course|mix] [--drain-workers 2] [--drain-sample 30]
It creates its own database on the machine's PostgreSQL (dropped afterwards; RUSH_POSTGRES_URL names the server,
default postgres://postgres@127.0.0.1:5432/postgres), its own redis-server on a free port, serves the platform with
gunicorn on 127.0.0.1, and sends each student's distinct artifact at a random moment of the window. --artifacts says
what each student sends: `toy` a Lab 1 LSTM of embedding 8 and hidden 16 (a few KB); `course` the notebook's Lab 1
model (embedding 256, hidden 1024: 20.4 MiB); `mix` the three labs at their real sizes in turn (that Lab 1 model,
Lab 2's standard classifier with n_filters 12: 2.5 MiB, Lab 3's LoRA r=8 on q_proj and v_proj of Gemma-2-2B-it, the
base the lab registers: 6.1 MiB).
It prints accepted, refused (by error code), lost, 5xx and upload latency percentiles, each lab's p50/p95/p99 against
the same upload sent one at a time to the idle site just before, the web workers' peak memory, what the web workers
wrote and what reached the disks during the rush against a plain write of as many bytes with one fsync (the disk
alone, same run), the CPU seconds of the web workers, of the database's backends and of the whole machine, and which
resource ran out where the rush was not taken at the idle site's pace. With --artifacts toy it then starts Celery
workers and times how long they take to grade the first --drain-sample evaluations, and extrapolates to the whole
queue.

How production carries a rush this machine cannot: 1,000 course-size Lab 1 uploads in a minute are about 350 MB/s
of request bodies, and each is written more than once on the web host (the upload handler's temporary file, then the
stored copy). In the production stack (compose.yaml) the stored copy goes to S3-compatible object storage, so the
web host's disk holds only the temporary files (a local SSD or a tmpfs, FILE_UPLOAD_TEMP_DIR) and the storage's
bandwidth scales with its own nodes; the header checks are CPU work per upload that grows with the number of
gunicorn processes, spread over several web hosts behind the proxy; and PostgreSQL writes two small rows per upload
(about 17 per second at that rate), far below what a single database server takes. This benchmark measures one
machine only; the figures it prints say which of its resources would have to grow.
Figures only: nothing here asserts. RUSH_TRACE=1 also prints each upload (its moment, lab, status and latency).
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
import struct
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
        "PYTHONWARNINGS": "ignore:No directory at:UserWarning",  # no collected static files in a scratch VAR_DIR
    }


def setup_django(env: dict[str, str]) -> None:
    """Point this process at the scratch services, migrate, and set Django up."""
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    import django

    django.setup()


def make_course(*, students: int, work: Path, options: dict, kinds: tuple[str, ...] = ("music",)):
    """A course, its labs (Lab 1 with a tiny hidden set and small grader options; Lab 2 and Lab 3 when ``kinds``
    names them, Lab 3 with the 2025 base model registered), and students with API tokens. Returns the labs by kind."""
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from courses.models import Course, Deadline, Membership, Role
    from grader.registry import get_lab
    from labs.management.commands.register_dataset import register_dataset
    from labs.services import create_token
    from tests.factories import GEMMA_2_2B_IT, GEMMA_2_2B_IT_CONFIG, make_music_lab, music_dataset, register_base_model

    course = Course.objects.create(name="Deadline rush", slug="rush", term="January 2025")
    labs = {}
    for number, kind in enumerate(("music", "vision", "llm"), start=1):
        if kind not in kinds:
            continue
        declared = get_lab(kind)
        Deadline.objects.create(
            course=course, key=f"lab{number}", title=f"Lab {number}", due_at=timezone.now() + timedelta(hours=1)
        )
        labs[kind] = make_music_lab(
            course,
            slug=f"lab{number}-{kind}",
            kind=kind,
            number=number,
            dataset=register_dataset(music_dataset(work / "hidden")) if kind == "music" else None,
            evaluator_options=options if kind == "music" else {},
            expected_seconds=5,
            max_artifact_bytes=64 * 1024 * 1024,
            primary_metric=declared.primary_metric,
            primary_direction=declared.primary_direction,
            tiebreak_metric=declared.tiebreak_metric,
            tiebreak_direction=declared.tiebreak_direction,
        )
        if kind == "llm":
            register_base_model(labs[kind], config=GEMMA_2_2B_IT_CONFIG, name=GEMMA_2_2B_IT)
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"s{k}@rush.example", email=f"s{k}@rush.example", password="!") for k in range(students)]
    )
    members = Membership.objects.bulk_create(
        [Membership(user=u, course=course, role=Role.STUDENT, display_name=f"s{k}") for k, u in enumerate(users)]
    )
    return labs, [create_token(member=m, name="rush", days=1)[1] for m in members]


# What each student sends under --artifacts: the toy model of the first runs, or the labs' real sizes.
ARTIFACT_SETS = {"toy": ("music",), "course": ("music",), "mix": ("music", "vision", "llm")}


def lora_adapter(folder: Path, *, layers: int = 26, rank: int = 8) -> Path:
    """What PEFT saves for LoRA r=8 on q_proj and v_proj of Gemma-2-2B-it, the 2025 base (about 6 MB of float32)."""
    import numpy as np
    from safetensors.numpy import save_file

    from tests.factories import GEMMA_2_2B_IT

    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(layers):
        for module, out in (("q_proj", 2048), ("v_proj", 1024)):
            prefix = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, 2304), dtype=np.float32) * 0.01
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((out, rank), dtype=np.float32) * 0.01
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": GEMMA_2_2B_IT,
        "r": rank,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "target_modules": ["q_proj", "v_proj"],
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def template(kind: str, artifacts: str, folder: Path) -> dict[str, bytes]:
    """One artifact of ``kind`` at the size --artifacts asks for; each student's copy differs in one weight."""
    from tests.factories import save_lstm

    if kind == "music":
        e, h = (8, 16) if artifacts == "toy" else (256, 1024)  # the notebook's model: embedding 256, hidden 1024
        folder = save_lstm(folder, e=e, h=h, seed=0)
    elif kind == "vision":
        from vision_throughput import random_classifier

        folder = random_classifier(folder, n_filters=12)  # the notebook's standard classifier
    else:
        folder = lora_adapter(folder)
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


class Body:
    """One student's multipart body: the template's bytes shared by all, only the first weight of each student's
    safetensors file her own (so every artifact is distinct and none is copied whole into the client's memory)."""

    def __init__(self, files: dict[str, bytes], seed: int):
        boundary = uuid.uuid4().hex
        self.chunks: list = []
        for name, data in files.items():
            self.chunks.append(
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                    "Content-Type: application/octet-stream\r\n\r\n"
                ).encode()
            )
            if name.endswith(".safetensors"):
                start = 8 + struct.unpack("<Q", data[:8])[0]  # the first tensor's bytes follow the JSON header
                self.chunks += [
                    memoryview(data)[:start],
                    struct.pack("<f", 1e-3 * (seed % 997 + 1) + 1e-7 * seed),
                    memoryview(data)[start + 4 :],
                ]
            else:
                self.chunks.append(data)
            self.chunks.append(b"\r\n")
        self.chunks.append(f"--{boundary}--\r\n".encode())
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.length = sum(len(c) for c in self.chunks)


def upload(port: int, lab_slug: str, token: str, body: Body) -> tuple[int, str, float, int | None]:
    """One student's upload: (status, error code, seconds, submission id)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(
            "POST",
            f"/api/labs/{lab_slug}/submissions",
            body=body.chunks,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": body.content_type,
                "Content-Length": str(body.length),
            },
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


class Monitor:
    """Samples, while the rush runs, what each resource spent: the web workers' CPU, memory and writes, the
    PostgreSQL backends' CPU for this database, and the whole machine's CPU and disk writes."""

    def __init__(self, web_pid: int, database_url: str, interval: float = 0.5):
        import psutil

        self.psutil = psutil
        self.web_pid, self.database_url, self.interval = web_pid, database_url, interval
        self.stop = threading.Event()
        self.web: dict[int, tuple] = {}  # pid -> (first cpu, first write_bytes, first wchar), then the last
        self.web_last: dict[int, tuple] = {}
        self.db: dict[int, float] = {}
        self.db_last: dict[int, float] = {}
        self.peak_worker_rss = 0
        self.peak_total_rss = 0

    def _sample(self, conn) -> None:
        psutil = self.psutil
        try:
            master = psutil.Process(self.web_pid)
            processes = [master, *master.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for proc in processes:
            try:
                with proc.oneshot():
                    cpu = sum(proc.cpu_times()[:2])
                    io = proc.io_counters()
                    rss = proc.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            if proc.pid != self.web_pid:
                self.peak_worker_rss = max(self.peak_worker_rss, rss)
            self.web.setdefault(proc.pid, (cpu, io.write_bytes, io.write_chars))
            self.web_last[proc.pid] = (cpu, io.write_bytes, io.write_chars)
        self.peak_total_rss = max(self.peak_total_rss, total)
        name = urlsplit(self.database_url).path.lstrip("/")
        for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall():
            try:
                cpu = sum(psutil.Process(pid).cpu_times()[:2])
            except psutil.Error:
                continue
            self.db.setdefault(pid, cpu)
            self.db_last[pid] = cpu

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self.stop.is_set():
                self._sample(conn)
                self.stop.wait(self.interval)
            self._sample(conn)

    def __enter__(self):
        psutil = self.psutil
        self.started = time.monotonic()
        self.cpu0, self.disk0 = psutil.cpu_times(), psutil.disk_io_counters()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        psutil = self.psutil
        self.wall = time.monotonic() - self.started
        cpu1, disk1 = psutil.cpu_times(), psutil.disk_io_counters()
        self.machine_busy_s = (sum(cpu1) - cpu1.idle - cpu1.iowait) - (
            sum(self.cpu0) - self.cpu0.idle - self.cpu0.iowait
        )
        self.machine_iowait_s = cpu1.iowait - self.cpu0.iowait
        self.machine_written = disk1.write_bytes - self.disk0.write_bytes

    def figures(self) -> dict:
        web = [(self.web_last[p][i] - self.web[p][i] for i in range(3)) for p in self.web]
        cpu, written, wchar = (sum(column) for column in zip(*web, strict=True)) if web else (0, 0, 0)
        return {
            "wall_s": self.wall,
            "cores": os.cpu_count() or 1,
            "web_cpu_s": cpu,
            "web_write_bytes": written,
            "web_write_chars": wchar,
            "db_cpu_s": sum(self.db_last[p] - self.db[p] for p in self.db),
            "machine_busy_s": self.machine_busy_s,
            "machine_iowait_s": self.machine_iowait_s,
            "machine_written": self.machine_written,
            "peak_worker_rss": self.peak_worker_rss,
            "peak_total_rss": self.peak_total_rss,
        }


def disk_alone(folder: Path, total: int, block: int = 8 * 2**20) -> float:
    """Bytes per second of a plain sequential write of ``total`` bytes with one fsync at the end (dd conv=fsync)."""
    chunk = os.urandom(block)
    path = folder / "disk-alone.bin"
    started = time.perf_counter()
    with path.open("wb") as out:
        left = total
        while left > 0:
            out.write(chunk[: min(block, left)])
            left -= block
        out.flush()
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return total / elapsed


def rush(args, env, labs, tokens, work: Path) -> list[int]:
    kinds = list(labs)
    print(f"preparing artifacts ({args.artifacts}): one template per lab, a distinct copy per student", flush=True)
    templates = {kind: template(kind, args.artifacts, work / "artifacts" / kind) for kind in kinds}
    for kind, files in templates.items():
        print(f"  {kind:6} {sum(len(b) for b in files.values()) / 2**20:7.2f} MiB  ({', '.join(files)})")
    kind_of = [kinds[k % len(kinds)] for k in range(len(tokens))]
    bodies = [Body(templates[kind_of[k]], seed=k) for k in range(len(tokens))]

    def send(k: int):
        return upload(port, labs[kind_of[k]].slug, tokens[k], bodies[k])

    port = free_port()
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", str(args.web_workers), "--threads", str(args.threads), "--timeout", "300"]
        + ["--log-level", "warning", "--error-logfile", str(work / "gunicorn.log")],
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    from labs.models import Submission

    try:
        wait_until(
            lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None,
            timeout=60,
            what="gunicorn",
        )
        # Warm the web processes first (their first upload pays for lazy imports and connections), as a
        # deadline finds them; these uploads come from extra accounts and are removed before the figures.
        extra = list(range(len(tokens) - 1, args.students - 1, -1))
        warm: list = [send(extra.pop(0)) for _ in range(args.warmup)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.web_workers * args.threads) as pool:
            warm += list(pool.map(send, [extra.pop(0) for _ in range(args.warmup)]))
        if warm:
            print(f"warm-up         {len(warm)} uploads, slowest {max(w[2] for w in warm) * 1000:.0f} ms (not counted)")
        # The same upload on an idle site, one at a time: what the rush's latencies are compared with.
        idle: dict[str, list[float]] = {kind: [] for kind in kinds}
        for _ in range(args.idle_samples):
            for kind in kinds:
                k = next(i for i in extra if kind_of[i] == kind)
                extra.remove(k)
                outcome = send(k)
                warm.append(outcome)
                if outcome[0] == 201:
                    idle[kind].append(outcome[2])
        Submission.objects.filter(pk__in=[w[3] for w in warm if w[3]]).delete()
        idle_median = {kind: statistics.median(v) if v else float("nan") for kind, v in idle.items()}
        for kind in kinds:
            print(f"idle upload     {kind:6} median {idle_median[kind] * 1000:.0f} ms of {len(idle[kind])}")

        rng = random.Random(7)
        schedule = sorted((rng.uniform(0, args.window), k) for k in range(args.students))
        results: list[tuple[int, str, float, int | None]] = []
        kinds_sent: list[str] = []
        lock = threading.Lock()

        def one(at: float, k: int, t0: float) -> None:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            outcome = send(k)
            with lock:
                results.append(outcome)
                kinds_sent.append(kind_of[k])
                if os.environ.get("RUSH_TRACE"):
                    print(f"  {at:6.2f}s {kind_of[k]} {outcome[0]} {outcome[2] * 1000:.0f} ms", flush=True)

        print(
            f"rush: {args.students} uploads at random moments of {args.window:.0f}s to gunicorn "
            f"({args.web_workers} workers x {args.threads} threads) on 127.0.0.1:{port}",
            flush=True,
        )
        with Monitor(web.pid, env["DATABASE_URL"]) as monitor:
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
                futures = [pool.submit(one, at, k, t0) for at, k in schedule]
                concurrent.futures.wait(futures, timeout=args.window + 600)
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
    fives = len([r for r in results if r[0] >= 500])
    lost = len([i for i in ids if i not in with_row])
    print(f"sent            {len(results)} of {args.students} in {wall:.1f}s")
    print(f"accepted        {len(accepted)}")
    print(f"refused         {len(results) - len(accepted)}  {json.dumps(refused, sort_keys=True)}")
    print(f"lost            {lost}  (accepted without an evaluation row)")
    print(f"5xx             {fives}")
    print(
        "upload latency  "
        f"p50 {percentile(latencies, 50) * 1000:.0f} ms  p95 {percentile(latencies, 95) * 1000:.0f} ms  "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms  max {max(latencies) * 1000:.0f} ms  "
        f"mean {statistics.mean(latencies) * 1000:.0f} ms",
        flush=True,
    )
    worst_ratio = 0.0
    for kind in kinds:
        mine = [r[2] for r, sent_kind in zip(results, kinds_sent, strict=True) if sent_kind == kind]
        if not mine:
            continue
        base = idle_median[kind]
        q = {n: percentile(mine, n) for n in (50, 95, 99)}
        worst_ratio = max(worst_ratio, q[95] / base)
        print(
            f"  {kind:6} {len(mine):4}  p50 {q[50] * 1000:.0f} ms  p95 {q[95] * 1000:.0f} ms  p99 {q[99] * 1000:.0f} ms"
            f"  = {q[50] / base:.1f}x / {q[95] / base:.1f}x / {q[99] / base:.1f}x the idle {base * 1000:.0f} ms"
        )
    f = monitor.figures()
    sent_bytes = sum(bodies[k].length for _, k in schedule)
    mib = 2**20
    print(
        f"web memory      peak {f['peak_worker_rss'] / mib:.0f} MiB in one worker, {f['peak_total_rss'] / mib:.0f} MiB "
        f"for gunicorn in all ({args.web_workers} workers and the master)"
    )
    print(
        f"bytes           {sent_bytes / mib:.0f} MiB of request bodies in {f['wall_s']:.1f}s "
        f"({sent_bytes / f['wall_s'] / mib:.1f} MiB/s); the web workers wrote {f['web_write_chars'] / mib:.0f} MiB "
        f"({f['web_write_chars'] / f['wall_s'] / mib:.1f} MiB/s) into the page cache and the "
        f"kernel counted {f['web_write_bytes'] / mib:.0f} MiB as bound for the disks (a temporary file deleted "
        f"before writeback counts and is never written); the whole machine's disks took "
        f"{f['machine_written'] / mib:.0f} MiB "
        f"({f['machine_written'] / f['wall_s'] / mib:.1f} MiB/s)"
    )
    probe = min(max(f["machine_written"], 64 * mib), args.disk_probe_mb * mib)
    alone = disk_alone(work, probe)
    write_rate = f["machine_written"] / f["wall_s"]
    print(
        f"disk alone      {alone / mib:.0f} MiB/s writing {probe / mib:.0f} MiB with one fsync"
        + (" (capped by --disk-probe-mb)" if probe < f["machine_written"] else "")
        + f", so the disks took the rush's writes at {write_rate / alone:.2f} of what they do alone (the web "
        f"workers' writes into the page cache ran at {f['web_write_chars'] / f['wall_s'] / alone:.2f} of it)"
    )
    cores = f["cores"]
    shares = {
        "CPU of the web workers": f["web_cpu_s"] / (f["wall_s"] * cores),
        "disk bandwidth (what reached the disks)": write_rate / alone,
        "the database (its backends' CPU)": f["db_cpu_s"] / (f["wall_s"] * cores),
        # The clients of this script, PostgreSQL and anything else running share the same cores.
        "CPU of the machine (web workers, these clients, other work)": f["machine_busy_s"] / (f["wall_s"] * cores),
    }
    print(
        f"resources       web workers {f['web_cpu_s']:.1f} CPU-s, database backends {f['db_cpu_s']:.1f} CPU-s, the "
        f"whole machine {f['machine_busy_s']:.1f} CPU-s busy + {f['machine_iowait_s']:.1f} s in I/O wait, of "
        f"{f['wall_s'] * cores:.0f} CPU-s ({cores} cores x {f['wall_s']:.1f}s; the clients and other work share them)"
    )
    if f["web_cpu_s"] > f["machine_busy_s"]:
        print(
            "                (the web workers' CPU clock ran past the machine's busy time: on a virtual machine a "
            "process's clock can also run while the host handles its vCPU's exits, disk and network notifications "
            "and faults on memory handed back to the host, where the machine's busy time counts ticks)"
        )
    print("shares          " + "  ".join(f"{name} {share:.2f}" for name, share in shares.items()))
    behind = len(results) < args.students or len(accepted) < len(results) or wall > args.window * 1.2
    if behind or worst_ratio > 5:
        # Every resource at 90% or more of what it gives ran out together; else the busiest one.
        full = [(name, share) for name, share in shares.items() if share >= 0.9]
        full = full or [max(shares.items(), key=lambda item: item[1])]
        named = " and ".join(f"{name} ({share:.2f})" for name, share in sorted(full, key=lambda item: -item[1]))
        print(
            f"ran out         {named}: this machine did not "
            f"take {args.students} uploads in {args.window:.0f}s at the idle site's latency (p95 up to "
            f"{worst_ratio:.1f}x the idle one, all sent after {wall:.1f}s)"
        )
    else:
        print("ran out         nothing: the rush was taken at close to the idle site's latency")
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
    parser.add_argument(
        "--artifacts",
        choices=sorted(ARTIFACT_SETS),
        default="toy",
        help="toy: Lab 1 LSTM e=8 h=16 (a few KB); course: the notebook's Lab 1 model (e=256 h=1024, about 21 MB); "
        "mix: Lab 1 at that size, Lab 2 standard classifier (n_filters 12) and Lab 3 LoRA r=8 for Gemma-2-2B-it",
    )
    parser.add_argument(
        "--disk-probe-mb", type=int, default=4096, help="most MiB the disk-alone write takes (default 4096)"
    )
    parser.add_argument("--idle-samples", type=int, default=5, help="uploads per lab one at a time before the rush")
    args = parser.parse_args()
    if not 1 <= args.students <= 2000 or not 1 <= args.window <= 600:
        raise SystemExit("--students must be 1..2000 and --window 1..600 seconds")

    work = Path(tempfile.mkdtemp(prefix="deadline-rush-"))
    try:
        with scratch_database("deadline_rush") as database_url, scratch_redis(work) as broker_url:
            env = platform_env(database_url=database_url, broker_url=broker_url, var_dir=work / "var")
            setup_django(env)
            kinds = ARTIFACT_SETS[args.artifacts]
            labs, tokens = make_course(
                students=args.students + 2 * args.warmup + args.idle_samples * len(kinds),
                work=work,
                options={"songs": "2", "song_length": "200"},
                kinds=kinds,
            )
            ids = rush(args, env, labs, tokens, work)
            if args.artifacts != "toy" and not args.skip_drain:
                print("drain: skipped (measured with --artifacts toy; Lab 2 and Lab 3 have no hidden sets here)")
            elif ids and not args.skip_drain:
                drain(args, env, work, len(ids))
            from django.db import connections

            connections.close_all()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
