"""What a judge sees: her rounds, their entries in presentation order, and her own marks on each."""

from dataclasses import dataclass

from courses.models import Membership
from prizes.models import Conflict, Entry, JudgeAssignment, Round, Score


def entry_people(entry: Entry) -> list[str]:
    """The names a judge or the public may see for an entry: display names, never e-mails."""
    if entry.group_id:
        return [gm.member.public_name for gm in entry.group.members.select_related("member__user")]
    return [entry.member.public_name]


def entry_real_names(entry: Entry) -> list[str]:
    """Who is behind an entry, by real name: a judge declaring conflicts must recognise the people, not pseudonyms."""
    members = (
        [gm.member for gm in entry.group.members.select_related("member__user")] if entry.group_id else [entry.member]
    )
    return [m.user.get_full_name() or m.public_name for m in members]


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
    real_names: list[str]
    conflicted: bool
    scores: dict[int, int]
    complete: bool
    current: bool
    sample: dict | None = None


def judge_page(*, assignment: JudgeAssignment, revising: bool = False) -> list[JudgeEntry]:
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
                real_names=entry_real_names(entry) if assignment.conflicts_declared_at is None or revising else [],
                conflicted=is_conflicted,
                scores=scores,
                complete=bool(criteria) and all(c in scores for c in criteria),
                current=entry.pk == round.current_entry_id,
                sample=None if is_conflicted or assignment.conflicts_declared_at is None else sample_of(entry),
            )
        )
    return rows
