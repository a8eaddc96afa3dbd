"""How much time the sandbox adds to one music evaluation: warm process vs plain subprocess vs warm sandbox.

Usage: .venv/bin/python benchmarks/sandbox_overhead.py [--work DIR] [--option songs=8 ...] [--repeat N]
It prepares the demo dataset and a reference model once into --work, then times the same evaluation
(same artifact, dataset, seed and options) three ways and prints the added seconds and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from worker.sandbox import Limits, Mount, get_sandbox  # noqa: E402

TARGET_ADDED_S = 1.5
TARGET_RATIO = 1.25


def prepare(work: Path, cache: Path | None, train_options: list[str]) -> tuple[Path, Path]:
    data, reference = work / "data", work / "reference"
    if not (data / "music" / "manifest.json").exists():
        cmd = [sys.executable, "-m", "grader", "prepare-data", "--out", str(data), "--lab", "music"]
        if cache:
            cmd += ["--cache", str(cache)]
        subprocess.run(cmd, check=True, cwd=REPO)
    if not (reference / "config.json").exists():
        cmd = [sys.executable, "-m", "grader", "train-reference", "--lab", "music"]
        cmd += ["--data", str(data / "music"), "--out", str(reference)]
        for option in train_options:
            cmd += ["--option", option]
        subprocess.run(cmd, check=True, cwd=REPO)
    return data / "music", reference


def share_with_box(folder: Path) -> None:
    """Lay a folder out as the worker does for what the box reads: readable by the box's group, nobody else."""
    from worker.sandbox.account import sandbox_user

    gid = sandbox_user().gid
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, -1, gid)
        path.chmod(0o750 if path.is_dir() else 0o640)


def parse_options(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def time_in_process(data: Path, reference: Path, options: dict, out: Path) -> float:
    from grader.cli import run_evaluation
    from grader.registry import get_lab

    lab = get_lab("music")
    if callable(getattr(lab, "warm_up", None)):
        lab.warm_up()
    started = time.perf_counter()
    code = run_evaluation(
        lab_name="music", submission=reference, data=data, out=out, device="cpu", seed=0, options=options
    )
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"in-process evaluation failed with exit {code}: {(out / 'result.json').read_text()}")
    return elapsed


def time_subprocess(data: Path, reference: Path, option_pairs: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "grader", "evaluate", "--lab", "music", "--submission", str(reference)]
    cmd += ["--data", str(data), "--out", str(out), "--seed", "0"]
    for pair in option_pairs:
        cmd += ["--option", pair]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"subprocess evaluation failed with exit {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def time_sandbox(data: Path, reference: Path, options: dict, job_root: Path) -> tuple[float, float]:
    """Seconds from submit to outcome in a warm sandbox, and how long warming took (not counted)."""
    for name in ("submission", "out"):
        (job_root / name).mkdir(parents=True)
    share_with_box(data)
    share_with_box(job_root / "submission")
    sandbox = get_sandbox("bubblewrap")
    mounts = [
        Mount(job_root / "submission", "/job/submission"),
        Mount(data, "/job/data"),
        Mount(job_root / "out", "/job/out", writable=True),
    ]
    limits = Limits(wall_seconds=600, memory_bytes=4 * 1024**3, pids=256)
    warm_started = time.perf_counter()
    box = sandbox.start(["python", "-m", "grader", "serve-one", "--lab", "music"], mounts, limits)
    try:
        if not box.wait_ready(120):
            outcome = box.kill()
            raise SystemExit(f"the sandbox never became ready: {outcome.stderr_tail[-2000:]}")
        warm_s = time.perf_counter() - warm_started
        job = {"submission": "/job/submission", "data": "/job/data", "out": "/job/out", "seed": 0}
        job["options"] = options
        started = time.perf_counter()
        # The artifact arrives with the job: copying it in is part of the measured time.
        for f in reference.iterdir():
            shutil.copy2(f, job_root / "submission" / f.name)
        share_with_box(job_root / "submission")
        outcome = box.submit(json.dumps(job).encode())
        elapsed = time.perf_counter() - started
    finally:
        box.kill()
    if outcome.exit_code != 0:
        raise SystemExit(f"sandboxed evaluation failed with exit {outcome.exit_code}: {outcome.stderr_tail[-2000:]}")
    return elapsed, warm_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-sandbox")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--option", action="append", default=[], help="evaluation option key=value")
    parser.add_argument("--train-option", action="append", default=[], help="train-reference option")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    data, reference = prepare(args.work, args.cache, args.train_option)
    options = parse_options(args.option)
    warm, plain, boxed, warmups = [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            tmp = Path(tmp)
            warm.append(time_in_process(data, reference, options, tmp / "warm"))
            plain.append(time_subprocess(data, reference, args.option, tmp / "plain"))
            elapsed, warm_s = time_sandbox(data, reference, options, tmp / "job")
            boxed.append(elapsed)
            warmups.append(warm_s)
            results = [json.loads((tmp / d / "result.json").read_text()) for d in ("warm", "plain", "job/out")]
            if len({json.dumps(r["metrics"], sort_keys=True) for r in results}) != 1:
                print("warning: the three runs disagree on the metrics", file=sys.stderr)

    w, p, b = statistics.median(warm), statistics.median(plain), statistics.median(boxed)
    print(f"options: {options or 'defaults'}; repeats: {args.repeat} (medians)")
    print(f"warm process (in-process evaluate):  {w:7.2f} s")
    print(f"plain subprocess (grader evaluate):  {p:7.2f} s   added {p - w:+.2f} s   ratio {p / w:.3f}")
    print(f"sandbox, warm start (from submit):   {b:7.2f} s   added {b - w:+.2f} s   ratio {b / w:.3f}")
    print(f"  (sandbox start to ready, not counted: {statistics.median(warmups):.2f} s)")
    ok = (b - w) <= TARGET_ADDED_S and b / w <= TARGET_RATIO
    print(f"targets: added <= {TARGET_ADDED_S} s and ratio <= {TARGET_RATIO}: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
