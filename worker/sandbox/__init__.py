"""Sandboxes the grader runs in: one interface (``run``/``start``), a bubblewrap and a Docker backend."""

from __future__ import annotations

from worker.sandbox.base import (
    ForkTemplate,
    Limits,
    Mount,
    Outcome,
    RunningSandbox,
    Sandbox,
    SandboxError,
    SandboxUnavailable,
)

BACKENDS = ("bubblewrap", "docker")

__all__ = [
    "BACKENDS",
    "ForkTemplate",
    "Limits",
    "Mount",
    "Outcome",
    "RunningSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
    "get_sandbox",
]


def get_sandbox(backend: str = "bubblewrap", **config) -> Sandbox:
    """Build the named backend with its configuration (see each backend's constructor for the keys).

    It does not probe: call ``probe()`` before grading and refuse to grade when it raises SandboxUnavailable.
    """
    if backend == "bubblewrap":
        from worker.sandbox.bubblewrap import BubblewrapSandbox

        return BubblewrapSandbox(**config)
    if backend == "docker":
        from worker.sandbox.docker import DockerSandbox

        return DockerSandbox(**config)
    raise SandboxUnavailable(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")
