"""A lab's metrics in words: the label and one-line explanation the grader's lab class declares for each key."""

from dataclasses import dataclass

from grader.registry import MetricSpec, get_lab


@dataclass(frozen=True)
class MetricRow:
    """One metric of one evaluation as a page shows it: its words, its values per split, its role in the ranking."""

    key: str
    label: str
    explanation: str
    public: float | None
    private: float | None
    role: str  # "primary", "tie-break" or ""


def declared(kind: str) -> dict[str, MetricSpec]:
    """The lab's split-level metrics by key, in the order the lab declares them."""
    return {spec.key: spec for spec in type(get_lab(kind)).metrics}


def label(kind: str, key: str) -> str:
    spec = declared(kind).get(key)
    # The worker refuses a result with an undeclared metric, so the key itself shows only for rows graded before a
    # lab dropped a metric.
    return spec.label if spec else key


def group_label(kind: str, key: str) -> str:
    for spec in type(get_lab(kind)).group_metrics:
        if spec.key == key:
            return spec.label
    return key


def metric_rows(lab, metrics: dict | None, *, private_visible: bool) -> list[MetricRow]:
    """The table of an evaluation's metrics: declared ones in declaration order, then any the lab no longer declares."""
    public = (metrics or {}).get("public") or {}
    private = ((metrics or {}).get("private") or {}) if private_visible else {}
    specs = declared(lab.kind)
    keys = [k for k in specs if k in public or k in private]
    keys += [k for k in public if k not in specs]
    roles = {lab.primary_metric: "primary", lab.tiebreak_metric: "tie-break"}
    return [
        MetricRow(
            key=key,
            label=specs[key].label if key in specs else key,
            explanation=specs[key].explanation if key in specs else "",
            public=public.get(key),
            private=private.get(key),
            role=roles.get(key, ""),
        )
        for key in keys
    ]


def metric_glossary(kind: str, keys) -> dict[str, dict]:
    """Label, explanation and direction of the given keys, for the API (keys the lab does not declare are left out)."""
    specs = declared(kind)
    return {
        key: {"label": specs[key].label, "explanation": specs[key].explanation, "direction": specs[key].direction}
        for key in keys
        if key in specs
    }
