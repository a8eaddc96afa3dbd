"""The warm box's entry point (`python -m grader serve-one`): warm up, say ready, then evaluate exactly one job."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from grader.cli import _resolve_data_dir, _seed_everything, run_evaluation
from grader.dataset import load_manifest
from grader.errors import EXIT_GRADER_FAULT, GraderFault
from grader.registry import get_lab


def _create_cuda_context() -> None:
    """Pay CUDA's initialisation (a context on the box's GPU, hundreds of MB of its memory) before the job."""
    try:
        import torch
    except ImportError:
        return
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")


def serve_one(args: argparse.Namespace) -> int:
    """Warm up (imports, the dataset, optionally CUDA), print ready, then evaluate the one job read from stdin."""
    return serve_job(args, verified=warm_up(args), cuda=args.warm_cuda)


def warm_up(args: argparse.Namespace):
    """The lab's imports, its result schema, torch's first seeding and the dataset verified (returned: the
    manifest, or None when the dataset is not there or fails its check). Never a CUDA context."""
    lab = get_lab(args.lab)
    try:  # the heavy import is what warming up is for
        import torch  # noqa: F401
    except ImportError:
        pass
    from grader.result import _validator
    from grader.safetensors_io import load_tensors  # noqa: F401 - imported now, not on the job's clock

    _validator()  # compiling the result schema is part of warming up too
    _seed_everything(0)  # torch's first seeding costs over a second; the job seeds again with its own seed
    verified = None
    if args.data is not None:
        # The dataset is mounted before the job: hashing its files now takes that off the job's clock. A fault
        # here is reported with the job, as the same check during the job would be.
        try:
            verified = load_manifest(_resolve_data_dir(args.data, args.lab), verify=True)
        except GraderFault:
            verified = None
    warm = getattr(lab, "warm_up", None)
    if callable(warm):
        try:  # given the verified dataset, a lab may load what its job reads (vision: the decoded images)
            warm(verified)
        except GraderFault:
            pass  # the job meets the same fault on its own clock and reports it
    return verified


def serve_job(args: argparse.Namespace, *, verified, cuda: bool) -> int:
    """Optionally create the CUDA context, print ready, then evaluate the one job read from stdin and end the
    process with the evaluation's exit code."""
    if cuda:
        _create_cuda_context()
    print("ready", flush=True)
    line = sys.stdin.readline()
    try:
        job = json.loads(line)
        if not isinstance(job, dict):
            raise ValueError("the job must be a JSON object")
        unknown = set(job) - {"submission", "data", "out", "device", "seed", "options"}
        if unknown:
            raise ValueError(f"unknown job keys {sorted(unknown)}")
        device = job.get("device", "cpu")
        seed = job.get("seed", 0)
        options = job.get("options") or {}
        if device not in ("cpu", "cuda") or not isinstance(seed, int) or not isinstance(options, dict):
            raise ValueError("bad device, seed or options")
        submission, data, out = Path(job["submission"]), Path(job["data"]), Path(job["out"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"bad job line: {exc}", file=sys.stderr)
        return EXIT_GRADER_FAULT
    code = run_evaluation(
        lab_name=args.lab,
        submission=submission,
        data=data,
        out=out,
        device=device,
        seed=seed,
        options=options,
        verified=verified,
    )
    # result.json is written and closed: skip the interpreter's teardown (torch's takes most of a second), since
    # this one-job process ends here anyway.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
