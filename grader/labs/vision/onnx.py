"""Student-defined vision models as ONNX: graph checks in a limited subprocess, and scoring with onnxruntime."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grader.errors import GraderFault, Rejected
from grader.limited_child import ChildLimits, run_limited

MIB = 1024 * 1024
MAX_FILE_BYTES = 256 * MIB
MAX_INITIALIZER_BYTES = 256 * MIB
CHECK_TIMEOUT_S = 60
# Only the parse runs in the child (no CUDA, no torch), so an address-space cap is safe and cgroups are not needed.
CHECK_LIMITS = ChildLimits(
    cpu_seconds=CHECK_TIMEOUT_S, memory_bytes=3 * 1024 * MIB, file_size_bytes=0, wall_seconds=CHECK_TIMEOUT_S
)
DEFAULT_DOMAINS = ("", "ai.onnx")
INPUT_SHAPE = (3, 64, 64)
BATCH_SIZE = 128


def check_in_subprocess(path: Path, *, deep: bool = False) -> dict[str, Any]:
    """Check an ONNX file's graph in a child process with time and memory limits; Rejected with the reason."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise Rejected("onnx_too_large", f"model.onnx is {size} bytes; at most {MAX_FILE_BYTES}.")
    done = run_limited("grader.labs.vision.onnx", [str(path)], limits=CHECK_LIMITS)
    if done.timed_out:
        raise Rejected("onnx_check_timeout", f"Checking model.onnx took longer than {CHECK_TIMEOUT_S} s.")
    lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
    try:
        verdict = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise Rejected(
            "onnx_unreadable",
            "model.onnx could not be read as an ONNX model within the checker's memory and time limits.",
        )
    if not verdict.get("ok"):
        raise Rejected(verdict["code"], verdict["message"])
    return verdict["summary"]


def _dim_values(value_info) -> list[int | None]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else None for d in dims]


def inspect_model(path: Path) -> dict[str, Any]:
    """The graph checks themselves; raises Rejected. Runs in the child process only."""
    import onnx
    from onnx import TensorProto

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any parse failure is the file's fault
        raise Rejected("onnx_unreadable", "model.onnx is not a valid ONNX model file.")
    graph = model.graph
    initializer_bytes = 0
    for tensor in graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            raise Rejected(
                "onnx_external_data",
                f"Initializer {tensor.name!r} keeps its data in an external file; export with all weights inside "
                "model.onnx (no external data).",
            )
        initializer_bytes += tensor.ByteSize()
    if initializer_bytes > MAX_INITIALIZER_BYTES:
        raise Rejected(
            "onnx_too_large", f"The weights take {initializer_bytes} bytes; at most {MAX_INITIALIZER_BYTES}."
        )
    domains = {op.domain for op in model.opset_import} | {node.domain for node in graph.node}
    domains |= {f.domain for f in model.functions}
    custom = sorted(d for d in domains if d not in DEFAULT_DOMAINS)
    if custom:
        raise Rejected(
            "onnx_custom_domain",
            f"model.onnx uses operators of the domain(s) {', '.join(custom)}; only the default ONNX operator "
            "set is allowed.",
        )
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise Rejected("onnx_invalid", f"model.onnx does not pass the ONNX checker: {str(exc)[:300]}")
    init_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise Rejected("onnx_wrong_input", f"model.onnx must have one input (images), not {len(inputs)}.")
    (image_input,) = inputs
    dims = _dim_values(image_input)
    if image_input.type.tensor_type.elem_type != TensorProto.FLOAT or len(dims) != 4 or tuple(dims[1:]) != INPUT_SHAPE:
        raise Rejected(
            "onnx_wrong_input",
            f"The input {image_input.name!r} must be float32 of shape [N, 3, 64, 64] (RGB in [0, 1], channels "
            f"first); it is {['N' if d is None else d for d in dims]}.",
        )
    if len(graph.output) != 1:
        raise Rejected("onnx_wrong_output", f"model.onnx must have one output (a face logit), not {len(graph.output)}.")
    out_dims = _dim_values(graph.output[0])
    if len(out_dims) not in (1, 2) or (len(out_dims) == 2 and out_dims[1] != 1):
        raise Rejected(
            "onnx_wrong_output",
            f"The output must be one logit per image, shape [N] or [N, 1]; it is "
            f"{['N' if d is None else d for d in out_dims]}.",
        )
    return {
        "format": "onnx",
        "architecture": "onnx",
        "nodes": len(graph.node),
        "initializer_bytes": initializer_bytes,
        "input": image_input.name,
    }


class OnnxScorer:
    """Face logits from an ONNX model on an explicit onnxruntime provider; it has no gradients, so no FGSM."""

    can_attack = False

    def __init__(self, path: Path, *, device: str):
        import onnxruntime as ort

        check_in_subprocess(path, deep=True)
        provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise GraderFault("onnx_provider_missing", f"onnxruntime has no {provider} on this machine")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=[provider])
        self.input = self.session.get_inputs()[0].name

    def logits(self, images):
        import numpy as np

        out = []
        for start in range(0, len(images), BATCH_SIZE):
            batch = images[start : start + BATCH_SIZE]
            try:
                (result,) = self.session.run(None, {self.input: batch})
            except Exception:  # noqa: BLE001 - a graph that fails on valid images is the student's
                raise Rejected("onnx_run_failed", "model.onnx failed to run on a batch of [N, 3, 64, 64] images.")
            result = np.asarray(result, dtype=np.float64).reshape(-1)
            if result.shape != (len(batch),):
                raise Rejected("onnx_wrong_output", "model.onnx must give exactly one logit per image.")
            out.append(result)
        return np.concatenate(out) if out else np.zeros(0)


def _main(argv: list[str]) -> int:
    try:
        summary = inspect_model(Path(argv[0]))
    except Rejected as exc:
        print(json.dumps({"ok": False, "code": exc.code, "message": exc.message}))
        return 0
    print(json.dumps({"ok": True, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
