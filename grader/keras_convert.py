"""Turn the TensorFlow notebook's Keras weights (Embedding -> LSTM -> Dense) into a Lab 1 artifact.

Reads a Keras ``.weights.h5`` (``model.save_weights``) with h5py, or a ``.npz`` of the arrays
(``np.savez(path, *model.get_weights())``), never anything that would need unpickling, and writes the same
``model.safetensors`` + ``config.json`` that the PyTorch notebook produces, with its ``state_dict`` names.

Keras stores an LSTM as ``kernel`` [E, 4H], ``recurrent_kernel`` [H, 4H] and one ``bias`` [4H], the four gate
blocks in the order input, forget, cell, output; PyTorch keeps ``weight_ih`` [4H, E] and ``weight_hh`` [4H, H] with
the blocks in the order input, forget, cell (``g``), output, and two biases that are summed. The gate order is the
same, so each matrix is transposed block-for-block; the Keras bias becomes ``bias_ih`` and ``bias_hh`` is zero.
Both use sigmoid gates and tanh for the cell, as the notebook's LSTM does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.errors import Rejected
from grader.labs import music

# get_weights() order of the notebook's Sequential model.
ROLES = ("embedding", "lstm_kernel", "lstm_recurrent_kernel", "lstm_bias", "dense_kernel", "dense_bias")
# Keras 3 numbers each layer's variables in creation order; Keras 2 names them.
LSTM_VARS = {"0": "lstm_kernel", "1": "lstm_recurrent_kernel", "2": "lstm_bias"}
LSTM_NAMES = {"kernel": "lstm_kernel", "recurrent_kernel": "lstm_recurrent_kernel", "bias": "lstm_bias"}
DENSE_VARS = {"0": "dense_kernel", "1": "dense_bias", "kernel": "dense_kernel", "bias": "dense_bias"}
EMBEDDING_VARS = {"0": "embedding", "embeddings": "embedding"}
MAX_ARRAYS = 64


@dataclass(frozen=True)
class KerasWeights:
    embedding: np.ndarray  # [vocab, E]
    lstm_kernel: np.ndarray  # [E, 4H]
    lstm_recurrent_kernel: np.ndarray  # [H, 4H]
    lstm_bias: np.ndarray  # [4H]
    dense_kernel: np.ndarray  # [H, vocab]
    dense_bias: np.ndarray  # [vocab]


def _float32(name: str, value: np.ndarray) -> np.ndarray:
    if value.dtype.kind != "f":
        raise Rejected("bad_weights", f"The Keras weight {name} holds {value.dtype} values; expected floats.")
    array = np.asarray(value, dtype=np.float32)
    if not np.isfinite(array).all():
        raise Rejected("non_finite_weights", f"The Keras weight {name} holds NaN or infinite values.")
    return array


def _layer_kind(parts: list[str]) -> str | None:
    for part in reversed(parts):
        low = part.lower()
        for kind in ("embedding", "lstm", "dense"):
            if low == kind or low.startswith(kind + "_") or low.startswith(kind + ":"):
                return kind
    return None


def _role_of(path: str) -> str | None:
    """The role of one h5 dataset from its path, in the Keras 3 layout or the Keras 2 one; None to ignore it."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] in {"optimizer", "_optimizer", "optimizer_weights"}:
        return None
    leaf = re.sub(r":\d+$", "", parts[-1])
    kind = _layer_kind(parts[:-1])
    if kind == "embedding":
        return EMBEDDING_VARS.get(leaf)
    if kind == "lstm":
        if leaf.isdigit():
            # Keras 3 keeps the weights on the layer's cell; numbered variables of the layer itself are the
            # running state of a stateful LSTM, not weights.
            return LSTM_VARS.get(leaf) if "cell" in parts[:-1] else None
        return LSTM_NAMES.get(leaf)
    if kind == "dense":
        return DENSE_VARS.get(leaf)
    return None


def read_h5(path: Path) -> KerasWeights:
    """The notebook model's weights from a Keras ``.weights.h5`` (``layers/<name>/vars/<i>``) or a legacy ``.h5``."""
    import h5py

    found: dict[str, tuple[str, object]] = {}
    datasets: list[tuple[str, object]] = []

    def visit(name: str, item) -> None:
        if isinstance(item, h5py.Dataset):
            datasets.append((name, item))

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise Rejected("bad_weights", f"{path.name} is not a readable HDF5 file ({exc}); save it with "
                       "model.save_weights('music.weights.h5').")  # fmt: skip
    with handle:
        handle.visititems(visit)
        if len(datasets) > MAX_ARRAYS:
            raise Rejected("bad_weights", f"{path.name} holds {len(datasets)} arrays; the notebook's model has 6.")
        for name, dataset in datasets:
            role = _role_of(name)
            if role is None:
                continue
            if role in found:
                raise Rejected(
                    "bad_weights",
                    f"{path.name} holds two candidates for the {role} weight ({found[role][0]} and {name}); "
                    "convert a model with exactly one Embedding, one LSTM and one Dense layer.",
                )
            found[role] = (name, dataset)
        missing = [role for role in ROLES if role not in found]
        if missing:
            raise Rejected(
                "bad_weights",
                f"{path.name} lacks the {', '.join(missing)} weight(s); it must come from the notebook's "
                "Embedding -> LSTM -> Dense model.",
            )
        if sum(int(np.prod(found[r][1].shape)) for r in ROLES) > 4 * music.MAX_PARAMETERS:
            raise Rejected("config_out_of_bounds", f"{path.name} is far larger than this lab allows.")
        arrays = {role: _float32(found[role][0], found[role][1][()]) for role in ROLES}
    return KerasWeights(**arrays)


