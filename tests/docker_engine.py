"""A real Docker Engine for the tests: a private dockerd with no network, and a tiny image made offline.

The session fixture ``docker_engine`` starts Debian's ``dockerd`` on a unix socket under a temporary folder (its
own data root, exec root, pid file, containerd namespace and cgroup parent; no bridge, no iptables, no ip
forwarding, no TCP), waits until it answers and stops it, with everything it started, at the end of the session.
Where it cannot start (not root, no dockerd, no sandbox user, a kernel that refuses), the tests that use it are
skipped with the reason, dockerd's own log tail included.

Its image is imported from a tar of a few kilobytes (the mount points and the host's ``/bin -> usr/bin`` links),
tagged by the hash of its content. It carries an environment and an entrypoint of its own, which the backend must
ignore. The runtime, the host's /usr, its loader files, this Python's prefixes and the grader package (at
``/opt/grader/grader``), is bind-mounted read-only into every container through ``DockerSandbox(runtime_mounts=)``.

Use it in a test module with ``from tests.docker_engine import docker_engine, docker_sandbox_for  # noqa: F401``
(or list ``tests.docker_engine`` in ``pytest_plugins``), then::

    def test_x(docker_sandbox_for, tmp_path):
        sandbox = docker_sandbox_for(grader_dir=tmp_path / "hostile" / "grader")  # a folder holding __main__.py
        outcome = sandbox.run(["python", "-m", "grader", ...], mounts, limits)

``docker_engine.sandbox(grader_dir=..., **options)`` is the same thing with any DockerSandbox option overridden,
``docker_engine.sandbox_containers()`` lists the sandbox containers left on the engine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from worker.sandbox import Mount, SandboxUnavailable
from worker.sandbox.account import sandbox_user
from worker.sandbox.docker import SANDBOX_LABEL, DockerSandbox

REPO = Path(__file__).resolve().parents[1]
SECCOMP_PROFILE = REPO / "platform" / "seccomp-grader.json"
GRADER_PARENT = "/opt/grader"
IMAGE_REPOSITORY = "course-platform-test-runtime"
START_SECONDS = 60
STOP_SECONDS = 30
SYSTEM_TOPS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What the dynamic loader and Python read from /etc, and nothing else of it.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "nsswitch.conf", "mime.types")
# The image's own settings: a box must start with none of them (the backend blanks and overrides them).
IMAGE_CHANGES = (
    "ENV IMAGE_SECRET=planted-in-the-image",
    "ENV PYTHONPATH=/image/site-packages",
    "ENV LD_PRELOAD=/image/preload.so",
    'ENTRYPOINT ["/bin/false"]',
)
# Host folders dockerd and its containerd create when they are missing; removed again if they are left empty.
HOST_RUNTIME_DIRS = (
    Path("/run/docker/plugins"),
    Path("/run/docker"),
    Path("/run/containerd/s"),
    Path("/run/containerd"),
)
MNT_DETACH = 0x2


class EngineUnavailable(RuntimeError):
    """dockerd cannot run here; the message says why (its log tail when it started and died)."""


def _under_system_tops(path: str) -> bool:
    return any(path == f"/{top}" or path.startswith(f"/{top}/") for top in SYSTEM_TOPS)


def image_tar() -> bytes:
    """The test image's whole file system: mount points and the host's top-level links, byte for byte stable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name: str, *, link: str | None = None, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.mode = mode
            if link is None:
                info.type = tarfile.DIRTYPE
            else:
                info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)

        for top in SYSTEM_TOPS:
            host = Path("/") / top
            if host.is_symlink():
                add(top, link=os.readlink(host))
            elif host.is_dir():
                add(top)
        for name in ("etc", "dev", "proc", "sys", "opt", "opt/grader", "opt/grader/grader"):
            add(name)
        add("tmp", mode=0o1777)
    return buffer.getvalue()


