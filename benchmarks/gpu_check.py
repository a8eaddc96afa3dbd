"""The three evaluators on one device: each run twice (are the metrics identical?), and timed against bare passes.

Usage: PYTHONPATH=. python benchmarks/gpu_check.py --datasets DIR --references DIR [--device cuda] [--labs music,vision,llm]
--datasets is the folder `python -m grader prepare-data --out DIR` wrote (music/, vision/, llm/, base-models/);
--references holds one folder per lab, as `python -m grader train-reference --lab L --data DIR --out REFS/L` wrote.

Part 1, determinism: `python -m grader evaluate ... --device D` runs twice in fresh processes, as the worker runs it,
on each lab's reference artifact and on a Lab 1 model of the notebook's size (embedding 256, hidden 1024, random
weights, seeded); the two result.json files' metrics, group tables and samples are compared exactly.
Part 2, speed, in this process on the same inputs: Lab 1 bits-per-character scoring and song generation against a
bare batched forward pass and a bare sampling loop; Lab 2 through benchmarks/vision_throughput.py (the evaluator's
inference path and whole evaluation against a bare batched forward pass); Lab 3 through benchmarks/llm_generation.py
(the evaluator's answers against a bare `model.generate`). Ratios are evaluator / bare, so 1.00 means no overhead.
Figures only: nothing here asserts. --json FILE also writes every figure as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other benchmarks, reused below

import torch  # noqa: E402

from grader.dataset import load_manifest  # noqa: E402

COURSE_E, COURSE_H = 256, 1024  # the notebook's Lab 1 model


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Median seconds of ``fn`` after one warm-up call."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# ---- part 1: determinism ---------------------------------------------------------------------------------------


def course_size_lstm(folder: Path, *, seed: int = 0) -> Path:
    """A Lab 1 artifact of the notebook's size (about 21 MB of float32), random weights from ``seed``."""
    from safetensors.torch import save_file

    from grader.labs.music.data import COURSE_VOCAB
    from grader.labs.music.model import build_model

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    model = build_model(len(COURSE_VOCAB), COURSE_E, COURSE_H, 1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    config = {"embedding_dim": COURSE_E, "hidden_size": COURSE_H, "num_layers": 1, "vocab": COURSE_VOCAB}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def evaluate_once(
    lab: str, submission: Path, data: Path, out: Path, device: str, family: str | None = None
) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    options = []
    if lab == "llm":  # the folder prepare-data built beside the datasets stands in for the course's base model
        from grader.labs.llm import tiny_base_dir

        options = ["--option", f"base_model={tiny_base_dir(data, family).resolve()}"]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "grader", "evaluate", "--lab", lab, "--submission", str(submission)]
        + ["--data", str(data), "--out", str(out), "--device", device, "--seed", "0", *options],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    result_file = out / "result.json"
    if not result_file.is_file():
        raise SystemExit(f"{lab}: no result.json (exit {done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(result_file.read_text())
    if result.get("status") != "ok":
        print(f"  {lab}: status {result.get('status')} {result.get('error')}\n{done.stderr[-2000:]}")
    return result, wall


def numbers(value, path: str = "") -> dict[str, float]:
    """Every number of a JSON value by its path."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in numbers(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in numbers(item, f"{path}[{i}]").items()}
    if isinstance(value, bool) or not isinstance(value, int | float):
        return {}
    return {path: float(value)}


def compare(first: dict, second: dict) -> dict:
    compared = {key: first.get(key) for key in ("metrics", "groups", "samples")}
    again = {key: second.get(key) for key in ("metrics", "groups", "samples")}
    a, b = numbers(compared), numbers(again)
    differing = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    diffs = [abs(a[k] - b[k]) for k in differing if k in a and k in b and math.isfinite(a[k] - b[k])]
    return {
        "identical": compared == again,
        "numbers": len(a),
        "numbers_differing": len(differing),
        "max_abs_difference": max(diffs) if diffs else 0.0,
        "first_differing": differing[:5],
    }


def determinism(args, work: Path) -> list[dict]:
    runs = []
    cases = []
    for lab in args.labs:
        cases.append((lab, "reference", args.references / lab))
        if lab == "music":
            cases.append((lab, f"course-size E={COURSE_E} H={COURSE_H}", course_size_lstm(work / "music-course-size")))
    for lab, name, submission in cases:
        data = args.datasets / lab
        results = []
        for k in (1, 2):
            results.append(
                evaluate_once(
                    lab, submission, data, work / f"out-{lab}-{name.split()[0]}-{k}", args.device, args.llm_family
                )
            )
        (first, wall1), (second, wall2) = results
        verdict = compare(first, second)
        row = {
            "lab": lab,
            "artifact": name,
            "status": [first.get("status"), second.get("status")],
            "device_class": first.get("device_class"),
            "evaluate_s": [first.get("timings", {}).get("evaluate_s"), second.get("timings", {}).get("evaluate_s")],
            "process_s": [round(wall1, 2), round(wall2, 2)],
            "primary": {
                split: (first.get("metrics") or {}).get(split, {}).get((first.get("primary") or {}).get("metric"))
                for split in ("public", "private")
            },
            **verdict,
        }
        runs.append(row)
        if row["status"] != ["ok", "ok"]:
            same = "NOT COMPARED (a run did not succeed)"
        elif verdict["identical"]:
            same = "IDENTICAL"
        elif verdict["numbers_differing"]:
            same = f"DIFFER in {verdict['numbers_differing']} numbers"
        else:
            same = "DIFFER in sample texts only"
        print(
            f"{lab:6} {name:28} status {row['status'][0]}/{row['status'][1]}  evaluate "
            f"{row['evaluate_s'][0]} s / {row['evaluate_s'][1]} s (process {wall1:.1f} s / {wall2:.1f} s)  "
            f"metrics {same} ({verdict['numbers']} numbers, max |diff| {verdict['max_abs_difference']:.3g})  "
            f"primary {json.dumps(row['primary'])}",
            flush=True,
        )
        if not verdict["identical"]:
            print(f"       first differing: {verdict['first_differing']}", flush=True)
    return runs


# ---- part 2: speed against bare passes ----------------------------------------------------------------------


def music_speed(args, work: Path) -> dict:
    """Lab 1 on the notebook-size model: the evaluator's scoring and generation against bare loops."""
    from grader.labs.music import DEFAULT_SONG_LENGTH, DEFAULT_SONGS, Lab
    from grader.labs.music.data import START_STRING, split_tunes
    from grader.labs.music.generation import generate_songs
    from grader.labs.music.model import SCORE_BATCH, bits_per_character, encode, single_thread

    device = args.device
    folder = course_size_lstm(work / "music-speed")
    model = Lab().load_model(folder, device).eval()
    manifest = load_manifest(args.datasets / "music")
    splits = [
        split_tunes(manifest.file(manifest.splits[s]["file"]).read_text(encoding="utf-8"))
        for s in ("public", "private")
    ]
    padded = []
    for tunes in splits:
        for b in range(0, len(tunes), SCORE_BATCH):
            batch = [encode(t) for t in tunes[b : b + SCORE_BATCH] if len(t) >= 2]
            padded.append(torch.nn.utils.rnn.pad_sequence(batch, batch_first=True).to(device))
    characters = sum(len(t) for tunes in splits for t in tunes)

    def bare_forward():
        with torch.inference_mode():
            for ids in padded:
                model(ids)

    def evaluator_scoring():
        for tunes in splits:
            bits_per_character(model, tunes, device=device)

    start = encode(START_STRING).unsqueeze(0).repeat(DEFAULT_SONGS, 1).to(device)

    def bare_sampling():
        with torch.inference_mode():
            ids, state = start, None
            for _ in range(DEFAULT_SONG_LENGTH):
                logits, state = model(ids, state)
                ids = torch.multinomial(torch.softmax(logits[:, -1], dim=-1), 1)

    def evaluator_generation():
        generate_songs(model, count=DEFAULT_SONGS, length=DEFAULT_SONG_LENGTH, seed=0, device=device)

    def measure():
        return {
            "bare_forward_s": timed(bare_forward, device, args.repeats),
            "scoring_s": timed(evaluator_scoring, device, args.repeats),
            "bare_sampling_s": timed(bare_sampling, device, args.repeats),
            "generation_s": timed(evaluator_generation, device, args.repeats),
        }

    # The evaluator scores on one CPU thread (see single_thread); the bare passes get the same.
    if device == "cpu":
        with single_thread():
            figures = measure()
    else:
        figures = measure()
    figures.update(
        characters=characters,
        songs=DEFAULT_SONGS,
        song_length=DEFAULT_SONG_LENGTH,
        ratio_scoring=figures["scoring_s"] / figures["bare_forward_s"],
        ratio_generation=figures["generation_s"] / figures["bare_sampling_s"],
    )
    print(
        f"music  E={COURSE_E} H={COURSE_H}: {characters} hidden characters scored in {figures['scoring_s']:.3f} s, "
        f"bare forward {figures['bare_forward_s']:.3f} s: ratio evaluator/bare {figures['ratio_scoring']:.2f}",
        flush=True,
    )
    print(
        f"music  {DEFAULT_SONGS} songs x {DEFAULT_SONG_LENGTH} characters generated in {figures['generation_s']:.3f} s, "
        f"bare sampling loop {figures['bare_sampling_s']:.3f} s: ratio evaluator/bare {figures['ratio_generation']:.2f}",
        flush=True,
    )
    return figures


def vision_speed(args, work: Path) -> dict:
    import vision_throughput

    figures = vision_throughput.measure(
        data=args.datasets / "vision",
        submission=args.references / "vision",
        device=args.device,
        repeats=args.repeats,
        out_dir=work / "vision-speed",
    )
    figures.update(
        ratio_inference=figures["inference_s"] / figures["bare_s"], ratio_whole=figures["whole_s"] / figures["bare_s"]
    )
    print(
        f"vision {figures['images']} images: bare batched forward {figures['bare_s']:.4f} s, evaluator inference "
        f"{figures['inference_s']:.4f} s: ratio {figures['ratio_inference']:.2f}; whole evaluation (audit, bootstrap, "
        f"FGSM x4) {figures['whole_s']:.3f} s: ratio {figures['ratio_whole']:.1f}",
        flush=True,
    )
    print(f"       its parts: {json.dumps(figures['parts'])}", flush=True)
    return figures


def llm_speed(args, work: Path) -> dict:
    import llm_generation

    from grader.labs.llm import tiny_base_dir

    figures = llm_generation.measure(
        data=args.datasets / "llm",
        adapter=args.references / "llm",
        base_model=tiny_base_dir(args.datasets / "llm", args.llm_family),
        device=args.device,
        repeat=3,
    )
    figures["ratio_evaluator_over_bare_time"] = figures["ratio_bare_over_evaluator"]
    print(
        f"llm    {figures['prompts']} prompts: evaluator {figures['evaluator_tokens_per_s']} tokens/s, bare generate "
        f"{figures['bare_generate_tokens_per_s']} tokens/s: ratio evaluator/bare time "
        f"{figures['ratio_bare_over_evaluator']:.2f}",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, required=True)
    parser.add_argument("--references", type=Path, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--labs", default="music,vision,llm", help="comma-separated subset")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--llm-family", default=None, help="the tiny Lab 3 base to use: gemma2 (default), lfm2, qwen3")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    args.labs = [lab for lab in args.labs.split(",") if lab]
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"device {device_name}; torch {torch.__version__}; python {sys.version.split()[0]}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    report: dict = {"device": device_name, "torch": torch.__version__}
    print("-- determinism: each evaluation twice, in fresh processes", flush=True)
    report["determinism"] = determinism(args, work)
    if not args.skip_speed:
        print("-- speed against bare passes on the same inputs (medians; ratios evaluator / bare)", flush=True)
        speed = {"music": music_speed, "vision": vision_speed, "llm": llm_speed}
        report["speed"] = {lab: speed[lab](args, work) for lab in args.labs}
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
