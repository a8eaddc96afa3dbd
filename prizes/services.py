"""Writes of the judging and prizes app: assignments, entries, conflicts, scores, the talk clock and awards."""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from courses import audit
from courses.models import Membership, Role
from prizes.access import JUDGING_ROLES, assignment_for, is_conflicted
from prizes.models import Award, Conflict, Criterion, Decision, Entry, JudgeAssignment, Prize, Round, Score, Talk


def _now(at: datetime | None) -> datetime:
    return at or timezone.now()


# ---------------------------------------------------------------- setting a round up


def add_criterion(*, round: Round, name: str, weight: float, description: str = "") -> Criterion:
    if weight < 0:
        raise ValidationError("A weight cannot be negative.")
    if round.criteria.filter(name__iexact=name.strip()).exists():
        raise ValidationError(f"The rubric already has a criterion named {name!r}.")
    position = round.criteria.count()
    return Criterion.objects.create(
        round=round, name=name.strip(), weight=weight, description=description, position=position
    )


def assign_judge(*, round: Round, judge: Membership, actor) -> JudgeAssignment:
    if judge.course_id != round.course_id:
        raise ValidationError("That person is not a member of this course.")
    if judge.role not in JUDGING_ROLES:
        raise ValidationError("Only judges and course staff can sit on a panel; students cannot judge.")
    assignment, created = JudgeAssignment.objects.get_or_create(
        round=round, judge=judge, defaults={"assigned_by": actor}
    )
    if created:
        audit.record(
            course=round.course,
            actor=actor,
            action="prizes.judge.assigned",
            target=f"round {round.pk} {round.title}",
            after={"judge": judge.user.email},
        )
    return assignment


def unassign_judge(*, round: Round, judge: Membership, actor) -> None:
    deleted, _ = JudgeAssignment.objects.filter(round=round, judge=judge).delete()
    if deleted:
        audit.record(
            course=round.course,
            actor=actor,
            action="prizes.judge.unassigned",
            target=f"round {round.pk} {round.title}",
            before={"judge": judge.user.email},
        )


def add_group_entries(*, round: Round, actor) -> list[Entry]:
    """Every project group of the course becomes an entry, in the schedule's presentation order."""
    from projects.selectors import groups_of_course

    if round.kind != Round.Kind.PRESENTATION:
        raise ValidationError("Only a presentation round takes project groups.")
    existing = set(round.entries.values_list("group_id", flat=True))
    start = (round.entries.order_by("-position").values_list("position", flat=True).first() or 0) + 1
    created = []
    for offset, group in enumerate(g for g in groups_of_course(round.course) if g.pk not in existing):
        created.append(Entry.objects.create(round=round, group=group, position=start + offset))
    if created:
        audit.record(
            course=round.course,
            actor=actor,
            action="prizes.entries.added",
            target=f"round {round.pk} {round.title}",
            after={"groups": [e.group.name for e in created]},
        )
    return created


def add_lab_entries(*, round: Round, actor, at=None) -> tuple[list[Entry], int]:
    """Every complete entry to the round's lab, by a student, becomes an entry of the round (in the order made).

    Entries are added before the round opens, so that each judge declares her conflicts over the whole list.
    Returns the entries added and how many of the lab's entries were left out as incomplete.
    """
    from labs.entries.models import LabEntry
    from labs.entries.services import completeness, kit_for

    if round.kind != Round.Kind.LAB:
        raise ValidationError("Only a lab round takes lab entries; a presentation round takes project groups.")
    if _now(at) >= round.opens_at:
        raise ValidationError("Judging has opened: entries are added before the round opens.")
    kit = kit_for(round.lab)
    existing = set(round.entries.exclude(lab_entry=None).values_list("lab_entry_id", flat=True))
    candidates = (
        LabEntry.objects.filter(lab=round.lab, member__role=Role.STUDENT)
        .exclude(pk__in=existing)
        .select_related("lab", "member__user")
        .prefetch_related("files")
        .order_by("created_at", "id")
    )
    complete = [e for e in candidates if completeness(e, kit).complete]
    start = (round.entries.order_by("-position").values_list("position", flat=True).first() or 0) + 1
    created = []
    with transaction.atomic():
        for offset, lab_entry in enumerate(complete):
            entry, made = Entry.objects.get_or_create(
                round=round,
                member=lab_entry.member,
                defaults={"lab_entry": lab_entry, "title": lab_entry.title, "position": start + offset},
            )
            if made:
                created.append(entry)
    if created:
        audit.record(
            course=round.course,
            actor=actor,
            action="prizes.entries.added",
            target=f"round {round.pk} {round.title}",
            after={"lab_entries": [e.lab_entry_id for e in created]},
        )
    return created, len(candidates) - len(complete)


