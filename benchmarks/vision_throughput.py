"""Vision evaluator throughput: its inference path and whole evaluation against a bare batched forward pass."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repository root

from grader.dataset import load_manifest
from grader.labs.vision import SPLITS, Lab, TorchScorer
from grader.labs.vision.data import load_images, split_items
from grader.labs.vision.model import BATCH_SIZE, make_standard_classifier
from grader.registry import EvaluationContext


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    fn()  # warm-up: kernels, allocator, lazy imports
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_classifier(folder: Path, *, n_filters: int, seed: int = 0) -> Path:
    """A Lab 2 artifact of the notebook's standard classifier with random weights."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(make_standard_classifier(n_filters).state_dict(), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": "standard", "n_filters": n_filters}))
    return folder


def measure(*, data: Path, submission: Path, device: str, repeats: int, out_dir: Path) -> dict:
    """Seconds of the bare batched forward pass, the evaluator's inference path and its whole evaluation (medians)."""
    manifest = load_manifest(data)
    images = [load_images(manifest, split_items(manifest, split)) for split in SPLITS]
    scorer = TorchScorer(submission, device=device, seed=0)
    bare_model = scorer.model  # the same weights, driven without the evaluator's code around it

    def bare_forward():
        with torch.inference_mode():
            for split_images in images:
                for start in range(0, len(split_images), BATCH_SIZE):
                    batch = torch.from_numpy(split_images[start : start + BATCH_SIZE]).to(device)
                    bare_model(batch).cpu()

    def evaluator_inference():
        for split_images in images:
            scorer.logits(split_images)

    ctx = EvaluationContext(
        artifact_dir=submission, data_dir=data, manifest=manifest, out_dir=out_dir, device=device, seed=0
    )
    lab = Lab()
    last_details: dict = {}

    def whole_evaluation():
        last_details.update(lab.evaluate(ctx).details["timings"])

    return {
        "images": sum(len(x) for x in images),
        "bare_s": timed(bare_forward, device, repeats),
        "inference_s": timed(evaluator_inference, device, repeats),
        "whole_s": timed(whole_evaluation, device, max(1, repeats // 2)),
        "parts": last_details,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="a vision dataset (default: build the demo set in a temp folder)")
    parser.add_argument("--submission", type=Path, help="an artifact (default: a random model of --n-filters)")
    parser.add_argument("--n-filters", type=int, default=12)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="vision-bench-"))
    data = args.data
    if data is None:
        from grader.coursedata import course_data

        data = tmp / "data"
        Lab().prepare_data(course_data(), data, seed=0)
    submission = args.submission
    if submission is None:
        submission = random_classifier(tmp / "model", n_filters=args.n_filters)

    m = measure(data=data, submission=submission, device=args.device, repeats=args.repeats, out_dir=tmp)
    n_images, bare, inference, whole = m["images"], m["bare_s"], m["inference_s"], m["whole_s"]
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"device: {device_name}; images: {n_images}; batch size: {BATCH_SIZE}; threads: {torch.get_num_threads()}")
    print(f"bare batched forward:            {bare:.4f} s  ({n_images / bare:.0f} images/s)")
    print(f"evaluator inference path:        {inference:.4f} s  ({n_images / inference:.0f} images/s)")
    print(f"ratio inference / bare:          {inference / bare:.3f}  (target <= 1.3)")
    print(f"whole evaluation (check, load, inference, audit with bootstrap, FGSM x4): {whole:.3f} s")
    print(f"  its parts: {json.dumps(m['parts'])}")
    print(f"ratio whole evaluation / bare:   {whole / bare:.2f}")
    return 0 if inference / bare <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
