"""Rubric totals, per-judge normalisation and the ranking of a judged round: pure functions of numbers."""

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

ZSCORE = "zscore"
MEAN = "mean"

TIE_BREAK = (
    "Higher result first; on a tie, the higher plain mean of the judges' totals, then more judges, "
    "then the entry registered first (lower entry number)."
)
NORMALISATION_RULE = (
    "Each judge's weighted totals are turned into z-scores over the entries she scored (her mean subtracted, "
    "divided by her standard deviation, population form); a judge who gave every entry the same total is only "
    "centred (all zero); a judge who scored fewer than two entries is left out of the normalised result."
)


def weighted_total(values: Mapping[Hashable, float], weights: Mapping[Hashable, float]) -> float | None:
    """The rubric-weighted sum; None until every criterion has a value (a half-scored entry does not count)."""
    if any(criterion not in values for criterion in weights):
        return None
    return float(sum(weights[criterion] * values[criterion] for criterion in weights))


@dataclass
class JudgeNormalisation:
    judge: Hashable
    mean: float
    sd: float
    count: int
    included: bool
    note: str = ""


def zscores(totals: Mapping[Hashable, float]) -> tuple[dict[Hashable, float], float, float]:
    """One judge's totals as z-scores (population standard deviation); all zero when they are all equal."""
    values = list(totals.values())
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    if sd == 0:
        return {entry: 0.0 for entry in totals}, mean, sd
    return {entry: (total - mean) / sd for entry, total in totals.items()}, mean, sd


def normalise(
    totals_by_judge: Mapping[Hashable, Mapping[Hashable, float]], method: str = ZSCORE
) -> tuple[dict[Hashable, dict[Hashable, float]], dict[Hashable, JudgeNormalisation]]:
    """Per judge, the values that enter the entry means, and how each judge was treated."""
    values: dict[Hashable, dict[Hashable, float]] = {}
    info: dict[Hashable, JudgeNormalisation] = {}
    for judge, totals in totals_by_judge.items():
        if not totals:
            continue
        if method == MEAN:
            mean = sum(totals.values()) / len(totals)
            values[judge] = dict(totals)
            info[judge] = JudgeNormalisation(judge, mean, 0.0, len(totals), True)
            continue
        if len(totals) < 2:
            mean = next(iter(totals.values()))
            info[judge] = JudgeNormalisation(
                judge, mean, 0.0, 1, False, "scored fewer than two entries: left out of the normalised result"
            )
            continue
        z, mean, sd = zscores(totals)
        note = "gave every entry the same total: centred only (all zero)" if sd == 0 else ""
        values[judge] = z
        info[judge] = JudgeNormalisation(judge, mean, sd, len(totals), True, note)
    return values, info


@dataclass
class EntryResult:
    entry: Hashable
    result: float | None
    plain_mean: float | None
    judges: int
    totals: dict = field(default_factory=dict)
    normalised: dict = field(default_factory=dict)
    rank: int | None = None
    plain_rank: int | None = None


def _order_key(row: EntryResult) -> tuple:
    return (-row.result, -(row.plain_mean or 0.0), -row.judges, row.entry)


def rank_round(
    totals_by_judge: Mapping[Hashable, Mapping[Hashable, float]],
    entries: list[Hashable],
    method: str = ZSCORE,
) -> tuple[list[EntryResult], dict[Hashable, JudgeNormalisation]]:
    """Every entry's result (mean over its judges of the normalised totals) and its rank by ``TIE_BREAK``.

    Entries are identified by sortable ids (lower = registered first). Entries without a result come last,
    unranked. ``plain_rank`` is the rank the plain means alone would give: what normalisation changed.
    """
    normalised, info = normalise(totals_by_judge, method)
    rows = []
    for entry in entries:
        totals = {j: t[entry] for j, t in totals_by_judge.items() if entry in t}
        values = {j: v[entry] for j, v in normalised.items() if entry in v}
        rows.append(
            EntryResult(
                entry=entry,
                result=sum(values.values()) / len(values) if values else None,
                plain_mean=sum(totals.values()) / len(totals) if totals else None,
                judges=len(totals),
                totals=totals,
                normalised=values,
            )
        )
    ranked = sorted((r for r in rows if r.result is not None), key=_order_key)
    for position, row in enumerate(ranked, start=1):
        row.rank = position
    plain = sorted((r for r in rows if r.plain_mean is not None), key=lambda r: (-r.plain_mean, -r.judges, r.entry))
    for position, row in enumerate(plain, start=1):
        row.plain_rank = position
    unranked = [r for r in rows if r.result is None]
    return ranked + unranked, info


