"""The command line of the grader (`python -m grader ...`): data preparation, reference models, checks, evaluation."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from grader import GRADER_VERSION
from grader.dataset import MANIFEST, Manifest, load_manifest
from grader.errors import EXIT_GRADER_FAULT, EXIT_OK, EXIT_REJECTED, GraderFault, Rejected
from grader.registry import EvaluationContext, LabEvaluator, get_lab, lab_names
from grader.result import build_result, write_result

GENERIC_FAULT = "The grader failed while evaluating this submission; it is not your fault and it will be retried."


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--option expects key=value, got {pair!r}")
        options[key] = value
    return options


def _resolve_data_dir(data: Path, lab: str) -> Path:
    """Accept the lab's dataset folder itself or the folder `prepare-data` wrote (holding one per lab)."""
    if not (data / MANIFEST).is_file() and (data / lab / MANIFEST).is_file():
        return data / lab
    return data


def _deterministic_cuda_env() -> None:
    # cuBLAS reads this when it creates its handle (the first matrix product on the GPU); without it the
    # deterministic mode cannot make GPU matrix products reproducible. Set before torch is imported, to be safe.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def _seed_everything(seed: int) -> None:
    _deterministic_cuda_env()
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)
    # Kernels without a deterministic variant only warn; the result records the device class anyway.
    torch.use_deterministic_algorithms(True, warn_only=True)


def _device_class(device: str) -> str:
    if device == "cpu":
        return "cpu"
    _deterministic_cuda_env()
    import torch

    if not torch.cuda.is_available():
        raise GraderFault("no_gpu", "--device cuda was asked for but no CUDA device is available")
    return f"cuda:{torch.cuda.get_device_name(0)}"