# ---------------------------------------------------------------- judges


def declare_conflicts(*, assignment: JudgeAssignment, entry_ids: set[int], at=None) -> list[Conflict]:
    """The judge names the entries she is conflicted with (possibly none); only then does she see materials.

    She may revise the list while the round is open: a newly ticked entry loses her marks; an unticked one is
    withdrawn, audited, and she may then score it (a mistaken tick must not cost the entry a judge).
    """
    now = _now(at)
    round = assignment.round
    if round.is_closed(now):
        raise ValidationError("This round has closed.")
    entries = list(round.entries.filter(pk__in=entry_ids))
    if len(entries) != len(set(entry_ids)):
        raise ValidationError("One of the entries is not in this round.")
    with transaction.atomic():
        earlier = Conflict.objects.filter(judge=assignment.judge, entry__round=round)
        withdrawn = sorted(earlier.exclude(entry__in=entries).values_list("entry_id", flat=True))
        earlier.exclude(entry__in=entries).delete()
        conflicts = [Conflict.objects.get_or_create(judge=assignment.judge, entry=entry)[0] for entry in entries]
        Score.objects.filter(judge=assignment.judge, entry__in=entries).delete()
        if assignment.conflicts_declared_at is None:
            assignment.conflicts_declared_at = now
            assignment.save(update_fields=["conflicts_declared_at"])
    if entries:
        audit.record(
            course=round.course,
            actor=assignment.judge.user,
            action="prizes.conflict.declared",
            target=f"round {round.pk} {round.title}",
            after={"entries": sorted(e.pk for e in entries)},
        )
    if withdrawn:
        audit.record(
            course=round.course,
            actor=assignment.judge.user,
            action="prizes.conflict.withdrawn",
            target=f"round {round.pk} {round.title}",
            before={"entries": withdrawn},
        )
    return conflicts


def save_scores(*, judge: Membership, entry: Entry, values: dict[int, object], at=None) -> list[Score]:
    """Upsert the judge's marks for an entry, one row per criterion; blank values are left as they were.

    Each (judge, entry, criterion) is its own row written with INSERT .. ON CONFLICT UPDATE, so two judges (or two
    tabs of one judge) saving at once never lose each other's marks.
    """
    now = _now(at)
    round = entry.round
    assignment = assignment_for(member=judge, round=round)
    if assignment is None:
        raise ValidationError("You are not on the panel of this round.")
    if assignment.conflicts_declared_at is None:
        raise ValidationError("Go through the entry list and declare your conflicts of interest first.")
    if is_conflicted(member=judge, entry=entry):
        raise ValidationError("You declared a conflict of interest with this entry, so you cannot score it.")
    if now < round.opens_at:
        raise ValidationError("Scoring opens when the round opens.")
    if round.is_closed(now):
        raise ValidationError("This round has closed: scores can no longer be changed.")
    criteria = {c.pk: c for c in round.criteria.all()}
    rows = []
    for criterion_id, raw in values.items():
        criterion = criteria.get(int(criterion_id))
        if criterion is None:
            raise ValidationError("That criterion is not part of this round's rubric.")
        if raw in (None, ""):
            continue
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValidationError(
                f"{criterion.name}: enter a whole number from {round.scale_min} to {round.scale_max}."
            )
        if not round.scale_min <= value <= round.scale_max:
            raise ValidationError(
                f"{criterion.name}: {value} is outside the scale; use {round.scale_min} to {round.scale_max}."
            )
        rows.append(Score(judge=judge, entry=entry, criterion=criterion, value=value, updated_at=now))
    if not rows:
        return []
    return Score.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["judge", "entry", "criterion"],
        update_fields=["value", "updated_at"],
    )