# ---------------------------------------------------------------- ranking a prize of a round

JUDGES = "judges"
METRIC = "metric"
WEIGHTED = "weighted"

PRIZE_TIE_BREAK = (
    "Higher score first; on a tie, the better place by the judges (their own tie-break), then the better metric, "
    "then the entry registered first (lower entry number)."
)


def metric_zscores(metrics: Mapping[Hashable, float | None], direction: str) -> dict[Hashable, float]:
    """The metric as z-scores over the entries that have one (population form), signed so that higher is better.

    ``direction`` is the lab's: "min" when a lower value is better. Entries without a finite metric get none; when
    every entry has the same value they are all zero.
    """
    present = {e: float(v) for e, v in metrics.items() if v is not None and math.isfinite(v)}
    if not present:
        return {}
    z, _, _ = zscores(present)
    sign = -1.0 if direction == "min" else 1.0
    return {entry: sign * value + 0.0 for entry, value in z.items()}


@dataclass
class PrizeRow:
    entry: Hashable
    score: float | None
    judges: float | None
    judges_rank: int | None
    metric: float | None
    metric_z: float | None
    rank: int | None = None
    missing: str = ""


def rank_prize(
    *,
    mode: str,
    judged: list[EntryResult],
    metrics: Mapping[Hashable, float | None],
    direction: str = "max",
    weight: float | None = None,
) -> list[PrizeRow]:
    """The entries of a round ranked for a prize: by the judges' result, by the metric, or by a weighting of both.

    ``judged`` is ``rank_round``'s answer (every entry of the round). ``metrics`` holds each entry's raw metric
    (None when it has none); ``direction`` is the lab's ("min": lower is better). The weighted score is
    ``(1 - weight) * judges' normalised result + weight * the metric's z-score over the round's entries``.
    An entry lacking what its mode needs is left unranked, last, with what it lacks. Ties: ``PRIZE_TIE_BREAK``.
    """
    if mode not in (JUDGES, METRIC, WEIGHTED):
        raise ValueError(f"unknown ranking {mode!r}")
    if mode == WEIGHTED and (weight is None or not 0 <= weight <= 1):
        raise ValueError("a weighted ranking needs a weight from 0 to 1")
    z = metric_zscores({row.entry: metrics.get(row.entry) for row in judged}, direction)
    rows = []
    for row in judged:
        raw = metrics.get(row.entry)
        metric = float(raw) if raw is not None and math.isfinite(raw) else None
        score, missing = None, ""
        if mode == JUDGES:
            score, missing = row.result, "" if row.result is not None else "no complete score from a counted judge"
        elif mode == METRIC:
            score = None if metric is None else (-metric if direction == "min" else metric)
            missing = "" if metric is not None else "no metric"
        else:
            lacks = [
                what
                for what, value in (("a complete score from a counted judge", row.result), ("a metric", metric))
                if value is None
            ]
            if lacks:
                missing = "no " + " and no ".join(w.removeprefix("a ") for w in lacks)
            else:
                score = (1 - weight) * row.result + weight * z[row.entry]
        rows.append(PrizeRow(row.entry, score, row.result, row.rank, metric, z.get(row.entry), missing=missing))

    def key(r: PrizeRow) -> tuple:
        better_metric = (-r.metric if direction != "min" else r.metric) if r.metric is not None else math.inf
        return (-round(r.score, 9), r.judges_rank or math.inf, better_metric, r.entry)

    ranked = sorted((r for r in rows if r.score is not None), key=key)
    for position, row in enumerate(ranked, start=1):
        row.rank = position
    return ranked + [r for r in rows if r.score is None]


def prize_ranking_statement(prize) -> str:
    """How a prize's winners are ranked, in words: the one sentence the winners page and the staff pages show."""
    if prize.category == "lab":
        return "Ranked by the lab's private leaderboard."
    if prize.ranking == JUDGES:
        return "Ranked by the judges' normalised result."
    # Which result of the entry is read: the entered submission's, counted as the leaderboard counts results.
    result = (
        " The metric is the entered submission's result as the leaderboard counts it (the newest evaluation by "
        "the freeze, of the ranked device class"
        + (", late work included)." if prize.counts_late_work else "; late work left out).")
    )
    if prize.ranking == METRIC:
        return "Ranked by the lab's metric on the private split." + result
    share = prize.metric_weight or 0.0
    return (
        f"Ranked by a weighting: {1 - share:.0%} the judges' normalised result, {share:.0%} the z-score of the "
        "lab's metric (private split) over the round's entries." + result
    )