def _check_artifact(
    lab: LabEvaluator, artifact_dir: Path, *, deep: bool, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    if not artifact_dir.is_dir():
        raise Rejected("missing_file", f"The artifact folder {artifact_dir.name!r} does not exist.")
    present = {path.name for path in artifact_dir.iterdir() if path.is_file()}
    if any(set(names) <= present for names in lab.artifact_file_sets(options)):
        return lab.check(artifact_dir, deep=deep, options=options)
    missing = [name for name in lab.artifact_files if name not in present]
    if missing:
        raise Rejected(
            "missing_file",
            f"The artifact lacks {', '.join(missing)}; a {lab.title} artifact is exactly "
            f"{' + '.join(lab.artifact_files)}.",
        )
    return lab.check(artifact_dir, deep=deep, options=options)


def run_evaluation(
    *,
    lab_name: str,
    submission: Path,
    data: Path,
    out: Path,
    device: str = "cpu",
    seed: int = 0,
    options: dict[str, Any] | None = None,
    verified: Manifest | None = None,
) -> int:
    """Evaluate one submission, always write OUT/result.json, and return the exit code.

    ``verified``: the manifest of ``data``, already verified by this process (a warm box opened it ahead).
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    lab: LabEvaluator | None = None
    manifest: Manifest | None = None
    device_class = device
    timings: dict[str, float | None] = {"check_s": None, "evaluate_s": None, "total_s": None}
    summary: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    try:
        lab = get_lab(lab_name)
        data_dir = _resolve_data_dir(data, lab_name)
        if verified is not None and verified.path == data_dir:
            manifest = verified
        else:
            manifest = load_manifest(data_dir, verify=True)
        if manifest.lab != lab_name:
            raise GraderFault("dataset_wrong_lab", f"dataset {manifest.name!r} is for lab {manifest.lab!r}")
        device_class = _device_class(device)
        _seed_everything(seed)
        t0 = time.perf_counter()
        summary = _check_artifact(lab, submission, deep=True, options=options)
        timings["check_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        ctx = EvaluationContext(
            artifact_dir=submission,
            data_dir=manifest.path,
            manifest=manifest,
            out_dir=out,
            device=device,
            seed=seed,
            options=dict(options or {}),
        )
        output = lab.evaluate(ctx)
        timings["evaluate_s"] = round(time.perf_counter() - t0, 3)
        status, error, code = "ok", None, EXIT_OK
        fields = {
            "metrics": output.metrics,
            "groups": output.groups,
            "samples": output.samples,
            "details": output.details,
        }
    except Rejected as exc:
        status, error, code = "rejected", {"code": exc.code, "message": exc.message}, EXIT_REJECTED
    except GraderFault as exc:
        traceback.print_exc(file=sys.stderr)
        status, error, code = "error", {"code": exc.code, "message": GENERIC_FAULT}, EXIT_GRADER_FAULT
    except Exception:
        traceback.print_exc(file=sys.stderr)
        status, error, code = "error", {"code": "grader_crashed", "message": GENERIC_FAULT}, EXIT_GRADER_FAULT
    timings["total_s"] = round(time.perf_counter() - started, 3)
    result = build_result(
        lab=lab_name,
        grader_version=GRADER_VERSION,
        dataset_name=manifest.name if manifest else None,
        dataset_hash=manifest.hash if manifest else None,
        device_class=device_class,
        seed=seed,
        status=status,
        error=error,
        primary={"metric": lab.primary_metric, "direction": lab.primary_direction} if lab else None,
        tiebreak={"metric": lab.tiebreak_metric, "direction": lab.tiebreak_direction} if lab else None,
        artifact=summary,
        timings=timings,
        **fields,
    )
    try:
        write_result(out / "result.json", result)
    except ValueError as exc:
        # The lab produced something the schema refuses: that is the grader's bug, never the student's.
        print(f"invalid result: {exc}", file=sys.stderr)
        result = build_result(
            lab=lab_name,
            grader_version=GRADER_VERSION,
            dataset_name=result["dataset"]["name"],
            dataset_hash=result["dataset"]["hash"],
            device_class=device_class,
            seed=seed,
            status="error",
            error={"code": "invalid_result", "message": GENERIC_FAULT},
            primary=result["primary"],
            tiebreak=result["tiebreak"],
            timings=timings,
        )
        write_result(out / "result.json", result)
        status, code = "error", EXIT_GRADER_FAULT
    # Only what a student may see goes to stdout: the status, her own message and public-split numbers.
    shown: dict[str, Any] = {"status": status, "result": str(out / "result.json")}
    if status == "ok":
        shown["public"] = result["metrics"].get("public", {})
    else:
        shown["error"] = result["error"]
    print(json.dumps(shown, sort_keys=True))
    return code


def cmd_prepare_data(args: argparse.Namespace) -> int:
    from grader.coursedata import course_data

    labs = args.lab or lab_names()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    try:
        course = course_data(args.cache)
    except GraderFault as exc:
        print(f"course data unavailable: {exc.message}", file=sys.stderr)
        return EXIT_GRADER_FAULT
    prepared, failed, options = [], {}, _parse_options(args.option)
    for name in labs:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=out))
        try:
            lab = get_lab(name)
            if "options" in inspect.signature(lab.prepare_data).parameters:
                lab.prepare_data(course, staging, seed=args.seed, options=options)
            else:
                lab.prepare_data(course, staging, seed=args.seed)
            load_manifest(staging, verify=True)
            target = out / name
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
            prepared.append(name)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            failed[name] = f"{type(exc).__name__}: {exc}"
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    print(json.dumps({"prepared": prepared, "failed": failed, "out": str(out)}, sort_keys=True))
    return EXIT_OK if not failed else EXIT_GRADER_FAULT


def cmd_train_reference(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    variant = args.variant or lab.reference_variants[0]
    if variant not in lab.reference_variants:
        print(f"unknown variant {variant!r}; known: {', '.join(lab.reference_variants)}", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(_resolve_data_dir(args.data, args.lab), verify=True)
    except GraderFault as exc:
        print(f"dataset problem: {exc.message}", file=sys.stderr)
        return EXIT_GRADER_FAULT
    args.out.mkdir(parents=True, exist_ok=True)
    _seed_everything(args.seed)
    kwargs: dict[str, Any] = {"variant": variant, "seed": args.seed}
    options = _parse_options(args.option)
    if "options" in inspect.signature(lab.train_reference).parameters:
        kwargs["options"] = options
    elif options:
        print(f"lab {args.lab} takes no options for train-reference", file=sys.stderr)
        return 2
    summary = lab.train_reference(manifest.path, args.out, **kwargs)
    print(json.dumps(summary, sort_keys=True))
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    lab = get_lab(args.lab)
    try:
        summary = _check_artifact(lab, args.dir, deep=args.deep, options=_parse_options(args.option))
    except Rejected as exc:
        print(f"rejected ({exc.code}): {exc.message}")
        return EXIT_REJECTED
    print(json.dumps(summary, sort_keys=True))
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    return run_evaluation(
        lab_name=args.lab,
        submission=args.submission,
        data=args.data,
        out=args.out,
        device=args.device,
        seed=args.seed,
        options=_parse_options(args.option),
    )


def cmd_serve_one(args: argparse.Namespace) -> int:
    from grader.serve import serve_one  # the warm box's entry point, with its warm-up

    return serve_one(args)


def cmd_fork_server(args: argparse.Namespace) -> int:
    from grader.forkbox import serve_forks  # the fork server of a lab's boxes

    return serve_forks(args)


def cmd_convert_keras(args: argparse.Namespace) -> int:
    from grader.keras_convert import convert

    try:
        summary = convert(args.weights, args.out_dir, embedding_dim=args.embedding_dim, hidden_size=args.hidden_size)
    except Rejected as exc:
        print(f"cannot convert ({exc.code}): {exc.message}")
        return EXIT_REJECTED
    print(json.dumps({"out": str(args.out_dir), **summary}, sort_keys=True))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    labs = lab_names()

    p = sub.add_parser("prepare-data", help="build the demo hidden datasets from the course's public data")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--lab", action="append", choices=labs, help="repeatable; default: every lab")
    p.add_argument("--cache", type=Path, default=None, help="download cache (default: $GRADER_CACHE or ./var/cache)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="e.g. base_families=gemma2,lfm2")
    p.set_defaults(func=cmd_prepare_data)

    p = sub.add_parser("train-reference", help="train a small reference model on the CPU")
    p.add_argument("--lab", required=True, choices=labs)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variant", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_train_reference)

    p = sub.add_parser("check", help="check an artifact folder without evaluating it")
    p.add_argument("--lab", required=True, choices=labs)
    p.add_argument("dir", type=Path)
    p.add_argument("--deep", action="store_true", help="also read the weights (finite values)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="the lab's evaluator settings")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("evaluate", help="evaluate an artifact on a hidden dataset and write result.json")
    p.add_argument("--lab", required=True, choices=labs)
    p.add_argument("--submission", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("convert-keras", help="turn the TensorFlow notebook's Keras weights into a Lab 1 artifact")
    p.add_argument("--lab", required=True, choices=["music"])
    p.add_argument("weights", type=Path, help="a Keras .weights.h5 (model.save_weights) or a .npz of get_weights()")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--embedding-dim", type=int, default=None, help="checked against the weights when given")
    p.add_argument("--hidden-size", type=int, default=None, help="checked against the weights when given")
    p.set_defaults(func=cmd_convert_keras)

    p = sub.add_parser("serve-one", help="warm up, print 'ready', then evaluate the one job read from stdin")
    p.add_argument("--lab", required=True, choices=labs)
    p.add_argument("--data", type=Path, default=None, help="the dataset the job will name: verified while warming")
    p.add_argument(
        "--warm-cuda", action="store_true", help="create the CUDA context while warming (one box per GPU at most)"
    )
    p.set_defaults(func=cmd_serve_one)

    p = sub.add_parser("fork-server", help="warm up, print 'ready', then fork one box per request (the worker's)")
    p.add_argument("--lab", required=True, choices=labs)
    p.add_argument("--data", type=Path, default=None, help="the dataset every job will name: verified while warming")
    p.add_argument("--control-fd", type=int, required=True, help="the worker's SOCK_SEQPACKET control socket")
    p.add_argument("--job-target", action="append", help="a per-job mount target (repeatable)")
    p.set_defaults(func=cmd_fork_server)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    except GraderFault as exc:
        print(f"grader fault ({exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_GRADER_FAULT
    except Rejected as exc:
        print(f"rejected ({exc.code}): {exc.message}")
        return EXIT_REJECTED
    except (ImportError, KeyError) as exc:
        print(f"grader fault: {exc}", file=sys.stderr)
        return EXIT_GRADER_FAULT
