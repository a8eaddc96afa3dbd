"""A round's results for staff: the ranking with its per-judge breakdown, and who has scored what."""

from dataclasses import dataclass

from prizes import ranking
from prizes.models import Conflict, Entry, Round, Score
from prizes.selectors.judging import round_entries


def judge_totals(round: Round) -> tuple[dict[int, dict[int, float]], dict[int, dict[int, dict[int, int]]]]:
    """Per judge and entry, the weighted total of complete score sheets; and the raw marks behind them."""
    weights = dict(round.criteria.values_list("pk", "weight"))
    marks: dict[int, dict[int, dict[int, int]]] = {}
    conflicted = set(Conflict.objects.filter(entry__round=round).values_list("judge_id", "entry_id"))
    panel = set(round.assignments.values_list("judge_id", flat=True))
    for judge_id, entry_id, criterion_id, value in Score.objects.filter(entry__round=round).values_list(
        "judge_id", "entry_id", "criterion_id", "value"
    ):
        # A judge removed from the panel or conflicted later no longer counts.
        if judge_id not in panel or (judge_id, entry_id) in conflicted:
            continue
        marks.setdefault(judge_id, {}).setdefault(entry_id, {})[criterion_id] = value
    totals: dict[int, dict[int, float]] = {}
    for judge_id, entries in marks.items():
        for entry_id, values in entries.items():
            total = ranking.weighted_total(values, weights) if weights else None
            if total is not None:
                totals.setdefault(judge_id, {})[entry_id] = total
    return totals, marks


@dataclass
class RoundResults:
    round: Round
    rows: list[dict]
    judges: list[dict]
    entries: dict[int, Entry]
    method: str
    judged: list[ranking.EntryResult]
    tie_break: str = ranking.TIE_BREAK
    normalisation_rule: str = ranking.NORMALISATION_RULE


def round_results(round: Round) -> RoundResults:
    """The ranking of a round with the per-judge breakdown; for staff only (it names judges)."""
    entries = {e.pk: e for e in round_entries(round)}
    totals, _ = judge_totals(round)
    rows, info = ranking.rank_round(totals, sorted(entries), round.normalisation)
    judges = {
        a.judge_id: a.judge for a in round.assignments.select_related("judge__user").order_by("judge__user__email")
    }
    judge_rows = []
    for judge_id, judge in judges.items():
        norm = info.get(judge_id)
        judge_rows.append(
            {
                "member": judge,
                "label": judge.user.get_full_name() or judge.user.email,
                "count": norm.count if norm else 0,
                "mean": norm.mean if norm else None,
                "sd": norm.sd if norm else None,
                "included": norm.included if norm else False,
                "note": norm.note if norm else "has not completed any score sheet yet",
            }
        )
    out = []
    for row in rows:
        entry = entries[row.entry]
        out.append(
            {
                "entry": entry,
                "name": entry.public_name,
                "title": entry.display_title,
                "rank": row.rank,
                "plain_rank": row.plain_rank,
                "result": row.result,
                "plain_mean": row.plain_mean,
                "judges": row.judges,
                "per_judge": [
                    {
                        "judge": j["label"],
                        "total": row.totals.get(j["member"].pk),
                        "value": row.normalised.get(j["member"].pk),
                    }
                    for j in judge_rows
                ],
                "moved": (row.plain_rank - row.rank) if row.rank and row.plain_rank else None,
            }
        )
    return RoundResults(
        round=round, rows=out, judges=judge_rows, entries=entries, method=round.normalisation, judged=rows
    )


def progress(round: Round) -> list[dict]:
    """Who has scored what: per judge, complete / partial / conflicted per entry (no scores shown)."""
    criteria = round.criteria.count()
    entries = round_entries(round)
    conflicts = set(Conflict.objects.filter(entry__round=round).values_list("judge_id", "entry_id"))
    counts: dict[tuple[int, int], int] = {}
    for judge_id, entry_id in Score.objects.filter(entry__round=round).values_list("judge_id", "entry_id"):
        counts[(judge_id, entry_id)] = counts.get((judge_id, entry_id), 0) + 1
    rows = []
    for assignment in round.assignments.select_related("judge__user").order_by("judge__user__email"):
        cells = []
        done = 0
        expected = 0
        for entry in entries:
            key = (assignment.judge_id, entry.pk)
            if key in conflicts:
                cells.append("conflict")
                continue
            expected += 1
            n = counts.get(key, 0)
            if criteria and n >= criteria:
                cells.append("done")
                done += 1
            else:
                cells.append("partial" if n else "—")
        rows.append(
            {
                "assignment": assignment,
                "label": assignment.judge.user.get_full_name() or assignment.judge.user.email,
                "declared": assignment.conflicts_declared_at is not None,
                "cells": cells,
                "done": done,
                "expected": expected,
            }
        )
    return rows