def read_npz(path: Path) -> KerasWeights:
    """The weights from ``np.savez(path, *model.get_weights())`` (arr_0..arr_5) or with the role names as keys."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise Rejected("bad_weights", f"{path.name} is not a readable .npz file ({exc}).")
    with archive:
        keys = set(archive.files)
        if set(ROLES) <= keys:
            names = dict(zip(ROLES, ROLES, strict=True))
        elif {f"arr_{i}" for i in range(len(ROLES))} == keys:
            names = {role: f"arr_{i}" for i, role in enumerate(ROLES)}
        else:
            raise Rejected(
                "bad_weights",
                f"{path.name} holds {sorted(keys)[:10]}; save it with np.savez(path, *model.get_weights()) "
                f"(six arrays) or with the keys {', '.join(ROLES)}.",
            )
        try:
            arrays = {role: _float32(key, archive[key]) for role, key in names.items()}
        except ValueError as exc:  # an object array would need unpickling: refused
            raise Rejected("bad_weights", f"{path.name} holds an array that is not plain numbers ({exc}).")
    return KerasWeights(**arrays)


def read_weights(path: Path) -> KerasWeights:
    path = Path(path)
    if not path.is_file():
        raise Rejected("missing_file", f"There is no file {path}.")
    if path.suffix == ".npz":
        return read_npz(path)
    return read_h5(path)


def to_state_dict(
    weights: KerasWeights, *, embedding_dim: int | None = None, hidden_size: int | None = None
) -> tuple[dict[str, np.ndarray], int, int]:
    """The PyTorch ``state_dict`` of ``music.build_model`` (one LSTM layer), checking every shape."""
    vocab = len(music.COURSE_VOCAB)
    if weights.embedding.ndim != 2:
        raise Rejected("wrong_shape", f"The embedding has shape {weights.embedding.shape}; expected [vocab, E].")
    e = weights.embedding.shape[1]
    if weights.lstm_recurrent_kernel.ndim != 2:
        raise Rejected("wrong_shape", "The LSTM's recurrent kernel must be a matrix [H, 4H].")
    h = weights.lstm_recurrent_kernel.shape[0]
    if embedding_dim is not None and embedding_dim != e:
        raise Rejected("wrong_shape", f"--embedding-dim is {embedding_dim} but the weights have E = {e}.")
    if hidden_size is not None and hidden_size != h:
        raise Rejected("wrong_shape", f"--hidden-size is {hidden_size} but the weights have H = {h}.")
    if weights.embedding.shape[0] != vocab:
        raise Rejected(
            "wrong_vocab",
            f"The embedding has {weights.embedding.shape[0]} rows but the course vocabulary has {vocab} characters; "
            "build the vocabulary as sorted(set(songs_joined)) over the full irish.abc, as the notebook does.",
        )
    expected = {
        "lstm_kernel": (e, 4 * h),
        "lstm_recurrent_kernel": (h, 4 * h),
        "lstm_bias": (4 * h,),
        "dense_kernel": (h, vocab),
        "dense_bias": (vocab,),
    }
    for role, shape in expected.items():
        got = getattr(weights, role).shape
        if got != shape:
            raise Rejected("wrong_shape", f"The Keras weight {role} has shape {list(got)}; expected {list(shape)}.")
    for key, value in (("embedding_dim", e), ("hidden_size", h)):
        lo, hi = music.BOUNDS[key]
        if not lo <= value <= hi:
            raise Rejected("config_out_of_bounds", f"The model's {key} is {value}; this lab allows {lo} to {hi}.")
    params = music.parameter_count(vocab, e, h, 1)
    if params > music.MAX_PARAMETERS:
        raise Rejected(
            "config_out_of_bounds",
            f"The model has {params:,} parameters; this lab allows at most {music.MAX_PARAMETERS:,}.",
        )
    state = {
        "embedding.weight": weights.embedding,
        "lstm.weight_ih_l0": weights.lstm_kernel.T,
        "lstm.weight_hh_l0": weights.lstm_recurrent_kernel.T,
        "lstm.bias_ih_l0": weights.lstm_bias,
        "lstm.bias_hh_l0": np.zeros(4 * h, dtype=np.float32),
        "fc.weight": weights.dense_kernel.T,
        "fc.bias": weights.dense_bias,
    }
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}, e, h


def convert(
    weights_path: Path, out_dir: Path, *, embedding_dim: int | None = None, hidden_size: int | None = None
) -> dict:
    """Write the Lab 1 artifact converted from ``weights_path`` into ``out_dir`` and return its check summary."""
    from safetensors.numpy import save_file

    state, e, h = to_state_dict(read_weights(weights_path), embedding_dim=embedding_dim, hidden_size=hidden_size)
    config = {"embedding_dim": e, "hidden_size": h, "num_layers": 1, "vocab": music.COURSE_VOCAB}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / music.WEIGHTS_FILE))
    (out_dir / music.CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    # The same check the upload runs, so that a converted artifact that would be refused is reported here.
    return music.Lab().check(out_dir, deep=True)
