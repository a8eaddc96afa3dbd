"""A stand-in for the Docker Engine (which cannot run here): a small Engine API server on a unix socket.

It answers the endpoints docker-py calls for the sandbox (version, ping, create, attach, start, wait, logs,
inspect, kill, delete), records every request, and plays one of three endings per container: a normal exit,
a job that never ends (wait blocks until killed) or an out-of-memory kill. It runs no container at all.
"""

from __future__ import annotations

import json
import re
import socketserver
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

API_VERSION = "1.45"


class _Container:
    def __init__(self, body: dict, scenario: str, stdout: bytes, stderr: bytes):
        self.id = uuid.uuid4().hex * 2
        self.body = body
        self.scenario = scenario
        self.stdout = stdout
        self.stderr = stderr
        self.started = False
        self.killed = threading.Event()
        self.exited = threading.Event()
        self.stdin = b""
        self.stdin_line = threading.Event()
        self.exit_code: int | None = None
        self.removed = False

    def finish(self) -> None:
        """Decide the ending once the job could run (after start, and after the job line when warm)."""
        if self.body.get("OpenStdin"):
            self.stdin_line.wait(30)
        if self.scenario == "timeout":
            self.killed.wait(60)
            self.exit_code = 137
        elif self.scenario == "oom":
            self.exit_code = 137
        else:
            self.exit_code = 0
        self.exited.set()

    def output(self, stream: str) -> bytes:
        if stream == "stdout":
            ready = b"ready\n" if self.body.get("OpenStdin") else b""
            return ready + self.stdout.replace(b"{stdin}", self.stdin.strip())
        return self.stderr


class DockerStandIn:
    """Serves the Engine API on ``socket_path`` in a thread; ``requests`` and ``containers`` record what happened."""

    def __init__(self, socket_path: str):
        self.socket_path = socket_path
        self.scenario = "exit"
        self.stdout = b"hello from the container\n"
        self.stderr = b""
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict] = []
        self.containers: dict[str, _Container] = {}
        self.lock = threading.Lock()
        standin = self

        class Handler(_Handler):
            engine = standin

        self.server = _UnixHTTPServer(socket_path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    def __enter__(self) -> DockerStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for container in self.containers.values():
            container.killed.set()
            container.stdin_line.set()
        self.server.shutdown()
        self.server.server_close()

    def calls(self, method: str, pattern: str) -> list[str]:
        return [path for m, path in self.requests if m == method and re.search(pattern, path)]


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _Handler(BaseHTTPRequestHandler):
    engine: DockerStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    # -- plumbing

    def _route(self, method: str) -> None:
        parsed = urlparse(self.path)
        path = re.sub(r"^/v[0-9.]+", "", parsed.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.engine.lock:
            self.engine.requests.append((method, path))
        handler = getattr(self, f"_{method.lower()}_{_endpoint(path)}", None)
        if handler is None:
            return self._json(404, {"message": f"stand-in does not serve {method} {path}"})
        return handler(path, query, body)

    def do_GET(self):  # noqa: N802 - the http.server naming
        self._route("GET")

    def do_POST(self):  # noqa: N802
        self._route("POST")

    def do_DELETE(self):  # noqa: N802
        self._route("DELETE")

    def do_HEAD(self):  # noqa: N802
        self._route("HEAD")

    def _json(self, status: int, data) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _empty(self, status: int = 204) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _container(self, path: str) -> _Container | None:
        match = re.match(r"^/containers/([0-9a-f]+)", path)
        container = self.engine.containers.get(match.group(1)) if match else None
        if container is None or container.removed:
            self._json(404, {"message": "No such container"})
            return None
        return container

    # -- endpoints

    def _get_version(self, path, query, body):
        self._json(200, {"ApiVersion": API_VERSION, "Version": "stand-in", "MinAPIVersion": "1.24"})

    def _get_ping(self, path, query, body):
        payload = b"OK"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    _head_ping = _get_ping

    def _post_create(self, path, query, body):
        request = json.loads(body)
        engine = self.engine
        container = _Container(request, engine.scenario, engine.stdout, engine.stderr)
        with engine.lock:
            engine.created.append(request)
            engine.containers[container.id] = container
        self._json(201, {"Id": container.id, "Warnings": []})

    def _get_inspect(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        running = container.started and not container.exited.is_set()
        self._json(
            200,
            {
                "Id": container.id,
                "Name": "/standin",
                "Config": {"Tty": False, "Image": container.body.get("Image"), "OpenStdin": False},
                "HostConfig": container.body.get("HostConfig", {}),
                "State": {
                    "Status": "running" if running else ("exited" if container.exited.is_set() else "created"),
                    "Running": running,
                    "ExitCode": container.exit_code or 0,
                    "OOMKilled": container.scenario == "oom" and container.exited.is_set(),
                },
            },
        )

    def _post_start(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        container.started = True
        threading.Thread(target=container.finish, daemon=True).start()
        self._empty()

    def _post_attach(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        self.send_response(101)
        self.send_header("Content-Type", "application/vnd.docker.raw-stream")
        self.send_header("Connection", "Upgrade")
        self.send_header("Upgrade", "tcp")
        self.end_headers()
        self.wfile.flush()
        while b"\n" not in container.stdin:
            data = self.connection.recv(4096)
            if not data:
                break
            container.stdin += data
        container.stdin_line.set()
        self.close_connection = True

    def _post_wait(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        container.exited.wait(120)
        self._json(200, {"StatusCode": container.exit_code, "Error": None})

    def _get_logs(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        if query.get("follow") in ("1", "true", "True"):
            container.exited.wait(60) if not container.body.get("OpenStdin") else None
        frames = b""
        for stream, kind in (("stdout", 1), ("stderr", 2)):
            if query.get(stream) in ("1", "true", "True"):
                data = container.output(stream)
                if data:
                    frames += struct.pack(">BxxxL", kind, len(data)) + data
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
        self.send_header("Content-Length", str(len(frames)))
        self.end_headers()
        self.wfile.write(frames)

    def _post_kill(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        container.killed.set()
        container.stdin_line.set()
        self._empty()

    def _delete_remove(self, path, query, body):
        container = self._container(path)
        if container is None:
            return
        container.killed.set()
        container.stdin_line.set()
        container.removed = True
        self._empty()


def _endpoint(path: str) -> str:
    if path in ("/version", "/_ping"):
        return path.strip("/_")
    if path == "/containers/create":
        return "create"
    match = re.match(r"^/containers/[0-9a-f]+(?:/(\w+))?$", path)
    if not match:
        return "unknown"
    action = match.group(1)
    if action is None:
        return "remove"
    return {"json": "inspect"}.get(action, action)
