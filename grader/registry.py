"""The registry of labs: each lab plugs in its artifact checks, dataset, reference models and metrics."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Direction = Literal["min", "max"]

# Lab modules are imported lazily so that `check` of one lab never pays for another lab's imports.
LAB_MODULES = {
    "music": "grader.labs.music",
    "vision": "grader.labs.vision",
    "llm": "grader.labs.llm",
}


@dataclass
class EvaluationOutput:
    """What a lab's evaluator returns; the CLI wraps it into result.json."""

    # {"public": {"metric": value or None}, "private": {...}}; None means "not available", never NaN.
    metrics: dict[str, dict[str, float | None]]
    # Per-group tables by split, e.g. {"public": {"LF": {"tpr": 0.9, ...}}} (vision only).
    groups: dict[str, dict[str, dict[str, float | None]]] | None = None
    # Shown to the student: public-split inputs only. {"kind": "abc"|"text", "split": "public", "title": str,
    # "text": str, plus lab-specific keys}.
    samples: list[dict[str, Any]] = field(default_factory=list)
    # Lab-specific extras (e.g. the style-score distribution); JSON-serialisable, finite numbers only.
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluationContext:
    artifact_dir: Path
    data_dir: Path
    manifest: Any  # grader.dataset.Manifest, verified before the evaluator runs
    out_dir: Path
    device: str  # "cpu" or "cuda"
    seed: int
    options: dict[str, Any] = field(default_factory=dict)  # e.g. {"base_model": "/models/gemma"}


class LabEvaluator(ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    artifact_files: ClassVar[tuple[str, ...]]  # the files an artifact consists of, exactly
    primary_metric: ClassVar[str]
    primary_direction: ClassVar[Direction]
    tiebreak_metric: ClassVar[str]
    tiebreak_direction: ClassVar[Direction]
    reference_variants: ClassVar[tuple[str, ...]] = ("reference",)

    def artifact_file_sets(self, options: dict[str, Any] | None = None) -> list[tuple[str, ...]]:
        """The sets of files an artifact may consist of, exactly; the first is the lab's standard one."""
        return [self.artifact_files]

    @abstractmethod
    def check(self, artifact_dir: Path, *, deep: bool = False, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate an artifact; raise ``Rejected`` with a message for the student.

        ``options`` are the lab's evaluator settings (e.g. which base model an adapter must name).
        ``deep=False`` reads only headers and the config (the web runs it at upload: no torch import, no tensor
        data read); ``deep=True`` also reads the values (finite) and whatever needs more than headers.
        Returns a short JSON-serialisable summary (hyperparameters, parameter count).
        """

    @abstractmethod
    def prepare_data(self, course_data: Path, out_dir: Path, *, seed: int) -> None:
        """Write this lab's demo hidden dataset (with manifest.json) under ``out_dir``."""

    @abstractmethod
    def train_reference(self, data_dir: Path, out_dir: Path, *, variant: str, seed: int) -> dict[str, Any]:
        """Train a small reference model on the CPU and write a valid artifact to ``out_dir``."""

    @abstractmethod
    def evaluate(self, ctx: EvaluationContext) -> EvaluationOutput:
        """Compute the metrics of a checked artifact on the dataset; raise ``Rejected`` for the student's faults."""


_instances: dict[str, LabEvaluator] = {}


def get_lab(name: str) -> LabEvaluator:
    if name not in LAB_MODULES:
        raise KeyError(f"unknown lab {name!r}; known labs: {', '.join(sorted(LAB_MODULES))}")
    if name not in _instances:
        module = importlib.import_module(LAB_MODULES[name])
        _instances[name] = module.Lab()
    return _instances[name]


def lab_names() -> list[str]:
    return list(LAB_MODULES)
