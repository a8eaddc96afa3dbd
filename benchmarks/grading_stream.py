"""A real grading stream: N students' submissions of the three labs through the token API into real Celery workers.

Usage: .venv/bin/python benchmarks/grading_stream.py [--students 30] [--window 30] [--workers 2]
                                                     [--backends embedded,postgres] [--alone 4] [--work DIR]
                                                     [--box-cpus N] [--node-cores N]
The submissions follow the demo's proportions (for every 3 music submissions, 2 vision and 1 LLM), each student's
artifact distinct (the lab's reference model with its own small noise), sent at random moments of --window seconds
to gunicorn once every worker process has its labs' boxes ready; one Celery worker with --workers processes takes
the three lab queues, as the demo's does, each box with its share of the cores (--box-cpus). It runs on
the embedded default (SQLite and the SQLite broker, a fresh VAR_DIR) and on PostgreSQL + Redis (a scratch database
and a redis-server of its own, as benchmarks/deadline_rush.py makes them), each backend in a child process.
Per lab it prints the evaluation time (duration_s, the box's run), the claimed-to-finished time and their ratio,
queue waits p50/p95, how many jobs started in a warm box, and evaluations per minute per worker process against
the limit computed from the same evaluations timed alone (one at a time, in a warm box, nothing else running); then
the same evaluations timed --workers at a time in boxes started together, with nothing of the platform around them,
to tell apart what the platform costs from what side-by-side evaluations cost each other on a small machine; and
where the machine's CPU went during the stream (the web, the boxes' jobs, their start, the rest of the worker).
With --node-cores N the worker and its boxes keep to N cores and the web and the upload client to the others, as
production runs the web on machines of its own: the figures are then the grading node's alone. On a virtual machine
whose kernel hands freed memory back to its host, it prints how much went back during the stream (each page of it
faults on the host when touched again, and the box that touches it pays); --hold-freed-memory keeps it for the run.
The data and reference models are prepared once into --work (the grader's prepare-data and train-reference).
Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
PYTHON = sys.executable
BIN = Path(sys.executable).parent
SHARES = {"music": 3, "vision": 2, "llm": 1}  # the demo's students' submissions per lab

from deadline_rush import (  # noqa: E402 - the scratch services and the upload client of the rush benchmark
    Body,
    free_port,
    percentile,
    platform_env,
    scratch_database,
    scratch_redis,
    setup_django,
    upload,
    wait_until,
)


def prepare(work: Path, cache: Path | None) -> tuple[Path, Path]:
    """The demo hidden sets (and the tiny base model) and one reference model per lab, made once into ``work``."""
    datasets, references = work / "datasets", work / "references"
    if not all((datasets / lab / "manifest.json").is_file() for lab in SHARES):
        cmd = [PYTHON, "-m", "grader", "prepare-data", "--out", str(datasets)]
        subprocess.run(cmd + (["--cache", str(cache)] if cache else []), check=True, cwd=REPO)
    for lab in SHARES:
        if not any((references / lab).glob("*.json")):
            print(f"training the {lab} reference model (once)", flush=True)
            cmd = [PYTHON, "-m", "grader", "train-reference", "--lab", lab, "--data", str(datasets / lab)]
            subprocess.run(cmd + ["--out", str(references / lab)], check=True, cwd=REPO)
    return datasets, references


def distinct_artifact(reference: Path, seed: int) -> dict[str, bytes]:
    """The reference artifact with small seeded relative noise on its float tensors: a distinct, valid submission."""
    import numpy as np
    from safetensors.numpy import load_file, save

    rng = np.random.default_rng(seed)
    files = {}
    for path in sorted(reference.iterdir()):
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
            for name, value in tensors.items():
                if value.dtype.kind == "f" and value.size:
                    # Relative noise keeps every sign: a batch norm's running variance stays positive (added noise
                    # made some variances negative, and the model's logits NaN).
                    tensors[name] = (value * (1 + rng.normal(0, 0.01, value.shape))).astype(value.dtype)
            files[path.name] = save(tensors)
        elif path.is_file() and path.suffix == ".json":
            files[path.name] = path.read_bytes()
    return files


def make_course(students: int, datasets: Path):
    """The demo course and labs on the prepared sets, the tiny base model registered, students with tokens."""
    from courses.models import Membership, Role
    from demo import course as demo_course
    from grader.labs.llm.base import TINY_DIRNAME, TINY_NAME
    from labs.basemodels import register_base_model
    from labs.management.commands.register_dataset import register_dataset
    from labs.services import create_token

    course = demo_course.seed_course().course
    labs = {
        lab.kind: lab for lab in demo_course.create_labs(course, {k: register_dataset(datasets / k) for k in SHARES})
    }
    staff = demo_course.member(course, "instructor@demo.edu")
    config = (datasets / "base-models" / TINY_DIRNAME / "config.json").read_bytes()
    register_base_model(lab=labs["llm"], actor=staff.user, name=TINY_NAME, folder=TINY_DIRNAME, config_bytes=config)
    from django.contrib.auth import get_user_model

    User = get_user_model()
    tokens = []
    for k in range(students):
        user = User.objects.create(username=f"s{k}@stream.example", email=f"s{k}@stream.example", password="!")
        member = Membership.objects.create(user=user, course=course, role=Role.STUDENT, display_name=f"s{k}")
        tokens.append(create_token(member=member, name="stream", days=1)[1])
    for lab in labs.values():  # the demo labs' quotas are for a handful of people
        lab.daily_quota, lab.max_in_flight = 100, 100
        lab.save(update_fields=["daily_quota", "max_in_flight"])
    return {kind: lab.slug for kind, lab in labs.items()}, tokens


def stream_plan(students: int, seed: int) -> list[tuple[int, str]]:
    """(student, lab) pairs in the demo's proportions: every student submits music, 2 in 3 vision, 1 in 3 LLM."""
    plan = []
    for k in range(students):
        plan += [(k, lab) for lab, share in SHARES.items() if (k % 3) < share]
    random.Random(seed).shuffle(plan)
    return plan


