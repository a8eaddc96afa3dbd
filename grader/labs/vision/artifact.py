"""The vision lab's artifact: its files, the bounds of its config, and the tensors its weights must hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grader.configfile import int_in, read_json, reject_unknown_keys, str_in
from grader.errors import Rejected
from grader.safetensors_io import TensorInfo, expect_tensors, read_header

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ONNX_FILE = "model.onnx"
N_FILTERS_BOUNDS = (4, 64)
LATENT_DIM_BOUNDS = (2, 512)
HIDDEN_UNITS = 512
FEATURE_SIDE = 4  # 64 / 2**4
# (input channels, output channels, kernel) of the four conv blocks, in multiples of n_filters (3 = RGB input).
BLOCKS = ((None, 1, 5), (1, 2, 5), (2, 4, 3), (4, 6, 3))
FLOAT_DTYPES = ("F32",)
# The DB-VAE decoder is never run: its tensors are allowed under "decoder." within these bounds, values unread.
MAX_DECODER_TENSORS = 32
# The header's tensor bound: the standard classifier has 32 tensors, the DB-VAE 42; more is not this lab's model.
MAX_TENSORS = 32 + MAX_DECODER_TENSORS + 64
MAX_DECODER_ELEMENTS = 64 * 1024 * 1024


def expected_tensors(n_filters: int, n_outputs: int, prefix: str = "") -> dict[str, tuple[Any, tuple[int, ...]]]:
    """Names, dtypes and shapes of the notebook classifier's state_dict (no torch needed)."""
    spec: dict[str, tuple[Any, tuple[int, ...]]] = {}
    for i, (cin, cout, k) in enumerate(BLOCKS):
        c_in = 3 if cin is None else cin * n_filters
        c_out = cout * n_filters
        p = f"{prefix}{i}."
        spec[p + "conv.weight"] = (FLOAT_DTYPES, (c_out, c_in, k, k))
        for name in ("conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
            spec[p + name] = (FLOAT_DTYPES, (c_out,))
        spec[p + "bn.num_batches_tracked"] = ("I64", ())
    spec[prefix + "5.weight"] = (FLOAT_DTYPES, (HIDDEN_UNITS, 6 * n_filters * FEATURE_SIDE * FEATURE_SIDE))
    spec[prefix + "5.bias"] = (FLOAT_DTYPES, (HIDDEN_UNITS,))
    spec[prefix + "7.weight"] = (FLOAT_DTYPES, (n_outputs, HIDDEN_UNITS))
    spec[prefix + "7.bias"] = (FLOAT_DTYPES, (n_outputs,))
    return spec


def read_config(artifact_dir: Path) -> dict[str, Any]:
    cfg = read_json(artifact_dir / CONFIG, name=CONFIG)
    reject_unknown_keys(cfg, {"architecture", "n_filters", "latent_dim"}, name=CONFIG)
    architecture = str_in(cfg, "architecture", ("standard", "dbvae"))
    n_filters = int_in(cfg, "n_filters", *N_FILTERS_BOUNDS)
    latent_dim = None
    if architecture == "dbvae":
        latent_dim = int_in(cfg, "latent_dim", *LATENT_DIM_BOUNDS)
    elif "latent_dim" in cfg:
        raise Rejected(
            "bad_config",
            'config.json gives "latent_dim" but its architecture is "standard"; remove "latent_dim", or set '
            '"architecture": "dbvae" if you trained the DB-VAE.',
        )
    return {"architecture": architecture, "n_filters": n_filters, "latent_dim": latent_dim}


def _check_decoder(decoder: dict[str, TensorInfo]) -> None:
    if len(decoder) > MAX_DECODER_TENSORS:
        raise Rejected(
            "wrong_tensors", f"The DB-VAE decoder has {len(decoder)} tensors; at most {MAX_DECODER_TENSORS}."
        )
    total = 0
    for name, info in sorted(decoder.items()):
        if info.dtype not in FLOAT_DTYPES or len(info.shape) > 4:
            raise Rejected(
                "wrong_tensors",
                f"Decoder tensor {name!r} has dtype {info.dtype} and {len(info.shape)} dimensions; "
                "the decoder's weights are float32 with at most 4 dimensions.",
            )
        total += info.numel
    if total > MAX_DECODER_ELEMENTS:
        raise Rejected("wrong_tensors", f"The DB-VAE decoder holds {total} values; at most {MAX_DECODER_ELEMENTS}.")


def check_weights(artifact_dir: Path, cfg: dict[str, Any]) -> tuple[dict[str, TensorInfo], list[str]]:
    """Header-level check of the weights against the config; returns the header and the names the model uses."""
    header = read_header(artifact_dir / WEIGHTS, max_tensors=MAX_TENSORS)
    if cfg["architecture"] == "standard":
        prefix, outputs = "", 1
        decoder: dict[str, TensorInfo] = {}
        body = header
    else:
        prefix, outputs = "encoder.", 2 * cfg["latent_dim"] + 1
        decoder = {k: v for k, v in header.items() if k.startswith("decoder.")}
        body = {k: v for k, v in header.items() if not k.startswith("decoder.")}
    last = body.get(prefix + "7.weight")
    if last is not None and last.shape[:1] != (outputs,) and len(last.shape) == 2:
        what = (
            "one logit per image (7.weight of shape [1, 512])"
            if outputs == 1
            else f"2*latent_dim+1 = {outputs} outputs (face logit, then the latent means and log-variances)"
        )
        raise Rejected(
            "wrong_output_size",
            f"The last layer {prefix}7.weight has {last.shape[0]} outputs; the {cfg['architecture']} model must "
            f"give {what}. Check config.json and the model you saved.",
        )
    expect_tensors(body, expected_tensors(cfg["n_filters"], outputs, prefix))
    _check_decoder(decoder)
    return header, sorted(body)
