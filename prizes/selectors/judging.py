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
    return list(round.entries.select_related("group", "member__user", "lab_entry").order_by("position", "id"))


def rounds_for_judge(member: Membership) -> list[JudgeAssignment]:
    return list(
        JudgeAssignment.objects.filter(judge=member, round__course=member.course)
        .select_related("round")
        .order_by("round__opens_at", "round_id")
    )


@dataclass
class EntryMaterials:
    """What a judge reads of a lab entry: its result as the result page shows it, the write-up and the files."""

    lab_entry: object
    evaluation: object | None
    private_visible: bool
    files: dict
    extras: dict
    missing: list[str]
    loglikelihood: object | None = None


def entry_materials(entry: Entry) -> EntryMaterials | None:
    """A lab-round entry's materials; metrics of the private split only once the lab has released them."""
    from labs import selectors as lab_selectors
    from labs.entries import services as entry_services
    from labs.presenters import result_extras

    lab_entry = entry.lab_entry
    if lab_entry is None:
        return None
    lab = lab_entry.lab
    evaluation = entry_services.entered_evaluation(lab_entry)
    files = {item.part: item for item in lab_entry.files.all()}
    return EntryMaterials(
        lab_entry=lab_entry,
        evaluation=evaluation,
        # A judge sees what the class sees, whatever her role: the public split until the staff release the private.
        private_visible=lab_selectors.private_visible_to(lab, None),
        files=files,
        extras=result_extras(lab, evaluation) if evaluation is not None else {},
        missing=entry_services.completeness(lab_entry, entry_services.kit_for(lab)).missing,
        loglikelihood=entry_services.loglikelihood_check(lab_entry, files.get("notebook")),
    )


@dataclass
class JudgeEntry:
    entry: Entry
    people: list[str]
    real_names: list[str]
    conflicted: bool
    scores: dict[int, int]
    complete: bool
    current: bool


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
            )
        )
    return rows
