"""Reading an artifact's small JSON config and checking its hyperparameters against the lab's bounds."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grader.errors import Rejected

KIB = 1024


def read_json(path: Path | str, *, name: str, max_bytes: int = 64 * KIB) -> dict[str, Any]:
    """Read a JSON object from an untrusted file; every failure is a ``Rejected`` the student can act on."""
    path = Path(path)
    if not path.is_file():
        raise Rejected("missing_file", f"{name} is missing; upload it next to the weights.")
    size = path.stat().st_size
    if size > max_bytes:
        raise Rejected("bad_config", f"{name} is {size} bytes; a config is at most {max_bytes} bytes.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected("bad_config", f"{name} is not UTF-8 text.")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_refuse_duplicates)
    except json.JSONDecodeError as exc:
        raise Rejected("bad_config", f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.")
    except ValueError as exc:
        raise Rejected("bad_config", f"{name} is not valid JSON: {exc}.")
    except RecursionError:
        raise Rejected("bad_config", f"{name} nests too deeply; a config is one flat JSON object.")
    if not isinstance(data, dict):
        raise Rejected("bad_config", f"{name} must hold a JSON object ({{...}}), not a {type(data).__name__}.")
    return data


def _refuse_constant(token: str):
    raise ValueError(f"{token} is not allowed")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def _require(cfg: dict[str, Any], key: str) -> Any:
    if key not in cfg:
        raise Rejected("bad_config", f"The config lacks the key {key!r}.")
    return cfg[key]


def int_in(cfg: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = _require(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("bad_config", f"The config's {key!r} must be a whole number, not {value!r}.")
    if not lo <= value <= hi:
        raise Rejected("config_out_of_bounds", f"The config's {key!r} is {value}; this lab allows {lo} to {hi}.")
    return value


def float_in(cfg: dict[str, Any], key: str, lo: float, hi: float) -> float:
    value = _require(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejected("bad_config", f"The config's {key!r} must be a finite number, not {value!r}.")
    if not lo <= value <= hi:
        raise Rejected("config_out_of_bounds", f"The config's {key!r} is {value}; this lab allows {lo} to {hi}.")
    return float(value)


def str_in(cfg: dict[str, Any], key: str, allowed: Iterable[str]) -> str:
    value = _require(cfg, key)
    allowed = list(allowed)
    if not isinstance(value, str):
        raise Rejected("bad_config", f"The config's {key!r} must be a string, not {value!r}.")
    if value not in allowed:
        raise Rejected(
            "config_out_of_bounds",
            f"The config's {key!r} is {value!r}; allowed values: {', '.join(repr(a) for a in allowed)}.",
        )
    return value


def reject_unknown_keys(cfg: dict[str, Any], allowed: set[str], *, name: str) -> None:
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise Rejected(
            "bad_config",
            f"{name} has unknown keys {', '.join(repr(k) for k in unknown[:10])}; "
            f"the allowed keys are {', '.join(sorted(allowed))}.",
        )
