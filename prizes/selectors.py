"""Reads of the judging and prizes app: a judge's entries, the talk clock, results, winners and their changes."""

from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.utils import timezone

from courses.models import Membership, Role
from prizes import ranking
from prizes.models import Conflict, Decision, Entry, JudgeAssignment, Prize, Round, Score, Talk

# ---------------------------------------------------------------- entries and judges


def entry_people(entry: Entry) -> list[str]:
    """The names a judge or the public may see for an entry: display names, never e-mails."""
    if entry.group_id:
        return [gm.member.public_name for gm in entry.group.members.select_related("member__user")]
    return [entry.member.public_name]


def round_entries(round: Round) -> list[Entry]:
    return list(round.entries.select_related("group", "member__user", "submission").order_by("position", "id"))


def rounds_for_judge(member: Membership) -> list[JudgeAssignment]:
    return list(
        JudgeAssignment.objects.filter(judge=member, round__course=member.course)
        .select_related("round")
        .order_by("round__opens_at", "round_id")
    )


def sample_of(entry: Entry) -> dict | None:
    """The nominated generated sample of a lab entry, from the submission's latest succeeded evaluation."""
    from labs.models import EvaluationStatus

    if entry.submission_id is None:
        return None
    evaluation = (
        entry.submission.evaluations.filter(status=EvaluationStatus.SUCCEEDED, samples__isnull=False)
        .order_by("-id")
        .first()
    )
    samples = (evaluation.samples if evaluation else None) or []
    if entry.sample_index is None or not 0 <= entry.sample_index < len(samples):
        return None
    sample = samples[entry.sample_index]
    return sample if isinstance(sample, dict) else None


@dataclass
class JudgeEntry:
    entry: Entry
    people: list[str]
    conflicted: bool
    scores: dict[int, int]
    complete: bool
    current: bool
    sample: dict | None = None


def judge_page(*, assignment: JudgeAssignment) -> list[JudgeEntry]:
    """Her entries in presentation order with her own marks only; a conflicted entry carries no materials."""
    round = assignment.round
    criteria = list(round.criteria.values_list("pk", flat=True))
    conflicted = set(
        Conflict.objects.filter(judge=assignment.judge, entry__round=round).values_list("entry_id", flat=True)
    )
    mine: dict[int, dict[int, int]] = {}
    for entry_id, criterion_id, value in Score.objects.filter(judge=assignment.judge, entry__round=round).values_list(
        "entry_id", "criterion_id", "value"
    ):
        mine.setdefault(entry_id, {})[criterion_id] = value
    rows = []
    for entry in round_entries(round):
        is_conflicted = entry.pk in conflicted
        scores = {} if is_conflicted else mine.get(entry.pk, {})
        rows.append(
            JudgeEntry(
                entry=entry,
                people=entry_people(entry),
                conflicted=is_conflicted,
                scores=scores,
                complete=bool(criteria) and all(c in scores for c in criteria),
                current=entry.pk == round.current_entry_id,
                sample=None if is_conflicted or assignment.conflicts_declared_at is None else sample_of(entry),
            )
        )
    return rows


# ---------------------------------------------------------------- the talk clock


@dataclass
class Clock:
    entry: Entry | None
    running: bool
    talk_seconds: int
    remaining: int
    overrun: int
    talk: Talk | None = None

    @property
    def over(self) -> bool:
        return self.remaining <= 0

    @property
    def display(self) -> str:
        sign = "-" if self.remaining < 0 else ""
        seconds = abs(self.remaining)
        return f"{sign}{seconds // 60}:{seconds % 60:02d}"


def talk_clock(*, round: Round, at: datetime | None = None) -> Clock:
    """What every screen shows: remaining = talk time - time since the server's start stamp (negative = overrun)."""
    now = at or timezone.now()
    entry = round.current_entry
    talk_seconds = round.course.talk_seconds
    if entry is None:
        return Clock(None, False, talk_seconds, talk_seconds, 0)
    talk = Talk.objects.filter(entry=entry).order_by("-started_at", "-id").first()
    if talk is None:
        return Clock(entry, False, talk_seconds, talk_seconds, 0)
    end = talk.stopped_at or now
    elapsed = int((end - talk.started_at).total_seconds())
    remaining = talk.talk_seconds - elapsed
    return Clock(entry, talk.stopped_at is None, talk.talk_seconds, remaining, max(0, -remaining), talk)


def last_talks(round: Round) -> dict[int, Talk]:
    """Per entry, its latest talk (start, stop, overrun)."""
    talks: dict[int, Talk] = {}
    for talk in Talk.objects.filter(entry__round=round).order_by("started_at", "id"):
        talks[talk.entry_id] = talk
    return talks


# ---------------------------------------------------------------- results


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
    return RoundResults(round=round, rows=out, judges=judge_rows, entries=entries, method=round.normalisation)


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


# ---------------------------------------------------------------- winners


@dataclass
class Candidate:
    key: str
    name: str
    score: float | None
    rank: int | None
    eligible: bool
    reasons: list[str] = field(default_factory=list)
    group_id: int | None = None
    member_id: int | None = None
    entry_id: int | None = None


