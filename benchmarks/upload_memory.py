"""How much memory the web process needs to receive a large artifact upload through the token API.

Usage: .venv/bin/python benchmarks/upload_memory.py [--size-mb 500] [--valid] [--timeout 600]

It starts the site under gunicorn on 127.0.0.1 (a free port, one gthread worker, the embedded SQLite default in a
temporary VAR_DIR), creates a course, a student, a Lab 1 lab that accepts 600+ MB and the student's API token, then
POSTs a multipart body (config.json + a --size-mb model.safetensors) generated chunk by chunk: neither side ever
holds the file in memory. It prints the worker's peak resident memory (VmHWM) before and after and its growth, the
highest VmRSS seen while the body streamed, the upload time and the API's answer.

By default the file is a safetensors header of a legal Lab 1 model followed by padding up to --size-mb: the body
streams and is checked in full, then refused (the point is the memory while it streams). --valid instead sends a
legal model of the largest shapes the lab allows (about 100 MB of zeros), which is accepted and stored.
Only 127.0.0.1 is contacted. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from grader.labs import music  # noqa: E402

TARGET_GROWTH_MB = 64
CHUNK = 1 << 20
LAB_SLUG = "lab1-music"

SETUP = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from courses.models import Course, Deadline, Membership, Role
from labs.models import Lab
from labs.services import create_token

course = Course.objects.create(name="Benchmark course", slug="bench", term="now")
deadline = Deadline.objects.create(course=course, key="lab1", title="Lab 1", due_at=timezone.now() + timedelta(days=3))
user = get_user_model().objects.create_user(username="ada@example.edu", email="ada@example.edu", password="x" * 20)
member = Membership.objects.create(user=user, course=course, role=Role.STUDENT, display_name="ada")
Lab.objects.create(
    course=course, slug="%(slug)s", kind="music", number=1, title="Music Generation", deadline=deadline,
    primary_metric="bpc", primary_direction="min", tiebreak_metric="validity", tiebreak_direction="max",
    max_artifact_bytes=%(max_bytes)d, daily_quota=50,
)
print("TOKEN=" + create_token(member=member, name="bench", days=1)[1])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def proc_status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the parent pid is the second field after its closing parenthesis.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def safetensors_header(e: int, h: int) -> tuple[bytes, int]:
    """The length-prefixed header of a legal one-layer Lab 1 model of float32 tensors, and its data size."""
    header, offset = {}, 0
    for name, (_dtypes, shape) in music.expected_tensors(len(music.COURSE_VOCAB), e, h, 1).items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


class MultipartBody:
    """A multipart/form-data body of small fields and one large generated file, produced in chunks."""

    def __init__(self, *, config: bytes, head: bytes, file_size: int):
        self.boundary = uuid.uuid4().hex
        b = self.boundary
        self.parts = [
            (
                f'--{b}\r\nContent-Disposition: form-data; name="config.json"; filename="config.json"\r\n'
                f"Content-Type: application/json\r\n\r\n"
            ).encode()
            + config
            + b"\r\n",
            (
                f'--{b}\r\nContent-Disposition: form-data; name="model.safetensors"; '
                f'filename="model.safetensors"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode(),
        ]
        self.head = head
        self.file_size = file_size
        self.tail = f"\r\n--{b}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return sum(map(len, self.parts)) + self.file_size + len(self.tail)

    def chunks(self):
        yield from self.parts
        yield self.head
        zeros = bytes(CHUNK)
        remaining = self.file_size - len(self.head)
        while remaining > 0:
            step = min(CHUNK, remaining)
            yield zeros if step == CHUNK else zeros[:step]
            remaining -= step
        yield self.tail


def post_streaming(port: int, token: str, body: MultipartBody, timeout: float) -> tuple[int, dict, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    conn.putrequest("POST", f"/api/labs/{LAB_SLUG}/submissions")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", body.content_type)
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    for chunk in body.chunks():
        conn.send(chunk)
    response = conn.getresponse()
    payload = response.read(1 << 20)
    elapsed = time.perf_counter() - started
    conn.close()
    try:
        answer = json.loads(payload)
    except ValueError:
        answer = {"raw": payload[:300].decode(errors="replace")}
    return response.status, answer, elapsed


def wait_for_site(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the site did not answer in time")


class RssPoller(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, proc_status_kb(self.pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            self.stop.wait(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=500, help="size of model.safetensors (default 500)")
    parser.add_argument("--valid", action="store_true", help="send a legal model of the largest allowed shapes")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary VAR_DIR")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout

    var_dir = Path(tempfile.mkdtemp(prefix="upload-bench-"))
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
        LOG_LEVEL="WARNING",
    )
    python = sys.executable
    if args.valid:
        e, h = music.BOUNDS["embedding_dim"][1], music.BOUNDS["hidden_size"][1]
        head, data_size = safetensors_header(e, h)
        file_size = len(head) + data_size
    else:
        e, h = 256, 1024  # the course notebook's model
        head, _ = safetensors_header(e, h)
        file_size = args.size_mb * 1024 * 1024
    config = json.dumps({"embedding_dim": e, "hidden_size": h, "num_layers": 1, "vocab": music.COURSE_VOCAB})
    max_bytes = max(600 * 1024 * 1024, file_size + (1 << 20))

    server = None
    try:
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env, check=True,
                       timeout=max(10.0, deadline - time.monotonic()))  # fmt: skip
        setup = subprocess.run(
            [python, "manage.py", "shell", "-c", SETUP % {"slug": LAB_SLUG, "max_bytes": max_bytes}],
            cwd=REPO, env=env, check=True, capture_output=True, text=True,
            timeout=max(10.0, deadline - time.monotonic()),
        )  # fmt: skip
        token = next(line[6:] for line in setup.stdout.splitlines() if line.startswith("TOKEN="))

        port = free_port()
        server = subprocess.Popen(
            [python, "-m", "gunicorn", "config.wsgi:application", f"--bind=127.0.0.1:{port}", "--workers=1",
             "--threads=4", "--worker-class=gthread", "--timeout=600", "--log-level=warning"],
            cwd=REPO, env=env, start_new_session=True,
        )  # fmt: skip
        wait_for_site(port, deadline)
        workers = children_of(server.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker, found {workers}")
        worker = workers[0]

        # Warm up the upload path (imports, the token lookup, the header checks) with a small refused upload, so
        # that the figure below is what the large body adds, not what the first request loads.
        small_head, _ = safetensors_header(e, h)
        post_streaming(
            port, token, MultipartBody(config=config.encode(), head=small_head, file_size=len(small_head)), 60
        )
        hwm_before = proc_status_kb(worker, "VmHWM")
        rss_before = proc_status_kb(worker, "VmRSS")

        poller = RssPoller(worker)
        poller.start()
        body = MultipartBody(config=config.encode(), head=head, file_size=file_size)
        status, answer, elapsed = post_streaming(port, token, body, max(10.0, deadline - time.monotonic()))
        poller.stop.set()
        poller.join()
        hwm_after = proc_status_kb(worker, "VmHWM")

        growth_mb = (hwm_after - hwm_before) / 1024
        mb = len(body) / (1024 * 1024)
        print(f"body: {mb:.1f} MB ({'legal model' if args.valid else 'legal header + padding'}, E={e}, H={h})")
        print(f"upload: HTTP {status} in {elapsed:.2f} s ({mb / elapsed:.0f} MB/s)")
        if status >= 400:
            error = answer.get("error", answer)
            print(f"answer: {error.get('code')}: {str(error.get('message'))[:200]}")
        else:
            print(f"answer: submission #{answer.get('id')} {answer.get('status')}")
        print(f"worker pid {worker}: VmRSS before {rss_before / 1024:.1f} MB, highest VmRSS seen during the upload "
              f"{poller.peak_kb / 1024:.1f} MB")  # fmt: skip
        print(f"worker peak RSS (VmHWM): {hwm_before / 1024:.1f} MB -> {hwm_after / 1024:.1f} MB")
        verdict = "within" if growth_mb < TARGET_GROWTH_MB else "OVER"
        print(f"peak RSS growth: {growth_mb:.1f} MB ({verdict} the {TARGET_GROWTH_MB} MB target)")
        return 0
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
