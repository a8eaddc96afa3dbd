"""Reads of the labs app that respect who is asking: leaderboards, her submissions, the queue."""

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Avg, Count, Prefetch

from courses.models import Course, Membership
from grader.registry import get_lab, metric_spec
from labs import ranking
from labs.models import Evaluation, EvaluationStatus, Lab, Submission


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
    position: int = 0  # place on the whole board, baselines included
    gap_before: bool = False  # rows of the board lie between this one and the one shown before it
    # Who the row is, for staff only (a student's board carries her chosen name and nothing more).
    real_name: str = ""
    email: str = ""
    submission_number: int = 0  # her own count ("#3"), as her pages name the submission


@dataclass
class Leaderboard:
    lab: Lab
    split: str
    rows: list[LeaderboardRow] = field(default_factory=list)
    private_visible: bool = False
    frozen: bool = False
    total: int = 0  # rows of the whole board, baselines included
    page: int | None = None  # None: every row is in ``rows``
    pages: int = 1
    per_page: int = 0
    viewer_position: int | None = None

    @property
    def viewer_page(self) -> int | None:
        if self.viewer_position is None or not self.per_page:
            return None
        return (self.viewer_position - 1) // self.per_page + 1


# A page shows this many rows of the board; her own entry is shown on every page with this many rows either side.
PER_PAGE = 50
NEIGHBOURS = 2


def private_visible_to(lab: Lab, member: Membership | None) -> bool:
    return lab.private_released_at is not None or bool(member and member.is_staff_role)


def leaderboard_for(
    *,
    lab: Lab,
    split: str,
    viewer: Membership | None,
    include_late: bool = True,
    page: int | None = None,
    per_page: int = PER_PAGE,
) -> Leaderboard:
    """The board as ``labs.ranking`` orders it (primary, tie-break, earliest received_at), seen by ``viewer``.

    Each student's entry is her submission marked final, else her best by public score. Private scores are
    shown only once released (staff see them before, to check); staff also see who each student is (her real name
    and email), everyone else only the name she chose. ``include_late=False`` (prizes, unless a prize
    says otherwise) leaves out work the deadline rule judged late at arrival. Without ``page`` every row is loaded
    (prizes, exports); with it, the page's rows, every baseline, and the viewer's entry with its neighbours.
    """
    private_ok = private_visible_to(lab, viewer)
    if split == "private" and not private_ok:
        split = "public"
    selection = ranking.Selection()
    if page is not None:
        page = max(page, 1)
        selection = ranking.Selection(
            first=(page - 1) * per_page + 1,
            last=page * per_page,
            member_id=viewer.pk if viewer is not None and viewer.pk else None,
            around=NEIGHBOURS,
        )
    ranked, total, viewer_position = ranking.ranked_rows(
        lab=lab, split=split, include_late=include_late, selection=selection
    )
    evaluations = (
        Evaluation.objects.select_related("submission__member__user")
        .only(
            "id",
            "metrics",
            "public_score",
            "private_score",
            "public_tiebreak",
            "private_tiebreak",
            "submission__id",
            "submission__number",
            "submission__member_id",
            "submission__received_at",
            "submission__baseline_label",
            "submission__member__display_name",
            "submission__member__show_real_name",
            "submission__member__user__first_name",
            "submission__member__user__last_name",
            "submission__member__user__email",
        )
        .in_bulk([r.evaluation_id for r in ranked])
    )
    rows = []
    staff_viewer = bool(viewer and viewer.is_staff_role)
    for placed in ranked:
        evaluation = evaluations[placed.evaluation_id]
        submission = evaluation.submission
        baseline = placed.rank is None
        private = split == "private"
        user = submission.member.user
        rows.append(
            LeaderboardRow(
                name=submission.baseline_label if baseline else submission.member.public_name,
                submission_id=submission.pk,
                member_id=submission.member_id,
                received_at=submission.received_at,
                score=evaluation.private_score if private else evaluation.public_score,
                tiebreak=evaluation.private_tiebreak if private else evaluation.public_tiebreak,
                metrics=(evaluation.metrics or {}).get(split, {}),
                baseline=baseline,
                rank=placed.rank,
                is_viewer=bool(viewer and submission.member_id == viewer.pk and not baseline),
                position=placed.position,
                gap_before=bool(rows)
                and placed.position != rows[-1].position + 1
                or (not rows and placed.position != 1),
                real_name=user.get_full_name() if staff_viewer and not baseline else "",
                email=user.email if staff_viewer and not baseline else "",
                submission_number=submission.number,
            )
        )
    return Leaderboard(
        lab=lab,
        split=split,
        rows=rows,
        private_visible=private_ok,
        frozen=lab.frozen_at is not None,
        total=total,
        page=page,
        pages=max(math.ceil(total / per_page), 1) if page is not None else 1,
        per_page=per_page if page is not None else 0,
        viewer_position=viewer_position,
    )


def her_submissions(*, lab: Lab, member: Membership) -> list[Submission]:
    return list(
        Submission.objects.filter(lab=lab, member=member).prefetch_related(
            Prefetch("evaluations", queryset=Evaluation.objects.order_by("-id"))
        )
    )


def every_submission_of(*, member: Membership) -> list[Submission]:
    """All her submissions in her course, lab by lab, newest first, each with its evaluations (newest first)."""
    return list(
        Submission.objects.filter(member=member)
        .select_related("lab")
        .prefetch_related(Prefetch("evaluations", queryset=Evaluation.objects.order_by("-id")))
        .order_by("lab__number", "-received_at")
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
