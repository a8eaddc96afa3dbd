"""What hostile safetensors headers cost the web process: many uploads at once through the token API.

Usage: .venv/bin/python benchmarks/hostile_headers.py [--uploads 100] [--threads 8] [--timeout 900] [--keep]

The web parses a safetensors header (JSON) at upload, and a parsed header costs up to 25 times its size in memory.
So the grader (grader/safetensors_io.py) refuses a header longer than MAX_HEADER_BYTES by its 8-byte length, before
reading it, and one holding more JSON values than the lab's tensor bound can need by counting bytes, before parsing
it. This measures what is left: for each scenario below it starts the site under gunicorn on 127.0.0.1 (a free
port, one gthread worker with --threads threads, as compose.yaml runs it; the embedded SQLite default in a temporary
VAR_DIR), warms the upload path up, notes the worker's idle resident memory (VmRSS) and resets its peak to it
(/proc/PID/clear_refs), then sends --uploads uploads at once, each from its own student with her own token, and
reads the worker's peak resident memory (VmHWM). Every artifact is config.json + model.safetensors:

  valid          Lab 1, small legal artifacts (E=8, H=16), accepted and stored: the baseline
  under-entries  Lab 1, a header of exactly MAX_HEADER_BYTES of one-byte tensor entries (about 16,600)
  under-objects  Lab 1, a header of exactly MAX_HEADER_BYTES of empty JSON objects, the most objects per byte
  over-entries   Lab 1, a header one byte over MAX_HEADER_BYTES of tensor entries: refused by its length
  vision-names   Lab 2, a header of MAX_HEADER_BYTES holding as many distinct names as its tensor bound
                 (vision.MAX_TENSORS) lets through to the parser: the costliest parse the count allows

It prints, per scenario, the answers (HTTP status and error code), the worker's peak RSS growth over idle, and its
ratio to the valid uploads' growth, against the 64 MiB target. Only 127.0.0.1 is contacted. Figures only: nothing
is asserted.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from upload_memory import RssPoller, children_of, free_port, proc_status_kb, wait_for_site  # noqa: E402

from grader.labs import music, vision  # noqa: E402
from grader.safetensors_io import (  # noqa: E402
    DTYPE_SIZES,
    HEADER_VALUES_PER_TENSOR,
    HEADER_VALUES_SPARE,
    MAX_HEADER_BYTES,
)

TARGET_GROWTH_MIB = 64
E, H = 8, 16

SETUP = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from courses.models import Course, Deadline, Membership, Role
from labs.models import Lab
from labs.services import create_token

course = Course.objects.create(name="Benchmark course", slug="bench", term="now")
due = timezone.now() + timedelta(days=3)
limits = dict(max_artifact_bytes=64 * 1024 * 1024, daily_quota=100, max_in_flight=100)
Lab.objects.create(
    course=course, slug="lab1-music", kind="music", number=1, title="Music Generation",
    deadline=Deadline.objects.create(course=course, key="lab1", title="Lab 1", due_at=due),
    primary_metric="bpc", primary_direction="min", tiebreak_metric="validity", tiebreak_direction="max", **limits,
)
Lab.objects.create(
    course=course, slug="lab2-vision", kind="vision", number=2, title="Computer Vision",
    deadline=Deadline.objects.create(course=course, key="lab2", title="Lab 2", due_at=due),
    primary_metric="worst_group_tpr", primary_direction="max", tiebreak_metric="balanced_accuracy",
    tiebreak_direction="max", **limits,
)
User = get_user_model()
users = User.objects.bulk_create(
    [User(username=f"s{k}@bench.example", email=f"s{k}@bench.example", password="!") for k in range(%(students)d)]
)
members = Membership.objects.bulk_create(
    [Membership(user=u, course=course, role=Role.STUDENT, display_name=f"s{k}") for k, u in enumerate(users)]
)
for member in members:
    print("TOKEN=" + create_token(member=member, name="bench", days=1)[1])
"""
MUSIC_CONFIG = {"embedding_dim": E, "hidden_size": H, "num_layers": 1, "vocab": music.COURSE_VOCAB}
VISION_CONFIG = {"architecture": "standard", "n_filters": 4}


def tensor_entries(length: int) -> tuple[bytes, int]:
    """A header of exactly ``length`` bytes: as many one-byte tensors as fit, then the spaces the format allows."""
    parts, used, i = [], 2, 0
    while True:
        entry = f'"t{i}":{{"dtype":"U8","shape":[1],"data_offsets":[{i},{i + 1}]}}'.encode()
        if used + len(entry) + 1 > length:
            break
        parts.append(entry)
        used += len(entry) + 1
        i += 1
    raw = b"{" + b",".join(parts) + b"}"
    return raw + b" " * (length - len(raw)), i


