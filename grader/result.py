"""The result.json of an evaluation: how it is built, written and validated (by the grader and by the worker)."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("result.schema.json")


@cache
def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _first_non_finite(value: Any, where: str = "$") -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_non_finite(item, f"{where}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_non_finite(item, f"{where}[{i}]")
            if found:
                return found
    return None


def validate_result(data: Any) -> None:
    """Raise ``ValueError`` saying what is wrong unless ``data`` is a valid result (finite numbers only)."""
    bad = _first_non_finite(data)
    if bad:
        raise ValueError(f"result holds a non-finite number at {bad}")
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        raise ValueError(f"result does not match the schema at {where}: {err.message}")


def parse_result(raw: bytes) -> dict[str, Any]:
    """Parse and validate the bytes of a result.json; ``ValueError`` saying what is wrong.

    The worker reads a box's result.json through its untrusted-file reader (no links, no FIFOs, capped) and
    hands the bytes here; nothing in this module opens a file a box could have planted.
    """

    def refuse(token: str):
        raise ValueError(f"result holds the non-finite number {token}")

    data = json.loads(raw.decode("utf-8"), parse_constant=refuse)
    validate_result(data)
    return data


def load_result(path: Path | str) -> dict[str, Any]:
    """A result.json the grader itself wrote on this machine (the command line, tests): not a box's output."""
    return parse_result(Path(path).read_bytes())


def build_result(
    *,
    lab: str,
    grader_version: str,
    dataset_name: str | None,
    dataset_hash: str | None,
    device_class: str,
    seed: int,
    status: str,
    error: dict[str, str] | None = None,
    metrics: dict[str, dict[str, float | None]] | None = None,
    primary: dict[str, str] | None = None,
    tiebreak: dict[str, str] | None = None,
    groups: dict[str, Any] | None = None,
    samples: list[dict[str, Any]] | None = None,
    details: dict[str, Any] | None = None,
    artifact: dict[str, Any] | None = None,
    timings: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "lab": lab,
        "grader_version": grader_version,
        "dataset": {"name": dataset_name, "hash": dataset_hash},
        "device_class": device_class,
        "seed": seed,
        "status": status,
        "error": error,
        "metrics": metrics or {},
        "primary": primary,
        "tiebreak": tiebreak,
        "groups": groups,
        "samples": samples or [],
        "details": details or {},
        "artifact": artifact or {},
        "timings": timings or {"check_s": None, "evaluate_s": None, "total_s": None},
    }


def write_result(path: Path | str, data: dict[str, Any]) -> None:
    """Validate then write atomically, so a reader never sees half a file."""
    validate_result(data)
    path = Path(path)
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    tmp.replace(path)
