"""Reads of the labs app that respect who is asking: leaderboards, her submissions, the queue."""

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Avg, Count, Prefetch

from courses.models import Course, Membership
from grader.registry import get_lab, metric_spec
from labs.models import BaseModel, Evaluation, EvaluationStatus, Lab, Submission


@dataclass
class LeaderboardRow:
    """One row of a leaderboard: a student's counted submission, or a staff baseline."""

    name: str
    submission_id: int
    member_id: int
    received_at: datetime
    score: float | None
    tiebreak: float | None
    metrics: dict
    baseline: bool = False
    rank: int | None = None
    is_viewer: bool = False


@dataclass
class Leaderboard:
    lab: Lab
    split: str
    rows: list[LeaderboardRow] = field(default_factory=list)
    private_visible: bool = False
    frozen: bool = False


def current_results(lab: Lab, *, before: datetime | None = None) -> dict[int, Evaluation]:
    """Per submission, its most recent succeeded evaluation: one query, whatever the number of submissions."""
    evaluations = (
        Evaluation.objects.filter(submission__lab=lab, status=EvaluationStatus.SUCCEEDED)
        .select_related("submission__member__user")
        # Logs, samples and tables are not shown on a leaderboard; loading them for every row is most of the cost.
        .defer("staff_log", "log_tail", "samples", "details", "groups", "judge_inputs", "error_message")
        .order_by("submission_id", "-id")
    )
    if before is not None:
        evaluations = evaluations.filter(finished_at__lte=before)
    if lab.base_model_id:
        # Scores on one base model say nothing of another: only results on the lab's current base are ranked.
        evaluations = evaluations.filter(
            base_model_sha256=BaseModel.objects.filter(pk=lab.base_model_id).values("config_sha256")[:1]
        )
    result: dict[int, Evaluation] = {}
    for evaluation in evaluations:
        result.setdefault(evaluation.submission_id, evaluation)
    # Metrics are comparable only within one device class (CPU, or one GPU type): rank one class, never a mix.
    device_class = lab.device_class or _usual_device_class(result.values())
    return {pk: e for pk, e in result.items() if e.device_class == device_class or not e.device_class}


def _usual_device_class(evaluations) -> str:
    counts: dict[str, int] = {}
    for evaluation in evaluations:
        if evaluation.device_class:
            counts[evaluation.device_class] = counts.get(evaluation.device_class, 0) + 1
    return max(sorted(counts), key=counts.__getitem__) if counts else ""


def _better(lab: Lab, a: float | None, b: float | None) -> bool:
    if a is None:
        return False
    if b is None:
        return True
    return a < b if lab.primary_direction == "min" else a > b


def _sort_key(lab: Lab, score: float | None, tiebreak: float | None, received_at: datetime):
    def signed(value, direction):
        if value is None or not math.isfinite(value):
            return math.inf
        return value if direction == "min" else -value

    return (signed(score, lab.primary_direction), signed(tiebreak, lab.tiebreak_direction), received_at)


def private_visible_to(lab: Lab, member: Membership | None) -> bool:
    return lab.private_released_at is not None or bool(member and member.is_staff_role)


def leaderboard_for(*, lab: Lab, split: str, viewer: Membership | None, include_late: bool = True) -> Leaderboard:
    """Ranking: primary metric, then the tie-break metric, then the earliest received_at.

    Each student's entry is her submission marked final, else her best by public score. Private scores are
    shown only once released (staff see them before, to check). ``include_late=False`` (prizes, unless a prize
    says otherwise) leaves out work the deadline rule judged late at arrival.
    """
    private_ok = private_visible_to(lab, viewer)
    if split == "private" and not private_ok:
        split = "public"
    results = current_results(lab, before=lab.frozen_at)
    chosen: dict[int, Evaluation] = {}
    finals = set(Submission.objects.filter(lab=lab, is_final=True).values_list("pk", flat=True))
    baselines = []
    for evaluation in results.values():
        submission = evaluation.submission
        if submission.late and not include_late:
            continue
        if submission.baseline_label:
            baselines.append(evaluation)
            continue
        held = chosen.get(submission.member_id)
        if held is None:
            chosen[submission.member_id] = evaluation
            continue
        held_final = held.submission_id in finals
        this_final = submission.pk in finals
        if this_final and not held_final:
            chosen[submission.member_id] = evaluation
        elif this_final == held_final and (
            _better(lab, evaluation.public_score, held.public_score)
            or (evaluation.public_score == held.public_score and submission.received_at < held.submission.received_at)
        ):
            chosen[submission.member_id] = evaluation

    def entry(evaluation: Evaluation, baseline: bool) -> LeaderboardRow:
        submission = evaluation.submission
        score = evaluation.private_score if split == "private" else evaluation.public_score
        tiebreak = evaluation.private_tiebreak if split == "private" else evaluation.public_tiebreak
        return LeaderboardRow(
            name=submission.baseline_label if baseline else submission.member.public_name,
            submission_id=submission.pk,
            member_id=submission.member_id,
            received_at=submission.received_at,
            score=score,
            tiebreak=tiebreak,
            metrics=(evaluation.metrics or {}).get(split, {}),
            baseline=baseline,
            is_viewer=bool(viewer and submission.member_id == viewer.pk and not baseline),
        )

    rows = [entry(e, False) for e in chosen.values()] + [entry(e, True) for e in baselines]
    rows.sort(key=lambda r: _sort_key(lab, r.score, r.tiebreak, r.received_at))
    rank = 0
    for row in rows:
        if not row.baseline:
            rank += 1
            row.rank = rank
    return Leaderboard(lab=lab, split=split, rows=rows, private_visible=private_ok, frozen=lab.frozen_at is not None)