@dataclass
class Computation:
    prize: Prize
    available: bool
    reason: str = ""
    candidates: list[Candidate] = field(default_factory=list)
    winners: list[Candidate] = field(default_factory=list)

    @property
    def shortfall(self) -> str:
        if not self.available or len(self.winners) >= self.prize.places:
            return ""
        empty = self.prize.places - len(self.winners)
        return (
            f"This prize has {self.prize.places} places but only {len(self.winners)} eligible "
            f"{'entry' if len(self.winners) == 1 else 'entries'}: {empty} place{'s' if empty != 1 else ''} "
            f"will stay empty."
        )

    def snapshot(self) -> dict:
        return {
            "computed_at": timezone.now().isoformat(),
            "candidates": [asdict(c) for c in self.candidates],
            "winners": [asdict(c) for c in self.winners],
        }


def _member_reasons(member: Membership | None, *, registered_only: bool) -> list[str]:
    if member is None or member.role != Role.STUDENT:
        return ["No longer enrolled as a student of the course."]
    if registered_only and not member.registered_for_credit:
        return ["Not registered for credit: this prize is for registered students only."]
    return []


def _lab_candidates(prize: Prize) -> list[Candidate]:
    from labs.selectors import leaderboard_for

    staff_viewer = Membership(course=prize.course, role=Role.TA)
    board = leaderboard_for(lab=prize.lab, split="private", viewer=staff_viewer, include_late=prize.counts_late_work)
    members = {
        m.pk: m for m in Membership.objects.filter(pk__in=[r.member_id for r in board.rows]).select_related("user")
    }
    out = []
    for row in board.rows:
        if row.baseline:
            continue
        member = members.get(row.member_id)
        reasons = _member_reasons(member, registered_only=prize.requires_registration)
        if row.score is None:
            reasons.append("No private score.")
        out.append(
            Candidate(
                key=f"member:{row.member_id}",
                name=member.public_name if member else row.name,
                score=row.score,
                rank=row.rank,
                eligible=not reasons,
                reasons=reasons,
                member_id=row.member_id,
            )
        )
    return out


def _round_candidates(prize: Prize) -> list[Candidate]:
    from projects.selectors import group_eligibility

    results = round_results(prize.round)
    out = []
    for row in results.rows:
        entry = row["entry"]
        if entry.group_id:
            eligibility = group_eligibility(entry.group)
            reasons = list(eligibility.reasons)
            if prize.registered_only is False:
                # The prize waives the for-credit rule; the projects app words that reason with "for credit".
                reasons = [r for r in reasons if "for credit" not in r]
            key = f"group:{entry.group_id}"
        else:
            reasons = _member_reasons(entry.member, registered_only=prize.requires_registration)
            key = f"member:{entry.member_id}"
        if row["rank"] is None:
            reasons.append("No complete score from a counted judge.")
        out.append(
            Candidate(
                key=key,
                name=entry.public_name,
                score=row["result"],
                rank=row["rank"],
                eligible=not reasons,
                reasons=reasons,
                group_id=entry.group_id,
                member_id=entry.member_id,
                entry_id=entry.pk,
            )
        )
    return out


def compute_winners(*, prize: Prize, at: datetime | None = None) -> Computation:
    """The winners as the data stand now: ranked order, ineligible entries skipped with the reason."""
    now = at or timezone.now()
    if prize.category == Prize.Category.LAB:
        if prize.lab.private_released_at is None:
            return Computation(prize, False, "The lab's private scores are not released yet; winners come from them.")
        candidates = _lab_candidates(prize)
    else:
        if not prize.round.is_closed(now):
            return Computation(prize, False, "The judging round has not closed yet; judges may still revise scores.")
        candidates = _round_candidates(prize)
    winners = [c for c in candidates if c.eligible][: prize.places]
    return Computation(prize, True, "", candidates, winners)


def latest_decision(prize: Prize) -> Decision | None:
    return prize.decisions.order_by("-confirmed_at", "-id").first()


def award_changes(*, decision: Decision | None, computation: Computation) -> list[dict]:
    """Places whose winner differs between the confirmed decision and a fresh computation (empty: no change)."""
    if decision is None or not computation.available:
        return []
    confirmed = decision.snapshot.get("winners", [])
    fresh = [asdict(c) for c in computation.winners]
    changes = []
    for place in range(1, max(len(confirmed), len(fresh)) + 1):
        before = confirmed[place - 1] if place <= len(confirmed) else None
        after = fresh[place - 1] if place <= len(fresh) else None
        if (before or {}).get("key") != (after or {}).get("key"):
            changes.append(
                {
                    "place": place,
                    "confirmed": before["name"] if before else "(empty)",
                    "now": after["name"] if after else "(empty)",
                }
            )
    return changes


def public_winners(course) -> list[dict]:
    """Prizes with a confirmed decision and the winners' public names only."""
    out = []
    for prize in Prize.objects.filter(course=course).order_by("id"):
        decision = latest_decision(prize)
        if decision is None:
            continue
        awards = list(decision.awards.select_related("group", "member__user").order_by("place"))
        out.append({"prize": prize, "awards": awards, "decision": decision})
    return out
