"""Safe reading of untrusted safetensors files: header checks first, tensor data only after they pass."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grader.errors import Rejected

if TYPE_CHECKING:  # torch is imported only when tensor data is read
    import torch

# Bytes per element of every dtype the safetensors format defines.
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}

MIB = 1024 * 1024
# The largest header a lab's model can need: an all-linear LoRA adapter of a 2B model has a header of tens of KB.
# The header is JSON that the web process parses at upload, so its length (the file's first 8 bytes) is checked
# before any of it is read: a parsed header costs tens of times its size in memory.
MAX_HEADER_BYTES = 1 * MIB
# Within that, the parser's memory follows the number of JSON values (an empty object costs 80 bytes of memory for
# 3 bytes of text), so they are counted before parsing: a tensor's entry holds at most 6 + ndim of them.
HEADER_VALUES_PER_TENSOR = 12
HEADER_VALUES_SPARE = 256  # __metadata__ and the outer object
# The most tensors a lab's artifact may hold unless its lab says fewer: an all-linear LoRA adapter of an 80-layer
# model holds 1,120. With the count above it bounds what parsing a header can cost to a few MB.
MAX_TENSORS = 4096
SAVE_HINT = (
    "Save the weights with `from safetensors.torch import save_file; "
    'save_file(model.state_dict(), "model.safetensors")`.'
)


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets relative to the start of the data area, as in the file
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def _looks_like_pickle(head: bytes) -> bool:
    # Pickle protocol 2+ opens with 0x80 and the protocol number; torch.save writes a zip archive ("PK\x03\x04")
    # holding a pickle; protocols 0 and 1 open with an opcode such as "(", "]" or "}" followed by more opcodes.
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return True
    if head[:4] == b"PK\x03\x04":
        return True
    return head[:2] in (b"(d", b"(l", b"(c", b"(S", b"}q", b"]q", b"cc", b"ct")


def read_header(
    path: Path | str, *, max_header_bytes: int = MAX_HEADER_BYTES, max_tensors: int = MAX_TENSORS
) -> dict[str, TensorInfo]:
    """Parse and validate the header of a safetensors file without reading any tensor data."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise Rejected("missing_file", f"{name} is missing. {SAVE_HINT}")
    size = path.stat().st_size
    if size == 0:
        raise Rejected("not_safetensors", f"{name} is empty. {SAVE_HINT}")
    with path.open("rb") as fh:
        head = fh.read(9)
        header_len = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else 0
        # A real header is a JSON object right after the length; only otherwise is the pickle guess made.
        plausible = len(head) == 9 and head[8:9] == b"{" and 8 + header_len <= size
        if not plausible and _looks_like_pickle(head):
            raise Rejected(
                "pickle_not_allowed",
                f"{name} is a pickle or a torch.save file, which can run code and is never loaded. {SAVE_HINT}",
            )
        if len(head) < 9:
            raise Rejected("not_safetensors", f"{name} is too short to be a safetensors file. {SAVE_HINT}")
        if header_len > max_header_bytes and 8 + header_len > size:
            # A length past both the limit and the file is no header at all; its number would mean nothing to her.
            raise Rejected(
                "not_safetensors",
                f"{name} is not a safetensors file: it does not start with a safetensors header (a file saved "
                f"with torch.save or in another format looks like this). {SAVE_HINT}",
            )
        if header_len > max_header_bytes:
            raise Rejected(
                "not_safetensors",
                f"{name} is not a safetensors file of this lab's model: its header would be {header_len} bytes, "
                f"over the limit of {_size(max_header_bytes)} (the header of this lab's model is far smaller). "
                f"{SAVE_HINT}",
            )
        if 8 + header_len > size:
            raise Rejected(
                "truncated_file",
                f"{name} is truncated: its header says {header_len} bytes but the file ends before that. "
                "Upload the whole file again.",
            )
        fh.seek(8)
        raw = fh.read(header_len)
    # Every value but a container's first follows a comma, so commas and containers bound the values (commas inside
    # strings only make the count larger); counting bytes allocates nothing.
    values = raw.count(b",") + raw.count(b"{") + raw.count(b"[")
    if values > HEADER_VALUES_PER_TENSOR * max_tensors + HEADER_VALUES_SPARE:
        raise Rejected(
            "not_safetensors",
            f"{name} is not a safetensors file of this lab's model: its header holds about {values} entries, more "
            f"than {max_tensors} tensors (the most allowed) can need. {SAVE_HINT}",
        )
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):  # deep nesting exhausts the JSON parser's stack
        raise Rejected("not_safetensors", f"{name} is not a safetensors file (its header is not JSON). {SAVE_HINT}")
    if not isinstance(header, dict):
        raise Rejected("not_safetensors", f"{name} is not a safetensors file (its header is not a JSON object).")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise Rejected("not_safetensors", f"{name}: __metadata__ must map names to strings.")
    if len(header) > max_tensors:
        raise Rejected("too_many_tensors", f"{name} holds {len(header)} tensors; at most {max_tensors} are allowed.")

    tensors: dict[str, TensorInfo] = {}
    for tname, entry in header.items():
        tensors[tname] = _parse_entry(name, tname, entry)

    data_len = size - 8 - header_len
    expected_start = 0
    for tname, info in sorted(tensors.items(), key=lambda kv: (kv[1].start, kv[1].end)):
        if info.start != expected_start:
            what = "overlaps another tensor" if info.start < expected_start else "leaves a gap before it"
            raise Rejected("not_safetensors", f"{name}: tensor {tname!r} {what}; the file is damaged.")
        if info.end > data_len:
            raise Rejected(
                "truncated_file",
                f"{name} is truncated: tensor {tname!r} runs past the end of the file. Upload the whole file again.",
            )
        expected_start = info.end
    if expected_start != data_len:
        raise Rejected("not_safetensors", f"{name} has {data_len - expected_start} unexplained bytes at its end.")
    return tensors