def her_submissions(*, lab: Lab, member: Membership) -> list[Submission]:
    return list(
        Submission.objects.filter(lab=lab, member=member).prefetch_related(
            Prefetch("evaluations", queryset=Evaluation.objects.order_by("-id"))
        )
    )


def latest_evaluation(submission: Submission) -> Evaluation | None:
    evaluations = list(submission.evaluations.all())
    return evaluations[0] if evaluations else None


def queue_position(evaluation: Evaluation) -> tuple[int, int] | None:
    """Her place in her lab's queue (1 = next) and an estimate of the wait in seconds."""
    if evaluation.status != EvaluationStatus.QUEUED:
        return None
    lab = evaluation.submission.lab
    ahead = Evaluation.objects.filter(
        status=EvaluationStatus.QUEUED, submission__lab__kind=lab.kind, id__lt=evaluation.id
    ).count()
    running = Evaluation.objects.filter(status=EvaluationStatus.RUNNING, submission__lab__kind=lab.kind).count()
    average = (
        Evaluation.objects.filter(submission__lab=lab, status=EvaluationStatus.SUCCEEDED, duration_s__isnull=False)
        .order_by("-id")[:50]
        .aggregate(avg=Avg("duration_s"))["avg"]
    )
    per_job = average or lab.expected_seconds
    workers = max(running, 1)
    return ahead + 1, int(per_job * (ahead / workers + 1))


def queue_summary(*, course: Course) -> dict[str, int]:
    counts = dict(
        Evaluation.objects.filter(submission__lab__course=course)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in EvaluationStatus.values}


def shared_artifacts(*, lab: Lab) -> list[dict]:
    """The same artifact (identity hash) submitted by two or more different students: flagged to TAs."""
    rows = (
        Submission.objects.filter(lab=lab, baseline_label="")
        .values("sha256")
        .annotate(students=Count("member", distinct=True))
        .filter(students__gt=1)
    )
    hashes = [row["sha256"] for row in rows]
    if not hashes:
        return []
    members: dict[str, set] = {}
    for sha, email in Submission.objects.filter(lab=lab, sha256__in=hashes).values_list(
        "sha256", "member__user__email"
    ):
        members.setdefault(sha, set()).add(email)
    return [{"sha256": sha, "students": sorted(emails)} for sha, emails in members.items()]


def labs_completed(*, course: Course, members) -> dict[int, dict[str, bool]]:
    """Per member and lab: a succeeded submission that was on time when it arrived.

    "On time" is what the one deadline rule (courses.deadlines.arrival_timing) decided at arrival, extensions and grace
    included, and stored as the submission's late flag: two queries, whatever the number of students.
    """
    labs = {lab.pk: lab.slug for lab in course.labs.all()}
    members = list(members)
    result: dict[int, dict[str, bool]] = {m.pk: dict.fromkeys(labs.values(), False) for m in members}
    done = Submission.objects.filter(
        lab__course=course, member__in=members, evaluations__status=EvaluationStatus.SUCCEEDED, late=False
    ).values_list("member_id", "lab_id")
    for member_id, lab_id in done.distinct():
        result[member_id][labs[lab_id]] = True
    return result


# The columns a leaderboard shows per lab kind: (metric, label, higher-is-better or None for neutral).
def leaderboard_columns(lab: Lab) -> list[tuple[str, str, bool]]:
    """(metric key, label, higher is better) of the board's columns, as the grader's lab class declares them."""
    columns = []
    for key in get_lab(lab.kind).leaderboard_columns:
        spec = metric_spec(lab.kind, key)
        columns.append((key, spec.label, spec.direction == "max"))
    return columns


def reference_result(*, lab: Lab, label_contains: str) -> Evaluation | None:
    """The latest succeeded evaluation of a staff baseline whose label contains the given word."""
    return (
        Evaluation.objects.filter(
            submission__lab=lab,
            submission__baseline_label__icontains=label_contains,
            status=EvaluationStatus.SUCCEEDED,
        )
        .order_by("-id")
        .first()
    )