class DockerEngine:
    """One private dockerd under ``root``; ``sandbox()`` builds a DockerSandbox that runs on it."""

    def __init__(self, root: Path):
        self.root = root
        # Its containers' cgroups sit under /<name>/, which says "docker" as the host's own Engine's do.
        self.name = f"docker-course-platform-tests-{uuid.uuid4().hex[:8]}"
        self.socket = root / "engine.sock"
        self.base_url = f"unix://{self.socket}"
        self.log_path = root / "dockerd.log"
        self.staging_root = root / "staging"
        self.image = ""
        self.client = None
        self._proc: subprocess.Popen | None = None
        self._created_host_dirs = [d for d in HOST_RUNTIME_DIRS if not d.exists()]

    # -- life

    def start(self) -> None:
        dockerd = shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin:/bin")
        if dockerd is None:
            raise EngineUnavailable("dockerd is not installed (Debian package docker.io)")
        config = self.root / "daemon.json"
        # Never the host's /etc/docker/daemon.json, nor its /etc/docker/key.json (20.10 writes one at start).
        config.write_text(json.dumps({"deprecated-key-path": str(self.root / "key.json")}) + "\n")
        command = [
            dockerd,
            f"--host=unix://{self.socket}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--config-file={config}",
            f"--containerd-namespace={self.name}",
            f"--containerd-plugins-namespace={self.name}-plugins",
            f"--cgroup-parent=/{self.name}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--storage-driver=overlay2",
            "--log-level=warn",  # the log's tail is the reason a skipped test gives
        ]
        with open(self.log_path, "wb") as log:
            # Its environment is built from nothing: no secret of the test process reaches the Engine.
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
                cwd=self.root,
            )
        import docker

        deadline = time.monotonic() + START_SECONDS
        while True:
            if self._proc.poll() is not None:
                raise EngineUnavailable(f"dockerd exited with {self._proc.returncode}:\n{self.log_tail()}")
            if self.socket.exists():
                try:
                    client = docker.DockerClient(base_url=self.base_url, timeout=30)
                    client.ping()
                    self.client = client
                    return
                except Exception:
                    pass
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"dockerd did not answer within {START_SECONDS} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no dockerd log)"

    def stop(self) -> None:
        """Remove every container, stop dockerd, then take down whatever it left: processes, mounts, cgroups."""
        if self.client is not None:
            try:
                for container in self.client.containers.list(all=True):
                    container.remove(force=True)
            except Exception:
                pass
            self.client.close()
            self.client = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(10)
        self._kill_leftovers()
        clean = self._detach_leftover_mounts()
        self._remove_cgroups()
        for folder in self._created_host_dirs:
            try:
                folder.rmdir()
            except OSError:
                pass
        if clean:
            shutil.rmtree(self.root, ignore_errors=True)

    def _kill_leftovers(self) -> None:
        """containerd and its shims started for this engine name its folder on their command lines."""
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass

    def _detach_leftover_mounts(self) -> bool:
        prefix = str(self.root) + "/"
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        with open("/proc/self/mountinfo") as handle:
            points = [line.split()[4] for line in handle if line.split()[4].startswith(prefix)]
        for point in sorted(points, key=len, reverse=True):
            libc.umount2(os.fsencode(point), MNT_DETACH)
        with open("/proc/self/mountinfo") as handle:
            return not any(line.split()[4].startswith(prefix) for line in handle)

    def _remove_cgroups(self) -> None:
        for controller in Path("/sys/fs/cgroup").iterdir():
            group = controller / self.name
            if group.is_dir():
                for folder in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    try:
                        folder.rmdir()
                    except OSError:
                        pass
                try:
                    group.rmdir()
                except OSError:
                    pass
        if (Path("/sys/fs/cgroup") / self.name).is_dir():  # cgroup v2
            try:
                (Path("/sys/fs/cgroup") / self.name).rmdir()
            except OSError:
                pass

    # -- the image and the runtime

    def build_image(self) -> str:
        """Import the image once (reused under its content tag); returns its name."""
        data = image_tar()
        digest = hashlib.sha256(data + json.dumps(IMAGE_CHANGES).encode()).hexdigest()[:16]
        tag = f"{IMAGE_REPOSITORY}:{digest}"
        try:
            self.client.images.get(tag)
        except Exception:
            self.client.api.import_image_from_data(
                data, repository=IMAGE_REPOSITORY, tag=digest, changes=list(IMAGE_CHANGES)
            )
            self.client.images.get(tag)
        self.image = tag
        return tag

    def runtime_mounts(self, *, grader_dir: str | Path | None = None) -> list[Mount]:
        """The host's runtime, read-only: system folders, loader files, this Python, and a grader package."""
        mounts = []
        for top in SYSTEM_TOPS:
            host = Path("/") / top
            if host.is_dir() and not host.is_symlink():
                mounts.append(Mount(host, f"/{top}"))
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                mounts.append(Mount((Path("/etc") / name).resolve(), f"/etc/{name}"))
        for prefix in dict.fromkeys(str(Path(p).absolute()) for p in (sys.prefix, sys.base_prefix)):
            if not _under_system_tops(prefix):
                mounts.append(Mount(Path(prefix), prefix))
        mounts.append(Mount(Path(grader_dir or REPO / "grader").resolve(), f"{GRADER_PARENT}/grader"))
        return mounts

    def sandbox(self, *, grader_dir: str | Path | None = None, **config) -> DockerSandbox:
        """A DockerSandbox on this engine, running this Python with ``grader_dir`` as the ``grader`` package.

        The seccomp profile is platform/seccomp-grader.json; any constructor option can be overridden.
        """
        options = {
            "image": self.image,
            "base_url": self.base_url,
            "python": sys.executable,
            "pythonpath": GRADER_PARENT,
            "runtime_mounts": self.runtime_mounts(grader_dir=grader_dir),
            "seccomp_profile": SECCOMP_PROFILE,
            "staging_root": self.staging_root,
            "api_timeout": 30,
        }
        options.update(config)
        return DockerSandbox(**options)

    def sandbox_containers(self) -> list:
        """Every container of a sandbox on this engine, running or not."""
        return self.client.containers.list(all=True, filters={"label": SANDBOX_LABEL})


def why_not_here() -> str | None:
    if os.geteuid() != 0:
        return "the Docker sandbox tests run as root (dockerd, and the output tmpfs the worker mounts)"
    if shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "dockerd is not installed (Debian package docker.io)"
    try:
        sandbox_user()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


_shared: dict = {"engine": None, "users": 0, "failure": None}


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory) -> DockerEngine:
    """The session's private Docker Engine with its test image; one for the whole session, however imported."""
    if _shared["failure"]:
        pytest.skip(_shared["failure"])
    if _shared["engine"] is None:
        reason = why_not_here()
        if reason:
            _shared["failure"] = f"no Docker Engine for the tests: {reason}"
            pytest.skip(_shared["failure"])
        engine = DockerEngine(tmp_path_factory.mktemp("dockerd", numbered=True))
        try:
            engine.start()
            engine.build_image()
        except Exception as exc:
            engine.stop()
            _shared["failure"] = f"the test Docker Engine cannot start here: {exc}"
            pytest.skip(_shared["failure"])
        _shared["engine"] = engine
    _shared["users"] += 1
    try:
        yield _shared["engine"]
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["engine"].stop()
            _shared["engine"] = None


@pytest.fixture
def docker_sandbox_for(docker_engine):
    """``build(grader_dir=None, **options)``: a DockerSandbox on the session's engine, that grader package inside."""
    return docker_engine.sandbox
