"""A prize's winners: computed from the ranking or leaderboard, compared with the confirmed decision, published."""

from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.utils import timezone

from courses.models import Course, Membership, Role
from prizes import ranking
from prizes.models import Decision, Prize
from prizes.selectors.results import round_results


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
            "ranking": self.prize.ranking_statement,
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
                # By the metric, the score shown is the metric itself, not its sort key (negated when lower is better).
                score=row.metric if prize.ranking == Prize.Ranking.METRIC else row.score,
                rank=row.rank,
                eligible=not reasons,
                reasons=reasons,
                member_id=row.member_id,
            )
        )
    return out


def _entry_metrics(prize: Prize, entries) -> dict[int, float | None]:
    """Each lab-round entry's metric: her entered submission's private score as the leaderboard counts it."""
    from labs.entries.services import ranked_scores

    lab_entries = [e.lab_entry for e in entries if e.lab_entry_id]
    scores = ranked_scores(
        lab=prize.round.lab, entries=lab_entries, split="private", include_late=prize.counts_late_work
    )
    return {e.pk: scores.get(e.lab_entry_id) for e in entries}


def _round_candidates(prize: Prize) -> list[Candidate]:
    """The round's entries in the prize's ranking: the judges' result, the metric, or the stated weighting."""
    from projects.selectors import group_eligibility

    results = round_results(prize.round)
    if prize.ranking == Prize.Ranking.JUDGES:
        metrics = {}
    else:
        metrics = _entry_metrics(prize, results.entries.values())
    rows = ranking.rank_prize(
        mode=prize.ranking,
        judged=results.judged,
        metrics=metrics,
        direction=prize.round.lab.primary_direction if prize.round.lab_id else "max",
        weight=prize.metric_weight,
    )
    out = []
    for row in rows:
        entry = results.entries[row.entry]
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
        if row.rank is None:
            reasons.append(row.missing[:1].upper() + row.missing[1:] + ".")
        out.append(
            Candidate(
                key=key,
                name=entry.public_name,
                # By the metric, the score shown is the metric itself, not its sort key (negated when lower is better).
                score=row.metric if prize.ranking == Prize.Ranking.METRIC else row.score,
                rank=row.rank,
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
        if prize.ranking != Prize.Ranking.JUDGES and prize.round.lab.private_released_at is None:
            return Computation(
                prize, False, "The lab's private scores are not released yet; this prize ranks by the metric on them."
            )
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
    """Prizes with a confirmed decision, how they were ranked, and what the public may see of each winner.

    A group's winner shows its name, its project's title and its members' public names (display names, a real
    name only with her consent); a student's, her public name. Never an e-mail address.
    """
    out = []
    for prize in Prize.objects.filter(course=course).select_related("lab", "round").order_by("id"):
        decision = latest_decision(prize)
        if decision is None:
            continue
        awards = list(
            decision.awards.select_related("group", "member__user")
            .prefetch_related("group__members__member__user")
            .order_by("place")
        )
        for award in awards:
            award.members_shown = [gm.member.public_name for gm in award.group.members.all()] if award.group_id else []
        # The ranking as confirmed: a decision records it, so editing the prize later does not rewrite history.
        stated = decision.snapshot.get("ranking") or prize.ranking_statement
        out.append({"prize": prize, "awards": awards, "decision": decision, "ranking": stated})
    return out


def courses_with_winners():
    """The courses that have published at least one prize's winners, for the public index of winners pages."""
    return Course.objects.filter(prizes__decisions__isnull=False).distinct().order_by("-id")
