"""Per-run cgroups (v1 or v2, detected at run time) that bound a sandbox's memory and processes."""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
import uuid
from pathlib import Path

from worker.sandbox.base import Limits, SandboxUnavailable

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids")
# CPU weight of a box relative to its sibling boxes: a box warming up ahead of its job gets the least the kernel
# allows, so it only uses CPU that no running job wants; handed its job, it gets the default back.
CPU_WEIGHT = {1: {"low": 2, "normal": 1024}, 2: {"low": 1, "normal": 100}}  # v1 cpu.shares, v2 cpu.weight


def detect_version(root: Path = CGROUP_ROOT) -> int:
    """2 on a unified hierarchy, 1 when memory and pids are mounted v1-style; else SandboxUnavailable."""
    if (root / "cgroup.controllers").is_file():
        return 2
    if (root / "memory" / "memory.limit_in_bytes").is_file() and (root / "pids").is_dir():
        return 1
    raise SandboxUnavailable(f"no usable cgroup hierarchy under {root} (need memory and pids)")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _read_counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _pids_in(procs_file: Path) -> list[int]:
    try:
        return [int(p) for p in procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


class Cgroup:
    """One cgroup per sandbox run: limits written before the sandbox enters it, emptied and removed after."""

    def __init__(self, version: int, dirs: dict[str, Path]):
        self.version = version
        self.dirs = dirs  # controller name (or "unified") -> the run's own folder

    @classmethod
    def create(cls, limits: Limits, *, root: Path = CGROUP_ROOT, parent: str = "grader-sandbox") -> Cgroup:
        """A fresh cgroup under ``root``/``parent`` holding ``limits``; SandboxUnavailable if impossible."""
        version = detect_version(root)
        name = f"run-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            group = cls._create_v2(root, parent, name) if version == 2 else cls._create_v1(root, parent, name)
        except OSError as exc:
            where = f"{root}/{parent}"
            raise SandboxUnavailable(f"cannot create a cgroup v{version} under {where}: {exc}") from exc
        try:
            group._apply(limits)
        except OSError as exc:
            group.remove()
            raise SandboxUnavailable(f"cannot set cgroup limits in {group.dirs}: {exc}") from exc
        return group

    @classmethod
    def _create_v1(cls, root: Path, parent: str, name: str) -> Cgroup:
        dirs = {}
        controllers = list(V1_CONTROLLERS)
        if (root / "cpu" / "cpu.cfs_quota_us").is_file():
            controllers.append("cpu")
        if (root / "cpuacct" / "cpuacct.usage").is_file() and not (root / "cpu" / "cpuacct.usage").is_file():
            controllers.append("cpuacct")  # mounted apart from cpu: the run's CPU time is read there
        for controller in controllers:
            base = root / controller / parent
            base.mkdir(exist_ok=True)
            (base / name).mkdir()
            dirs[controller] = base / name
        return cls(1, dirs)

    @classmethod
    def _create_v2(cls, root: Path, parent: str, name: str) -> Cgroup:
        base = root / parent
        _enable_controllers(root, evacuate=True)
        base.mkdir(exist_ok=True)
        _enable_controllers(base, evacuate=False)
        (base / name).mkdir()
        return cls(2, {"unified": base / name})

    def _apply(self, limits: Limits) -> None:
        memory = str(limits.memory_bytes)
        if self.version == 2:
            d = self.dirs["unified"]
            _write(d / "memory.max", memory)
            # No swap: a job must fail inside its memory bound, not thrash the node.
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.pids))
            if limits.cpus is not None:
                if not (d / "cpu.max").exists():
                    raise OSError(f"the cpu controller is not enabled for {d}, so no CPU quota can be set")
                _write(d / "cpu.max", f"{int(limits.cpus * 100_000)} 100000")
            return
        mem = self.dirs["memory"]
        _write(mem / "memory.limit_in_bytes", memory)
        if (mem / "memory.memsw.limit_in_bytes").exists():
            _write(mem / "memory.memsw.limit_in_bytes", memory)
        else:
            log.warning("swap accounting is off; the memory limit of %s does not cover swap", mem)
            _write(mem / "memory.swappiness", "0")
        _write(self.dirs["pids"] / "pids.max", str(limits.pids))
        if limits.cpus is not None:
            if "cpu" not in self.dirs:
                raise OSError("the cpu controller is not mounted, so no CPU quota can be set")
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", "100000")
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpus * 100_000)))

    def _cpu_weight_file(self) -> Path | None:
        if self.version == 2:
            path = self.dirs["unified"] / "cpu.weight"
        else:
            path = self.dirs["cpu"] / "cpu.shares" if "cpu" in self.dirs else None
        return path if path is not None and path.exists() else None

    def set_cpu_weight(self, level: str) -> bool:
        """Set the run's CPU weight to ``low`` or ``normal``; False where no cpu controller lets us."""
        path = self._cpu_weight_file()
        if path is None:
            return False
        try:
            _write(path, str(CPU_WEIGHT[self.version][level]))
        except OSError as exc:
            log.warning("cannot set the CPU weight of %s: %s", path, exc)
            return False
        return True

    def cpu_weight(self) -> int | None:
        """The run's CPU weight now (cpu.shares on v1, cpu.weight on v2); None where there is none."""
        path = self._cpu_weight_file()
        try:
            return int(path.read_text()) if path is not None else None
        except (OSError, ValueError):
            return None

    def delegate(self, uid: int, gid: int) -> None:
        """Hand the run's cgroup to the box's user: its ``cgroup.procs`` (and folder) become that user's."""
        for d in self.dirs.values():
            os.chown(d, uid, gid)
            for name in ("cgroup.procs", "tasks", "cgroup.threads"):
                if (d / name).exists():
                    os.chown(d / name, uid, gid)

    def enter(self, pid: int) -> None:
        """Move ``pid`` into every controller of this cgroup (the worker does it, as root, before the box runs)."""
        for procs in self.procs_files():
            _write(procs, str(pid))

    def cpu_seconds(self) -> float | None:
        """CPU time used by everything that ran in this cgroup so far; None where no controller counts it."""
        try:
            if self.version == 2:
                return _read_counter(self.dirs["unified"] / "cpu.stat", "usage_usec") / 1e6
            for controller in ("cpuacct", "cpu"):
                usage = self.dirs.get(controller)
                if usage is not None and (usage / "cpuacct.usage").is_file():
                    return int((usage / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            pass
        return None

    def memory_bytes(self) -> int | None:
        """Memory charged to this cgroup now (page cache included); None where it cannot be read."""
        try:
            if self.version == 2:
                return int((self.dirs["unified"] / "memory.current").read_text())
            return int((self.dirs["memory"] / "memory.usage_in_bytes").read_text())
        except (OSError, ValueError, KeyError):
            return None

    def procs_files(self) -> list[Path]:
        """The files a process writes its pid to in order to enter every controller of this cgroup."""
        return [d / "cgroup.procs" for d in self.dirs.values()]

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this cgroup for exceeding its memory limit."""
        if self.version == 2:
            return _read_counter(self.dirs["unified"] / "memory.events", "oom_kill") > 0
        return _read_counter(self.dirs["memory"] / "memory.oom_control", "oom_kill") > 0

    def pids(self) -> list[int]:
        return _pids_in(self.procs_files()[0])

    def kill_all(self, *, timeout: float = 10.0) -> bool:
        """SIGKILL everything in the cgroup until it is empty; False if something survived ``timeout``."""
        if self.version == 2 and (self.dirs["unified"] / "cgroup.kill").exists():
            try:
                _write(self.dirs["unified"] / "cgroup.kill", "1")
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return True
            if time.monotonic() > deadline:
                log.error("processes %s survived in cgroup %s", pids, self.dirs)
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        """Remove the run's cgroup folders (the kernel refuses while a process is left, so kill first)."""
        for d in self.dirs.values():
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        log.warning("cannot remove cgroup %s: %s", d, exc)
                        break
                    time.sleep(0.02)


def _enable_controllers(cgroup: Path, *, evacuate: bool) -> None:
    """Turn on memory and pids for the children of ``cgroup`` (v2).

    The kernel refuses while ``cgroup`` holds processes itself (EBUSY), which is the case at the root of a
    container's cgroup namespace; there, as Docker-in-Docker does, the processes move into a leaf first.
    """
    wanted = {"memory", "pids"}
    available = set((cgroup / "cgroup.controllers").read_text().split())
    missing = wanted - available
    if missing:
        raise SandboxUnavailable(f"cgroup controllers {sorted(missing)} are not delegated to {cgroup}")
    enabled = set((cgroup / "cgroup.subtree_control").read_text().split())
    if wanted <= enabled:
        return
    request = " ".join(f"+{c}" for c in sorted(wanted - enabled))
    try:
        _write(cgroup / "cgroup.subtree_control", request)
    except OSError as exc:
        if exc.errno != errno.EBUSY or not evacuate:
            raise
        leaf = cgroup / "supervisor"
        leaf.mkdir(exist_ok=True)
        for pid in _pids_in(cgroup / "cgroup.procs"):
            try:
                _write(leaf / "cgroup.procs", str(pid))
            except OSError:
                pass  # kernel threads and exiting processes cannot move
        _write(cgroup / "cgroup.subtree_control", request)
    if "cpu" in available and "cpu" not in enabled:
        try:  # a CPU quota is welcome but not essential: threads are also capped through the environment
            _write(cgroup / "cgroup.subtree_control", "+cpu")
        except OSError as exc:
            log.warning("cannot enable the cpu controller under %s: %s", cgroup, exc)