def pinned(cpus: set[int] | None):
    """A preexec_fn that keeps a child (and all it starts) on ``cpus``; None leaves it where the kernel puts it."""
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def start_workers(env: dict, processes: int, log: Path, cpus: set[int] | None = None) -> subprocess.Popen:
    queues = "grading-music,grading-vision,grading-llm"
    return subprocess.Popen(
        [PYTHON, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--concurrency", str(processes)]
        + ["--pool", "prefork", "--without-gossip", "--without-mingle", "-n", f"stream-{os.getpid()}@%h", "-l", "INFO"],
        cwd=REPO,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=pinned(cpus),
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def tree_cpu_seconds(pid: int) -> float:
    """The CPU a process and everything under it have spent so far: its own and its reaped children's, and the same
    of each descendant still running."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


# On a virtual machine whose kernel hands freed memory back to its host (free page reporting, as Firecracker's
# balloon does), a page freed by one process and touched again by another faults on the host, and the time goes
# to whichever process touches it: a stream of uploads and boxes frees and touches memory all the time.
PAGE_REPORTING = Path("/sys/module/page_reporting/parameters")


def reported_mib() -> float | None:
    """How much freed memory this machine's kernel has handed back to its host so far, where it says."""
    try:
        return int((PAGE_REPORTING / "reported_kib").read_text()) / 1024
    except (OSError, ValueError):
        return None


@contextmanager
def freed_memory_held(hold: bool):
    """With ``hold``, the kernel keeps freed memory for the run (no block is small enough to report) and reports
    again afterwards, as it did before."""
    order = PAGE_REPORTING / "page_reporting_order"
    if not hold:
        yield
        return
    if not order.exists():
        raise SystemExit("--hold-freed-memory: this kernel does not hand freed memory back to a host")
    before = order.read_text().strip()
    try:
        order.write_text("11\n")  # above the largest block the page allocator has (order 10)
    except OSError as error:
        raise SystemExit(
            f"--hold-freed-memory: {order} refused order 11 ({error}): it needs root, and a kernel that takes an "
            "order above its largest block"
        ) from None
    try:
        yield
    finally:
        order.write_text(before + "\n")


def machine_busy_seconds() -> float:
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - times.iowait


def timed(kind: str, repeat: int, together: int = 1) -> tuple[list[float], list[int]]:
    """The lab's evaluation run in warm boxes the worker's way (mounts, limits, job line), with nothing of the
    platform around it: ``together`` evaluations at a time (1: alone), each in its own box, handed their jobs at
    the same moment. Returns each evaluation's duration_s and the memory each box held once ready (what an idle
    warm box of the lab costs)."""
    import shutil

    from labs.models import Evaluation
    from worker.datasets import cached_dataset
    from worker.grading import configured_sandbox
    from worker.jobs import fill_submission, job_line, new_job_dir, start_sandbox

    sandbox = configured_sandbox()
    evaluations = list(
        Evaluation.objects.filter(submission__lab__kind=kind, status="succeeded").select_related(
            "submission__lab__dataset", "submission__lab__base_model"
        )[: repeat * together]
    )
    durations, memory = [], []
    for first in range(0, len(evaluations) - together + 1, together):
        batch = evaluations[first : first + together]
        boxes = []
        try:
            for evaluation in batch:
                lab = evaluation.submission.lab
                job_dir = new_job_dir()
                boxes.append((job_dir, start_sandbox(sandbox, lab, job_dir, cached_dataset(lab.dataset))))
            for (job_dir, running), evaluation in zip(boxes, batch, strict=True):
                if not running.wait_ready(300):
                    raise SystemExit(f"the {kind} box never became ready: {running.kill().stderr_tail[-1000:]}")
                memory.append(running.memory_bytes() or 0)
                fill_submission(evaluation, job_dir)
            line = job_line(batch[0].submission.lab)
            with concurrent.futures.ThreadPoolExecutor(max_workers=together) as threads:
                outcomes = list(threads.map(lambda running, job=line: running.submit(job), [r for _, r in boxes]))
            for outcome in outcomes:
                if outcome.exit_code != 0:
                    raise SystemExit(f"the {kind} evaluation failed: {outcome.stderr_tail[-1000:]}")
                durations.append(outcome.duration_s)
        finally:
            for job_dir, running in boxes:
                running.kill()
                shutil.rmtree(job_dir, ignore_errors=True)
    return durations, memory if together == 1 else []


def node_cpus(node_cores: int | None) -> tuple[set[int] | None, set[int] | None]:
    """With --node-cores N: the grading node's cores (the worker, its fork servers and boxes) and the others (the
    web and the upload client, which production runs on other machines); without it, everything shares them all."""
    if node_cores is None:
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if not 0 < node_cores < len(cores):
        raise SystemExit(f"--node-cores must leave at least one of the {len(cores)} cores to the web")
    return set(cores[:node_cores]), set(cores[node_cores:])


def run_backend(args, backend: str, datasets: Path, references: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"stream-{backend}-", dir=args.work))
    work.chmod(0o700)
    with ExitStack() as stack:
        if backend == "postgres":
            database_url = stack.enter_context(scratch_database("grading_stream"))
            broker_url = stack.enter_context(scratch_redis(work))
        else:
            database_url = f"sqlite:///{work / 'var' / 'db.sqlite3'}"
            broker_url = f"sqla+sqlite:///{work / 'var' / 'broker.sqlite3'}"
        (work / "var").mkdir(mode=0o700)
        env = platform_env(database_url=database_url, broker_url=broker_url, var_dir=work / "var")
        env.update(DATASETS_DIR=str(datasets), BASE_MODELS_DIR=str(datasets / "base-models"), LOG_LEVEL="INFO")
        # Each worker process's boxes get their share of the node's cores, as a node is configured (a box's quota
        # times the processes is at most the cores); the evaluations timed alone afterwards get the same quota.
        env["SANDBOX_CPUS"] = str(args.box_cpus)
        setup_django(env)
        slugs, tokens = make_course(args.students, datasets)
        plan = stream_plan(args.students, seed=7)
        bodies = {
            (k, kind): Body(distinct_artifact(references / kind, seed=1000 * k + len(kind)), seed=k) for k, kind in plan
        }
        node, rest = node_cpus(args.node_cores)
        worker = start_workers(env, args.workers, work / "worker.log", cpus=node)
        port = free_port()
        web = subprocess.Popen(
            [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
            + ["--threads", "4", "--timeout", "120", "--log-level", "warning"],
            cwd=REPO,
            env=env,
            start_new_session=True,
            preexec_fn=pinned(rest),
        )
        everywhere = os.sched_getaffinity(0)
        try:
            wait_until(lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None, timeout=60, what="web")

            # The stream starts once every worker process has its labs' boxes ready: a process starts its fork
            # servers once, when it starts, and a deadline's stream meets processes started long before.
            def warmed() -> bool:
                return (work / "worker.log").read_text(errors="replace").count("labs are ready") >= args.workers

            wait_until(warmed, timeout=600, what="the workers' boxes")
            rng = random.Random(11)
            moments = sorted(rng.uniform(0, args.window) for _ in plan)
            cpu0 = {
                "machine": machine_busy_seconds(),
                "web": tree_cpu_seconds(web.pid),
                "worker": tree_cpu_seconds(worker.pid),
                "reported_mib": reported_mib(),
            }
            if rest is not None:
                os.sched_setaffinity(0, rest)  # the upload client is not the grading node either
            t0 = time.monotonic()

            def send(item):
                at, (k, kind) = item
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                return upload(port, slugs[kind], tokens[k], bodies[(k, kind)])

            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                sent = list(pool.map(send, zip(moments, plan, strict=True)))
            refused = [s for s in sent if s[0] != 201]
            print(f"[{backend}] sent {len(sent)} uploads in {time.monotonic() - t0:.1f}s, refused {len(refused)}")
            for status, code, _, _ in refused[:5]:
                print(f"[{backend}]   refused: {status} {code}")
            from django.db import connection

            from labs.models import ACTIVE_STATES, Evaluation

            def drained():
                connection.close()
                return not Evaluation.objects.filter(status__in=ACTIVE_STATES).exists()

            wait_until(drained, timeout=args.timeout, what="the queue to drain")
            # Where the machine's CPU went from the first upload to the drained queue: the web (its workers and the
            # limited children that check each upload), the Celery worker with its fork servers and boxes, the rest.
            cpu = {
                "wall_s": time.monotonic() - t0,
                "machine": machine_busy_seconds() - cpu0["machine"],
                "web": tree_cpu_seconds(web.pid) - cpu0["web"],
                "worker": tree_cpu_seconds(worker.pid) - cpu0["worker"],
                "reported_mib": None if cpu0["reported_mib"] is None else reported_mib() - cpu0["reported_mib"],
            }
        finally:
            os.sched_setaffinity(0, everywhere)
            stop(web)
            stop(worker)
        log = (work / "worker.log").read_text(errors="replace")
        figures = collect(backend, args.workers, log)
        figures["cpu"] = cpu
        figures["box_cpus"] = args.box_cpus
        alone = {kind: timed(kind, args.alone) for kind in SHARES}
        figures["alone"] = {kind: durations for kind, (durations, _) in alone.items()}
        # The same evaluations again, as many at a time as there are worker processes, each in its box with its
        # share of the cores and nothing of the platform around them: what this machine itself allows when the
        # evaluations run side by side (on a small machine they slow each other down through the shared cores,
        # caches and memory), against which the stream shows the cost of the platform alone.
        figures["together"] = {kind: timed(kind, args.alone, together=args.workers)[0] for kind in SHARES}
        figures["box_mb"] = {kind: max(memory, default=0) / 2**20 for kind, (_, memory) in alone.items()}
        from django.db import connections

        connections.close_all()
        return figures


def collect(backend: str, workers: int, log: str) -> dict:
    from labs.models import Evaluation

    rows = list(
        Evaluation.objects.filter(status="succeeded").values_list(
            "submission__lab__kind", "duration_s", "queued_at", "started_at", "finished_at"
        )
    )
    statuses = {}
    for status in Evaluation.objects.values_list("status", flat=True):
        statuses[status] = statuses.get(status, 0) + 1
    by_lab: dict[str, dict] = {}
    for kind, duration, queued, started, finished in rows:
        lab = by_lab.setdefault(kind, {"duration": [], "claimed": [], "wait": []})
        lab["duration"].append(duration)
        lab["claimed"].append((finished - started).total_seconds())
        lab["wait"].append((started - queued).total_seconds())
    first = min(r[3] for r in rows) if rows else None
    last = max(r[4] for r in rows) if rows else None
    span = (last - first).total_seconds() if rows else 0.0
    boxes = re.findall(r"ran in a (warm|cold) box", log)
    box_cpu = [tuple(map(float, m)) for m in re.findall(r"box CPU ([\d.]+) s for the job, ([\d.]+) s before it", log)]
    return {
        "backend": backend,
        "statuses": statuses,
        "labs": by_lab,
        "span_s": span,
        "workers": workers,
        "evaluations": len(rows),
        "warm": boxes.count("warm"),
        "cold": boxes.count("cold"),
        "box_job_cpu_s": sum(job for job, _ in box_cpu),
        "box_warm_cpu_s": sum(before for _, before in box_cpu),
    }


def report(figures: dict) -> None:
    backend, labs = figures["backend"], figures["labs"]
    print(f"\n== {backend}: {figures['evaluations']} evaluations, statuses {json.dumps(figures['statuses'])}")
    print(f"   boxes: {figures['warm']} warm, {figures['cold']} cold (a cold start per worker process is expected)")
    print("   lab     n   duration_s  claimed->finished  ratio (target)   queue wait p50 / p95   alone  together")
    targets = {"music": 1.1, "vision": 1.05, "llm": 1.05}
    alone_mean = {}
    for kind in SHARES:
        lab = labs.get(kind)
        alone = figures["alone"].get(kind) or []
        alone_mean[kind] = statistics.median(alone) if alone else None
        if not lab:
            print(f"   {kind:6} 0")
            continue
        d, c = statistics.median(lab["duration"]), statistics.median(lab["claimed"])
        print(
            f"   {kind:6} {len(lab['duration']):2}  {d:9.2f}s  {c:15.2f}s  {c / d:6.2f} ({targets[kind]})"
            f"     {percentile(lab['wait'], 50):7.1f}s / {percentile(lab['wait'], 95):6.1f}s"
            f"   {alone_mean[kind] or 0:6.2f}s {statistics.median(figures['together'].get(kind) or [0]):8.2f}s"
        )
    print("   a ready warm box holds: " + ", ".join(f"{k} {mb:.0f} MB" for k, mb in figures["box_mb"].items()))
    if figures["span_s"] > 0 and all(alone_mean.get(k) for k in labs):
        rate = figures["evaluations"] / (figures["span_s"] / 60) / figures["workers"]
        # The limit: one worker process doing nothing but these evaluations back to back, each as fast as alone.
        busy = sum(alone_mean[k] * len(labs[k]["duration"]) for k in labs)
        limit = figures["evaluations"] / (busy / 60)
        print(
            f"   throughput {rate:.2f} evaluations/min per worker process; limit from the same evaluations alone "
            f"{limit:.2f}/min; ratio {rate / limit:.2f} (target 0.9)"
        )
        together = {k: statistics.median(v) for k, v in figures["together"].items() if v}
        if all(together.get(k) for k in labs):
            bare = figures["evaluations"] / (sum(together[k] * len(labs[k]["duration"]) for k in labs) / 60)
            print(
                f"   the same evaluations run {figures['workers']} at a time with nothing of the platform around them: "
                f"{bare:.2f}/min per box, {bare / limit:.2f} of the alone limit (what side-by-side evaluations cost "
                f"each other on this machine); the stream reaches {rate / bare:.2f} of it (the platform's own cost)"
            )
        busy_s = sum(sum(lab["claimed"]) for lab in labs.values()) / figures["workers"]
        print(f"   each worker process spent {busy_s / figures['span_s']:.0%} of the stream's span on a claimed job")
        cpu, cores = figures["cpu"], os.cpu_count() or 1
        alone_cpu = sum(alone_mean[k] * len(labs[k]["duration"]) for k in labs) * figures["box_cpus"]
        print(
            f"   CPU from the first upload to the drained queue ({cpu['wall_s']:.0f} s, {cores} cores: "
            f"{cpu['wall_s'] * cores:.0f} CPU-s): machine busy {cpu['machine']:.1f} CPU-s; the web (uploads and "
            f"their checks) {cpu['web']:.1f}; the worker {cpu['worker']:.1f}, of which its boxes' jobs "
            f"{figures['box_job_cpu_s']:.1f}, their boxes' start before the job {figures['box_warm_cpu_s']:.1f}, and "
            f"the rest (Celery, fork servers, staging, storing results) "
            f"{cpu['worker'] - figures['box_job_cpu_s'] - figures['box_warm_cpu_s']:.1f}; other "
            f"{cpu['machine'] - cpu['web'] - cpu['worker']:.1f}"
        )
        print(
            f"   the same evaluations alone take at most {alone_cpu:.1f} CPU-s (their time alone x the box's "
            f"{figures['box_cpus']:g} CPUs)"
        )
        if cpu.get("reported_mib") is not None:
            print(
                f"   freed memory this machine's kernel handed back to its host during the stream: "
                f"{cpu['reported_mib']:.0f} MiB (each page of it touched again faults on the host, at the cost of "
                "the process that touches it; --hold-freed-memory keeps it for the run)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 30 students send 60 submissions: in 30 s they keep two worker processes busy (the throughput figure means
    # something only when the workers never wait for work).
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--window", type=float, default=30.0, help="seconds over which the uploads arrive")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one Celery worker's concurrency)")
    parser.add_argument("--backends", default="embedded,postgres")
    parser.add_argument("--alone", type=int, default=4, help="evaluations of each lab timed alone afterwards")
    parser.add_argument(
        "--box-cpus", type=float, default=None, help="each box's CPU quota (default: the cores over --workers)"
    )
    parser.add_argument(
        "--node-cores",
        type=int,
        default=None,
        help="keep the worker and its boxes on this many cores and the web and upload client on the others, as a "
        "grading node beside a web machine (default: all share every core)",
    )
    parser.add_argument(
        "--hold-freed-memory",
        action="store_true",
        help="on a virtual machine whose kernel hands freed memory back to its host, keep it for the run (root; "
        "restored afterwards), as a grading node that is not such a guest does",
    )
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-stream")
    parser.add_argument("--cache", type=Path, default=None, help="the course data cache (prepare-data --cache)")
    parser.add_argument("--one-backend", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.box_cpus is None:
        args.box_cpus = max(1.0, (args.node_cores or os.cpu_count() or 1) / args.workers)
    args.work.mkdir(parents=True, exist_ok=True)
    datasets, references = prepare(args.work, args.cache)
    if args.one_backend:
        figures = run_backend(args, args.one_backend, datasets, references)
        print("FIGURES " + json.dumps(figures, default=str))
        return
    # Each backend in a child of its own: Django is set up once per process, on one database.
    results = []
    for backend in args.backends.split(","):
        argv = [PYTHON, __file__, "--one-backend", backend] + [a for a in sys.argv[1:]]
        with freed_memory_held(args.hold_freed_memory):
            done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
        sys.stdout.write("".join(line + "\n" for line in done.stdout.splitlines() if not line.startswith("FIGURES ")))
        found = [line[8:] for line in done.stdout.splitlines() if line.startswith("FIGURES ")]
        if done.returncode != 0 or not found:
            print(f"[{backend}] failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            continue
        results.append(json.loads(found[-1]))
    for figures in results:
        report(figures)


if __name__ == "__main__":
    main()