# ---------------------------------------------------------------- presentation day


def _locked(round: Round) -> Round:
    return Round.objects.select_for_update().get(pk=round.pk)


def running_talk(round: Round) -> Talk | None:
    return Talk.objects.filter(entry__round=round, stopped_at__isnull=True).select_related("entry").first()


@transaction.atomic
def present_next(*, round: Round, actor) -> Entry | None:
    """Move "now presenting" to the next entry in order; a running talk must be stopped first."""
    round = _locked(round)
    if running_talk(round):
        raise ValidationError("Stop the current talk before moving on.")
    entries = list(round.entries.order_by("position", "id"))
    if round.current_entry_id is None:
        following = entries
    else:
        index = next((i for i, e in enumerate(entries) if e.pk == round.current_entry_id), -1)
        following = entries[index + 1 :]
    round.current_entry = following[0] if following else None
    round.save(update_fields=["current_entry"])
    return round.current_entry


@transaction.atomic
def set_current(*, round: Round, entry: Entry, actor) -> Entry:
    round = _locked(round)
    if entry.round_id != round.pk:
        raise ValidationError("That entry is not in this round.")
    if running_talk(round):
        raise ValidationError("Stop the current talk before moving on.")
    round.current_entry = entry
    round.save(update_fields=["current_entry"])
    return entry


@transaction.atomic
def start_talk(*, round: Round, actor, at=None) -> Talk:
    """Start the strict clock for the entry now presenting, and record its group as having presented."""
    from projects.services import mark_presented

    now = _now(at)
    round = _locked(round)
    if round.current_entry_id is None:
        raise ValidationError("Choose who presents first (Next).")
    if running_talk(round):
        raise ValidationError("A talk is already running; stop it first.")
    entry = round.current_entry
    talk = Talk.objects.create(entry=entry, talk_seconds=round.course.talk_seconds, started_at=now, started_by=actor)
    if entry.group_id:
        mark_presented(group=entry.group, actor=actor, at=now)
    return talk


@transaction.atomic
def stop_talk(*, round: Round, actor, at=None) -> Talk:
    now = _now(at)
    round = _locked(round)
    talk = running_talk(round)
    if talk is None:
        raise ValidationError("No talk is running.")
    elapsed = (now - talk.started_at).total_seconds()
    talk.stopped_at = now
    talk.overrun_seconds = max(0, int(elapsed - talk.talk_seconds))
    talk.save(update_fields=["stopped_at", "overrun_seconds"])
    audit.record(
        course=round.course,
        actor=actor,
        action="prizes.talk.stopped",
        target=f"entry {talk.entry_id} in round {round.pk}",
        after={"seconds": int(elapsed), "overrun_seconds": talk.overrun_seconds},
    )
    return talk


# ---------------------------------------------------------------- awards


@transaction.atomic
def confirm_awards(*, prize: Prize, actor, note: str = "", at=None) -> Decision:
    """Store the winners as computed now, with the ranking they came from; this is what the public page shows."""
    from prizes.selectors import compute_winners, latest_decision

    prize = Prize.objects.select_for_update().get(pk=prize.pk)
    computation = compute_winners(prize=prize, at=at)
    if not computation.available:
        raise ValidationError(computation.reason)
    previous = latest_decision(prize)
    decision = Decision.objects.create(prize=prize, confirmed_by=actor, snapshot=computation.snapshot(), note=note)
    for place, row in enumerate(computation.winners, start=1):
        Award.objects.create(
            decision=decision,
            place=place,
            key=row.key,
            group_id=row.group_id,
            member_id=row.member_id,
            entry_id=row.entry_id,
            score=row.score,
        )
    audit.record(
        course=prize.course,
        actor=actor,
        action="prizes.awards.confirmed",
        target=f"prize {prize.pk} {prize.title}",
        before=[a["key"] for a in previous.snapshot.get("winners", [])] if previous else None,
        after=[row.key for row in computation.winners],
        reason=note,
    )
    return decision
