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