def _size(count: int) -> str:
    if count % MIB == 0:
        return f"{count // MIB} MiB ({count} bytes)"
    return f"{count} bytes"


def _refuse_constant(token: str):
    raise ValueError(f"non-standard JSON constant {token}")


def _parse_entry(fname: str, tname: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise Rejected("not_safetensors", f"{fname}: the header entry of {tname!r} is not an object.")
    dtype = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise Rejected("not_safetensors", f"{fname}: tensor {tname!r} has an unknown dtype {dtype!r}.")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise Rejected("not_safetensors", f"{fname}: tensor {tname!r} has a malformed shape.")
    if any(d < 0 for d in shape):
        raise Rejected("not_safetensors", f"{fname}: tensor {tname!r} has a negative dimension.")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
        or offsets[0] < 0
        or offsets[1] < offsets[0]
    ):
        raise Rejected("not_safetensors", f"{fname}: tensor {tname!r} has malformed data offsets.")
    start, end = offsets
    if (end - start) != math.prod(shape) * DTYPE_SIZES[dtype]:
        raise Rejected(
            "not_safetensors",
            f"{fname}: tensor {tname!r} holds {end - start} bytes but its shape {tuple(shape)} and dtype {dtype} "
            "need a different size; the file is damaged.",
        )
    return TensorInfo(dtype=dtype, shape=tuple(shape), start=start, end=end)


def expect_tensors(
    header: dict[str, TensorInfo],
    expected: dict[str, tuple[str | tuple[str, ...], tuple[int, ...]]],
    *,
    allow_extra: set[str] | None = None,
) -> None:
    """Reject a header whose tensor names, shapes or dtypes differ from ``expected``.

    An expected dtype may be one string or a tuple of accepted dtypes.
    """
    allow_extra = allow_extra or set()
    problems: list[str] = []
    for tname in sorted(expected):
        if tname not in header:
            problems.append(f"missing tensor {tname!r}")
    for tname in sorted(header):
        if tname not in expected and tname not in allow_extra:
            problems.append(f"unexpected tensor {tname!r}")
    for tname, (dtypes, shape) in expected.items():
        info = header.get(tname)
        if info is None:
            continue
        accepted = (dtypes,) if isinstance(dtypes, str) else tuple(dtypes)
        if info.shape != tuple(shape):
            problems.append(f"tensor {tname!r} has shape {list(info.shape)}, expected {list(shape)}")
        if info.dtype not in accepted:
            problems.append(f"tensor {tname!r} has dtype {info.dtype}, expected {' or '.join(accepted)}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise Rejected(
            "wrong_tensors",
            "The weights do not match the model described by the config: "
            + "; ".join(problems[:5])
            + more
            + ". Save the state_dict() of the lab's model built with the hyperparameters in the config.",
        )


def load_tensors(path: Path | str, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Read tensors (all, or ``names``) into CPU memory; call only after ``read_header`` passed."""
    from safetensors import safe_open

    out = {}
    with safe_open(str(path), framework="pt", device="cpu") as fh:
        for tname in names if names is not None else list(fh.keys()):
            out[tname] = fh.get_tensor(tname)
    return out


def ensure_finite(tensors: dict[str, torch.Tensor]) -> None:
    """Reject weights holding NaN or infinite values, naming the first bad tensor."""
    import torch

    for tname in sorted(tensors):
        t = tensors[tname]
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise Rejected(
                "non_finite_weights",
                f"Tensor {tname!r} contains NaN or infinite values; training probably diverged. "
                "Lower the learning rate or clip gradients, and save a model whose weights are finite.",
            )
