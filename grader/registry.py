"""The registry of labs: each lab plugs in its artifact checks, dataset, reference models and metrics."""

from __future__ import annotations

import importlib
import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

Direction = Literal["min", "max"]
SPLITS = ("public", "private")

# Lab modules are imported lazily so that `check` of one lab never pays for another lab's imports.
LAB_MODULES = {
    "music": "grader.labs.music",
    "vision": "grader.labs.vision",
    "llm": "grader.labs.llm",
}


@dataclass(frozen=True)
class MetricSpec:
    """One number a lab reports: what it is called, what it means to a student, which way is better, its range."""

    key: str
    label: str  # plain words, e.g. "Worst-group detection rate at 5% FPR"
    explanation: str  # one line for a student
    # "min": lower is better, "max": higher is better, None: a diagnostic that is neither (a threshold, a count).
    direction: Direction | None
    low: float | None = None  # inclusive; None: unbounded below
    high: float | None = None  # inclusive; None: unbounded above

    def __post_init__(self):
        if not self.key or not self.label or not self.explanation:
            raise ValueError(f"metric {self.key!r}: key, label and explanation must not be empty")
        if self.direction not in ("min", "max", None):
            raise ValueError(f"metric {self.key!r}: direction must be 'min', 'max' or None, not {self.direction!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"metric {self.key!r}: low {self.low} is above high {self.high}")

    def contains(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def range_text(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        if self.low is not None:
            return f"{self.low:g} or more"
        if self.high is not None:
            return f"{self.high:g} or less"
        return "any finite number"


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
    # Every metric the lab can report in any split, with its range: the one declaration the worker checks the
    # (untrusted) sandbox's numbers against and the web takes labels from.
    metrics: ClassVar[tuple[MetricSpec, ...]]
    primary_metric: ClassVar[str]
    primary_direction: ClassVar[Direction]
    tiebreak_metric: ClassVar[str]
    tiebreak_direction: ClassVar[Direction]
    # Labs with per-group tables (vision): the groups a table may have, and the columns of each group's row.
    group_names: ClassVar[tuple[str, ...]] = ()
    group_metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    reference_variants: ClassVar[tuple[str, ...]] = ("reference",)
    # The Celery queue its evaluations go to (workers subscribe to queues by GPU class).
    queue: ClassVar[str]
    # The metrics a leaderboard shows as columns, in order (each one declared in ``metrics``).
    leaderboard_columns: ClassVar[tuple[str, ...]]
    # Whether grading needs a base model provisioned on the node (Lab 3), named by the lab's ``base_model`` option.
    needs_base_model: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A lab that names its ranking metrics must declare them, so a typo fails at import, not on a leaderboard.
        if hasattr(cls, "primary_metric"):
            problems = declaration_problems(cls)
            if problems:
                raise TypeError(f"lab class {cls.__qualname__} disagrees with itself: " + "; ".join(problems))

    def cost_is_bounded(self, file_names: set[str]) -> bool:
        """Whether the lab's bounds on an artifact made of ``file_names`` fix what grading it costs.

        True for weights of the lab's architecture family with a config within bounds: such an artifact running out
        of time or memory means the lab's limits are too tight (the platform's fault). False where no bound fixes
        the cost (an ONNX graph may loop): a confirmed timeout is then the student's.
        """
        return True

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


def declaration_problems(cls: type[LabEvaluator]) -> list[str]:
    """What is wrong with a lab class's metric declaration (empty when nothing is)."""
    problems = []
    declared = getattr(cls, "metrics", None)
    if not isinstance(declared, tuple) or not all(isinstance(m, MetricSpec) for m in declared):
        return ["'metrics' must be a tuple of MetricSpec"]
    for what, specs in (("metrics", declared), ("group_metrics", cls.group_metrics)):
        keys = [m.key for m in specs]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            problems.append(f"{what} declares {', '.join(repeated)} more than once")
    if cls.group_metrics and not cls.group_names:
        problems.append("group_metrics are declared but no group_names")
    by_key = {m.key: m for m in declared}
    for name in ("queue", "leaderboard_columns"):
        if not getattr(cls, name, None):
            problems.append(f"'{name}' is not declared")
    for key in getattr(cls, "leaderboard_columns", ()) or ():
        if key not in {m.key for m in declared}:
            problems.append(f"the leaderboard column {key!r} is not among the declared metrics")
    for role in ("primary", "tiebreak"):
        key = getattr(cls, f"{role}_metric", None)
        direction = getattr(cls, f"{role}_direction", None)
        spec = by_key.get(key)
        if spec is None:
            problems.append(f"the {role} metric {key!r} is not among the declared metrics")
        elif spec.direction != direction:
            problems.append(f"the {role} direction is {direction!r} but metric {key!r} is declared {spec.direction!r}")
    return problems


def lab_row_problems(
    *, kind: str, primary_metric: str, primary_direction: str, tiebreak_metric: str, tiebreak_direction: str
) -> list[str]:
    """What a course's lab row gets wrong against the lab's declaration: it picks its primary and tie-break metric
    among the declared metrics, each with the direction the lab declares for it."""
    if kind not in LAB_MODULES:
        return [f"there is no lab {kind!r}; known labs: {', '.join(sorted(LAB_MODULES))}"]
    declared = {m.key: m for m in _lab_class(kind).metrics}
    problems = []
    for role, key, direction in (
        ("primary", primary_metric, primary_direction),
        ("tie-break", tiebreak_metric, tiebreak_direction),
    ):
        spec = declared.get(key)
        if spec is None:
            problems.append(f"the {role} metric {key!r} is not a metric of lab {kind!r} ({', '.join(declared)})")
        elif spec.direction is None:
            problems.append(f"the {role} metric {key!r} is a diagnostic of lab {kind!r}, not a score to rank by")
        elif spec.direction != direction:
            problems.append(f"the {role} metric {key!r} is declared {spec.direction!r}, not {direction!r}")
    return problems


def _lab_class(lab_name: str) -> type[LabEvaluator]:
    return type(get_lab(lab_name))


def metric_spec(lab_name: str, key: str) -> MetricSpec:
    """The declaration of one split-level metric of a lab; KeyError for a key the lab never reports."""
    for spec in _lab_class(lab_name).metrics:
        if spec.key == key:
            return spec
    raise KeyError(f"lab {lab_name!r} reports no metric {key!r}")


def group_metric_spec(lab_name: str, key: str) -> MetricSpec:
    """The declaration of one per-group column of a lab; KeyError for a column the lab never reports."""
    for spec in _lab_class(lab_name).group_metrics:
        if spec.key == key:
            return spec
    raise KeyError(f"lab {lab_name!r} reports no per-group column {key!r}")


def _shown(value: Any, limit: int = 60) -> str:
    """A value from an untrusted result, quoted and cut short for a log line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_problem(where: str, spec: MetricSpec, value: Any) -> str | None:
    if value is None:  # "not available" is a legitimate answer, e.g. FGSM for a model without gradients
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"{where} is {_shown(value)}, not a number"
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float, which JSON allows
        return f"{where} is {_shown(value)}, not a finite number"
    if not math.isfinite(number):
        return f"{where} is {_shown(value)}, not a finite number"
    if not spec.contains(number):
        return f"{where} = {number:g} is outside the allowed range ({spec.range_text()})"
    return None


def _table_problems(where: str, table: Any, specs: dict[str, MetricSpec], what: str) -> list[str]:
    if not isinstance(table, dict):
        return [f"{where} is {_shown(table)}, not a table of {what}s"]
    problems = []
    for key, value in table.items():
        spec = specs.get(key)
        if spec is None:
            problems.append(f"{where}: unknown {what} {_shown(key)}")
            continue
        problem = _value_problem(f"{where}.{key}", spec, value)
        if problem:
            problems.append(problem)
    return problems


def _splits(value: Any, what: str) -> tuple[list[tuple[str, Any]], list[str]]:
    """The known splits of a by-split mapping, and a message for anything else in it."""
    if not isinstance(value, dict):
        return [], [f"the {what} are {_shown(value)}, not a table by split"]
    known = [(split, table) for split, table in value.items() if split in SPLITS]
    unknown = [f"{what}: unknown split {_shown(split)}" for split in value if split not in SPLITS]
    return known, unknown


def out_of_range(
    lab_name: str,
    metrics: dict[str, dict[str, Any]],
    groups: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> list[str]:
    """One plain message per number of an evaluation that the lab's declaration does not allow (empty if none).

    ``metrics`` and ``groups`` are shaped as in ``EvaluationOutput`` but come from the sandbox, so nothing about
    them is trusted: an unknown split, metric, group or column, a value that is not a number (a bool is not), a
    non-finite number, or a number outside the declared range each give a message. None ("not available") is
    allowed for every metric.
    """
    cls = _lab_class(lab_name)
    specs = {m.key: m for m in cls.metrics}
    splits, problems = _splits(metrics, "metrics")
    for split, table in splits:
        problems += _table_problems(split, table, specs, "metric")
    if groups is None:
        return problems
    if not cls.group_metrics:
        # Empty tables say nothing, so only a table with rows is out of place.
        if not (isinstance(groups, dict) and all(table == {} for table in groups.values())):
            problems.append(f"the {lab_name} lab reports no per-group tables, but the result has {_shown(groups)}")
        return problems
    columns = {m.key: m for m in cls.group_metrics}
    splits, unknown = _splits(groups, "groups")
    problems += unknown
    for split, by_group in splits:
        if not isinstance(by_group, dict):
            problems.append(f"groups.{split} is {_shown(by_group)}, not a table by group")
            continue
        for group, row in by_group.items():
            if group not in cls.group_names:
                problems.append(f"groups.{split}: unknown group {_shown(group)}")
                continue
            problems += _table_problems(f"groups.{split}.{group}", row, columns, "column")
    return problems
