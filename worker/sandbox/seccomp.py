"""The seccomp filter of the box: system calls grading never needs are refused, for both backends.

Everything else is allowed: an allow-list would have to follow every release of torch, CUDA and glibc, while
this list names the kernel interfaces that sandbox escapes and host attacks go through.
"""

from __future__ import annotations

import errno
import json
import os

# Refused with EPERM: debugging other processes, the mount table, namespaces, kernel keyrings, eBPF, perf,
# userfaultfd (a classic race amplifier), kexec, kernel modules, io_uring, and the host's clock and swap.
REFUSED = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "syslog",
    "vhangup",
)
# clone3 passes its flags through memory a filter cannot read: refusing it with ENOSYS makes glibc fall back to
# clone, whose flags the filter does read.
FALLBACK_ENOSYS = ("clone3",)
CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)


class SeccompUnavailable(RuntimeError):
    """libseccomp or its bindings are missing: the box cannot be given its filter."""


# What a fork server's box may do beyond a job's box: it enters new namespaces and mounts each job's view before
# that job's box loads the full filter (seccomp filters stack: the box then has both).
FORK_SERVER_ALLOWED = ("mount", "unshare")


def bpf_fd(*, fork_server: bool = False) -> int:
    """A sealed in-memory file holding the compiled filter, positioned at its start (bwrap's ``--seccomp FD``);
    ``fork_server``: the filter of a fork server's own box, which lets it build its boxes' namespaces."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:  # OSError: the bindings load libseccomp.so.2 at import
        raise SeccompUnavailable(f"libseccomp is not usable here: {exc}") from exc
    refuse = seccomp.ERRNO(errno.EPERM)
    flt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in REFUSED:
        if not (fork_server and name in FORK_SERVER_ALLOWED):
            flt.add_rule(refuse, name)
    for name in FALLBACK_ENOSYS:
        flt.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
    for flag in CLONE_NAMESPACE_FLAGS:
        flt.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    fd = os.memfd_create("grader-seccomp", os.MFD_CLOEXEC)
    with open(os.dup(fd), "wb") as handle:
        flt.export_bpf(handle)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def docker_profile() -> dict:
    """The same refusals as a Docker seccomp profile (kept in ``platform/seccomp-grader.json``)."""
    refuse = {"names": list(REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}
    enosys = {"names": list(FALLBACK_ENOSYS), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}
    clone_rules = [
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }
        for flag in CLONE_NAMESPACE_FLAGS
    ]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [refuse, enosys, *clone_rules],
    }


def docker_profile_json() -> str:
    return json.dumps(docker_profile(), indent=2) + "\n"


if __name__ == "__main__":  # regenerate the file kept in platform/
    print(docker_profile_json(), end="")
