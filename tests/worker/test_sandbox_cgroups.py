"""Per-run cgroups carry the memory (swap included) and process limits on both cgroup versions."""

from pathlib import Path

import pytest

from worker.sandbox import Limits, SandboxUnavailable
from worker.sandbox.cgroups import Cgroup, detect_version


def fake_v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup2"
    root.mkdir()
    (root / "cgroup.controllers").write_text("io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("")
    return root


def test_v2_cgroup_gets_memory_and_pids_limits_under_a_delegated_parent(tmp_path):
    root = fake_v2_root(tmp_path)
    # A real cgroupfs creates these files in every new folder; the fake parent needs them written by hand.
    parent = root / "grader-sandbox"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("memory pids\n")
    (parent / "cgroup.subtree_control").write_text("")

    group = Cgroup.create(Limits(memory_bytes=3 * 1024**2, pids=17), root=root)

    (run_dir,) = group.dirs.values()
    assert group.version == 2 and run_dir.parent == parent
    assert (run_dir / "memory.max").read_text() == str(3 * 1024**2)
    assert (run_dir / "pids.max").read_text() == "17"
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert group.procs_files() == [run_dir / "cgroup.procs"]
    assert group.oom_killed() is False
    (run_dir / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert group.oom_killed() is True


def test_a_cpu_quota_that_cannot_be_set_makes_the_sandbox_unavailable(tmp_path):
    root = fake_v2_root(tmp_path)
    parent = root / "grader-sandbox"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("memory pids\n")
    (parent / "cgroup.subtree_control").write_text("")

    with pytest.raises(SandboxUnavailable, match="CPU quota"):
        Cgroup.create(Limits(memory_bytes=3 * 1024**2, pids=17, cpus=1.5), root=root)


def test_a_machine_without_memory_and_pids_controllers_has_no_sandbox(tmp_path):
    with pytest.raises(SandboxUnavailable):
        detect_version(tmp_path)
    root = fake_v2_root(tmp_path)
    (root / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(SandboxUnavailable):
        Cgroup.create(Limits(), root=root)


def test_on_this_host_memory_plus_swap_equals_memory_and_the_cgroup_is_removed():
    group = Cgroup.create(Limits(memory_bytes=96 * 1024**2, pids=9))
    try:
        if group.version == 1:
            mem = group.dirs["memory"]
            assert (mem / "memory.limit_in_bytes").read_text().strip() == str(96 * 1024**2)
            assert (mem / "memory.memsw.limit_in_bytes").read_text().strip() == str(96 * 1024**2)
            assert (group.dirs["pids"] / "pids.max").read_text().strip() == "9"
        else:
            d = group.dirs["unified"]
            assert (d / "memory.max").read_text().strip() == str(96 * 1024**2)
            assert (d / "memory.swap.max").read_text().strip() == "0"
            assert (d / "pids.max").read_text().strip() == "9"
        assert group.pids() == []
    finally:
        group.remove()
    assert all(not d.exists() for d in group.dirs.values())