def empty_objects(length: int, count: int | None = None) -> bytes:
    """A header of exactly ``length`` bytes: one name holding a list of ``count`` empty objects (3 bytes each;
    by default as many as fit), then spaces."""
    if count is None:
        count = (length - len('{"t":[]}')) // 3
    raw = b'{"t":[' + b",".join([b"{}"] * count) + b"]}"
    return raw + b" " * (length - len(raw))


def distinct_names(length: int, count: int) -> bytes:
    """A header of exactly ``length`` bytes: an object of ``count`` distinct names, each as long as fits, holding 0.

    Of what a count of commas and brackets lets through, this costs the parser the most memory (about 8 MB per MB).
    """
    width = (length - 2) // count - len('"":0,')
    raw = b"{" + b",".join(b'"%0*d":0' % (width, i) for i in range(count)) + b"}"
    return raw + b" " * (length - len(raw))


def safetensors_file(header: bytes, data_size: int) -> bytes:
    return struct.pack("<Q", len(header)) + header + bytes(data_size)


def legal_model(expected: dict) -> bytes:
    """A legal safetensors file of zeros for ``expected`` (name -> (dtypes, shape)), without torch."""
    header, offset = {}, 0
    for name, (dtypes, shape) in expected.items():
        dtype = dtypes if isinstance(dtypes, str) else dtypes[0]
        size = DTYPE_SIZES[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    return safetensors_file(raw + b" " * (-len(raw) % 8), offset)


def multipart(files: dict[str, bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files.items()
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post(port: int, token: str, lab: str, body: bytes, content_type: str, timeout: float) -> str:
    """One upload; its answer as 'STATUS code'."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request(
            "POST",
            f"/api/labs/{lab}/submissions",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
        response = conn.getresponse()
        payload = response.read(1 << 20)
        conn.close()
    except OSError as exc:
        return f"no answer ({type(exc).__name__})"
    try:
        answer = json.loads(payload)
    except ValueError:
        return f"{response.status} (not JSON)"
    error = answer.get("error") if isinstance(answer, dict) else None
    return (
        f"{response.status} {error.get('code')}"
        if isinstance(error, dict)
        else f"{response.status} {answer.get('status')}"
    )


@dataclass
class Scenario:
    name: str
    what: str
    lab: str
    files: dict[str, bytes]
    valid: dict[str, bytes]  # a legal artifact of the same lab, for the warm-up


@dataclass
class Measured:
    scenario: Scenario
    answers: collections.Counter
    idle_kib: int
    peak_kib: int
    hwm_reset: bool
    seconds: float

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.idle_kib) / 1024


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current VmRSS (Linux 4.0+), so that the peak read later is this scenario's."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure(scenario: Scenario, *, env: dict, tokens: list[str], threads: int, deadline: float, log) -> Measured:
    warm_token, tokens = tokens[0], tokens[1:]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", f"--bind=127.0.0.1:{port}", "--workers=1",
         f"--threads={threads}", "--worker-class=gthread", "--timeout=600", "--backlog=2048",
         "--log-level=warning"],
        cwd=REPO, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_site(port, deadline)
        workers = children_of(server.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        worker = workers[0]
        # Warm up the upload path (imports, the token lookup, the checks, the refusal) with one valid upload and
        # one of this scenario, so that the figure is what the burst adds, not what the first request loads.
        post(port, warm_token, scenario.lab, *multipart(scenario.valid), 60)
        body, content_type = multipart(scenario.files)
        post(port, warm_token, scenario.lab, body, content_type, 60)
        time.sleep(1.0)
        idle = proc_status_kb(worker, "VmRSS")
        hwm_reset = reset_peak(worker)

        poller = RssPoller(worker)
        poller.start()
        answers: collections.Counter = collections.Counter()
        lock = threading.Lock()
        start = threading.Barrier(len(tokens) + 1)

        def upload(token: str) -> None:
            start.wait()
            answer = post(port, token, scenario.lab, body, content_type, max(10.0, deadline - time.monotonic()))
            with lock:
                answers[answer] += 1

        clients = [threading.Thread(target=upload, args=(token,), daemon=True) for token in tokens]
        for client in clients:
            client.start()
        started = time.perf_counter()
        start.wait()
        for client in clients:
            client.join()
        seconds = time.perf_counter() - started
        time.sleep(0.2)
        poller.stop.set()
        poller.join()
        hwm = proc_status_kb(worker, "VmHWM")
        # Without the reset VmHWM may be the warm-up's peak; the sampled VmRSS is then the better figure.
        peak = max(hwm, poller.peak_kb) if hwm_reset else poller.peak_kb
        return Measured(scenario, answers, idle, peak, hwm_reset, seconds)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=100, help="uploads sent at once per scenario (default 100)")
    parser.add_argument("--threads", type=int, default=8, help="threads of the gunicorn worker (default 8)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary VAR_DIR")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout

    music_config = json.dumps(MUSIC_CONFIG).encode()
    music_valid = {
        "config.json": music_config,
        "model.safetensors": legal_model(music.expected_tensors(len(music.COURSE_VOCAB), E, H, 1)),
    }
    vision_valid = {
        "config.json": json.dumps(VISION_CONFIG).encode(),
        "model.safetensors": legal_model(vision.expected_tensors(VISION_CONFIG["n_filters"], 1)),
    }
    under_entries, count_under = tensor_entries(MAX_HEADER_BYTES)
    over_entries, count_over = tensor_entries(MAX_HEADER_BYTES + 1)
    # The costliest header that Lab 2's tensor bound lets the parser see.
    most_values = HEADER_VALUES_PER_TENSOR * vision.MAX_TENSORS + HEADER_VALUES_SPARE - 1  # with the outer object

    def music_with(model: bytes) -> dict[str, bytes]:
        return {"config.json": music_config, "model.safetensors": model}

    scenarios = [
        Scenario("valid", f"Lab 1, small legal artifacts (E={E}, H={H}), accepted", "lab1-music", music_valid,
                 music_valid),
        Scenario("under-entries", f"Lab 1, header of {MAX_HEADER_BYTES} bytes, {count_under} tensor entries",
                 "lab1-music", music_with(safetensors_file(under_entries, count_under)), music_valid),
        Scenario("under-objects", f"Lab 1, header of {MAX_HEADER_BYTES} bytes of empty JSON objects", "lab1-music",
                 music_with(safetensors_file(empty_objects(MAX_HEADER_BYTES), 0)), music_valid),
        Scenario("over-entries", f"Lab 1, header of {MAX_HEADER_BYTES + 1} bytes, {count_over} tensor entries",
                 "lab1-music", music_with(safetensors_file(over_entries, count_over)), music_valid),
        Scenario("vision-names", f"Lab 2, header of {MAX_HEADER_BYTES} bytes, {most_values} distinct names "
                 "(the costliest parse its bound lets through)", "lab2-vision",
                 {"config.json": vision_valid["config.json"],
                  "model.safetensors": safetensors_file(distinct_names(MAX_HEADER_BYTES, most_values), 0)},
                 vision_valid),
    ]  # fmt: skip

    var_dir = Path(tempfile.mkdtemp(prefix="hostile-headers-"))
    (var_dir / "uploads").mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "CELERY_", "PRIVATE_STORAGE_", "SECURE_", "CACHE_"))
    }
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(40),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_HTTPS="0",
        VAR_DIR=str(var_dir),
        FILE_UPLOAD_TEMP_DIR=str(var_dir / "uploads"),
        LOG_LEVEL="ERROR",
    )
    try:
        remaining = max(10.0, deadline - time.monotonic())
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env,
                       check=True, timeout=remaining)  # fmt: skip
        setup = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", SETUP % {"students": args.uploads + 1}],
            cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=remaining,
        )  # fmt: skip
        tokens = [line[6:] for line in setup.stdout.splitlines() if line.startswith("TOKEN=")]

        print(
            f"{args.uploads} uploads at once per scenario to one gunicorn gthread worker with {args.threads} threads;"
        )
        print(
            f"header limit MAX_HEADER_BYTES = {MAX_HEADER_BYTES} bytes; target: peak RSS growth <= {TARGET_GROWTH_MIB} MiB"
        )
        results = []
        for scenario in scenarios:
            with (var_dir / "web.log").open("ab") as log:
                result = measure(scenario, env=env, tokens=tokens, threads=args.threads, deadline=deadline, log=log)
            results.append(result)
            answers = ", ".join(f"{answer} x{n}" for answer, n in result.answers.most_common())
            print(f"\n{scenario.name}: {scenario.what}")
            print(f"  answers: {answers}  ({result.seconds:.1f} s)")
            print(
                f"  worker RSS idle {result.idle_kib / 1024:.1f} MiB, peak {result.peak_kib / 1024:.1f} MiB "
                f"({'VmHWM' if result.hwm_reset else 'sampled VmRSS'})"
            )

        baseline = results[0].growth_mib
        print(f"\n{'scenario':<15} {'peak RSS growth':>16} {'x valid':>8}  target")
        for result in results:
            ratio = result.growth_mib / baseline if baseline > 0 else float("inf")
            verdict = "within" if result.growth_mib <= TARGET_GROWTH_MIB else "OVER"
            print(f"{result.scenario.name:<15} {result.growth_mib:>12.1f} MiB {ratio:>8.2f}  {verdict}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
