"""The database ranking gives, on random labs, exactly the board the former Python ranking gave; pages are its slices.

The oracle below is the ranking as ``labs/selectors.py`` computed it in Python before the database took over (kept
here unchanged but for names), so that any difference in who is counted, which entry is hers, or in what order
rows come, fails with the example that shows it.
"""

import itertools
import math
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from courses.models import Role
from labs.models import BaseModel, Evaluation, EvaluationStatus, Submission
from labs.selectors import NEIGHBOURS, leaderboard_for, private_visible_to
from tests.conftest import make_member
from tests.factories import make_music_lab

# --- the oracle: the former Python ranking -------------------------------------------------------------------


def oracle_current_results(lab, *, before=None):
    evaluations = (
        Evaluation.objects.filter(submission__lab=lab, status=EvaluationStatus.SUCCEEDED)
        .select_related("submission__member__user")
        .order_by("submission_id", "-id")
    )
    if before is not None:
        evaluations = evaluations.filter(finished_at__lte=before)
    if lab.base_model_id:
        evaluations = evaluations.filter(
            base_model_sha256=BaseModel.objects.filter(pk=lab.base_model_id).values("config_sha256")[:1]
        )
    result = {}
    for evaluation in evaluations:
        result.setdefault(evaluation.submission_id, evaluation)
    device_class = lab.device_class or oracle_usual_device_class(result.values())
    return {pk: e for pk, e in result.items() if e.device_class == device_class or not e.device_class}


def oracle_usual_device_class(evaluations):
    counts = {}
    for evaluation in evaluations:
        if evaluation.device_class:
            counts[evaluation.device_class] = counts.get(evaluation.device_class, 0) + 1
    return max(sorted(counts), key=counts.__getitem__) if counts else ""


def oracle_better(lab, a, b):
    if a is None:
        return False
    if b is None:
        return True
    return a < b if lab.primary_direction == "min" else a > b


def oracle_sort_key(lab, score, tiebreak, received_at):
    def signed(value, direction):
        if value is None or not math.isfinite(value):
            return math.inf
        return value if direction == "min" else -value

    return (signed(score, lab.primary_direction), signed(tiebreak, lab.tiebreak_direction), received_at)


def oracle_board(*, lab, split, viewer, include_late=True):
    """(split, rows) with each row as a tuple of what the page and the prizes read of it."""
    if split == "private" and not private_visible_to(lab, viewer):
        split = "public"
    results = oracle_current_results(lab, before=lab.frozen_at)
    chosen = {}
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
            oracle_better(lab, evaluation.public_score, held.public_score)
            or (evaluation.public_score == held.public_score and submission.received_at < held.submission.received_at)
        ):
            chosen[submission.member_id] = evaluation

    def entry(evaluation, baseline):
        submission = evaluation.submission
        score = evaluation.private_score if split == "private" else evaluation.public_score
        tiebreak = evaluation.private_tiebreak if split == "private" else evaluation.public_tiebreak
        return [
            submission.baseline_label if baseline else submission.member.public_name,
            submission.pk,
            submission.member_id,
            submission.received_at,
            score,
            tiebreak,
            (evaluation.metrics or {}).get(split, {}),
            baseline,
            None,
            bool(viewer and submission.member_id == viewer.pk and not baseline),
        ]

    rows = [entry(e, False) for e in chosen.values()] + [entry(e, True) for e in baselines]
    rows.sort(key=lambda r: oracle_sort_key(lab, r[4], r[5], r[3]))
    rank = 0
    for row in rows:
        if not row[7]:
            rank += 1
            row[8] = rank
    return split, [tuple(r) for r in rows]


# --- random labs -------------------------------------------------------------------------------------------------

SCORES = st.sampled_from([None, 1.0, 2.0, 2.0, 3.0, math.inf, -math.inf])
DEVICES = st.sampled_from(["", "cpu", "cpu", "cuda:A", "CUDA:b"])
EVALUATION = st.fixed_dictionaries(
    {
        "succeeded": st.sampled_from([True, True, True, True, False]),
        "finished": st.sampled_from([None, 0, 10, 20, 25, 45, 80]),
        "public": SCORES,
        "private": SCORES,
        "public_tiebreak": SCORES,
        "private_tiebreak": SCORES,
        "device": DEVICES,
        "base": st.sampled_from(["", "h1", "h1", "h1", "h2"]),
    }
)
SUBMISSION = st.fixed_dictionaries(
    {
        "owner": st.sampled_from([0, 0, 1, 1, 2, 3, 4, "baseline"]),
        "late": st.booleans(),
        "evaluations": st.lists(EVALUATION, min_size=1, max_size=3),
    }
)
LAB = st.fixed_dictionaries(
    {
        "primary": st.sampled_from(["min", "max"]),
        "tiebreak": st.sampled_from(["min", "max"]),
        "frozen": st.sampled_from([None, None, 30, 60]),
        "device": st.sampled_from(["", "", "cpu", "cuda:A"]),
        "base": st.sampled_from([None, None, None, "h1"]),
        "released": st.booleans(),
    }
)
labs_made = itertools.count()


def build(course, data):
    """One fresh lab from drawn rules, people and results; received_at values are distinct, as server stamps are."""
    number = next(labs_made)
    spec = data.draw(LAB, label="lab")
    submissions = data.draw(st.lists(SUBMISSION, min_size=4, max_size=16), label="submissions")
    order = data.draw(st.permutations(range(len(submissions))), label="arrival order")
    now = timezone.now()
    base = now - timedelta(days=1)
    models = {
        sha: BaseModel.objects.get_or_create(
            course=course,
            name="base",
            config_sha256=sha,
            defaults={"folder": "base", "model_type": "llama", "config": {}, "table": {}},
        )[0]
        for sha in ("h1", "h2")
    }
    lab = make_music_lab(
        course,
        slug=f"random-{number}",
        primary_direction=spec["primary"],
        tiebreak_direction=spec["tiebreak"],
        frozen_at=None if spec["frozen"] is None else base + timedelta(minutes=spec["frozen"]),
        device_class=spec["device"],
        base_model=models.get(spec["base"]),
        private_released_at=now if spec["released"] else None,
    )
    students = [make_member(course, f"s{number}.{k}@example.edu", display_name=f"s{number}-{k}") for k in range(5)]
    ta = make_member(course, f"ta{number}@example.edu", Role.TA, registered=False)
    made = []
    for k, drawn in enumerate(submissions):
        baseline = drawn["owner"] == "baseline"
        submission = Submission.objects.create(
            lab=lab,
            member=ta if baseline else students[drawn["owner"]],
            storage_prefix=f"random/{number}/{k}",
            files=[],
            sha256=f"{number}-{k}",
            size=1,
            received_at=base + timedelta(seconds=order[k]),
            late=drawn["late"],
            baseline_label=f"Baseline {k}" if baseline else "",
        )
        made.append(submission)
        for n, e in enumerate(drawn["evaluations"]):
            Evaluation.objects.create(
                submission=submission,
                status=EvaluationStatus.SUCCEEDED if e["succeeded"] else EvaluationStatus.FAILED,
                finished_at=None if e["finished"] is None else base + timedelta(minutes=e["finished"]),
                public_score=e["public"],
                private_score=e["private"],
                public_tiebreak=e["public_tiebreak"],
                private_tiebreak=e["private_tiebreak"],
                device_class=e["device"],
                base_model_sha256=e["base"],
                metrics={"public": {"n": k * 10 + n}, "private": {"n": -(k * 10 + n)}},
            )
    for member in students:
        hers = [s for s in made if s.member_id == member.pk]
        if hers and data.draw(st.booleans(), label="marks a final"):
            final = data.draw(st.sampled_from(hers), label="her final")
            Submission.objects.filter(pk=final.pk).update(is_final=True)
    return lab, students, ta


def as_tuples(board):
    return [
        (
            r.name,
            r.submission_id,
            r.member_id,
            r.received_at,
            r.score,
            r.tiebreak,
            r.metrics,
            r.baseline,
            r.rank,
            r.is_viewer,
        )
        for r in board.rows
    ]


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_database_ranking_equals_the_former_python_ranking_on_random_labs(course, data):
    lab, students, ta = build(course, data)
    viewer = data.draw(st.sampled_from([None, ta, *students]), label="viewer")
    split = data.draw(st.sampled_from(["public", "private"]), label="split")
    include_late = data.draw(st.booleans(), label="include late")
    expected_split, expected = oracle_board(lab=lab, split=split, viewer=viewer, include_late=include_late)
    board = leaderboard_for(lab=lab, split=split, viewer=viewer, include_late=include_late)
    assert board.split == expected_split
    assert as_tuples(board) == expected
    assert board.total == len(expected)
    assert [r.position for r in board.rows] == list(range(1, len(expected) + 1))


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_page_shows_its_slice_every_baseline_and_her_entry_with_its_neighbours(course, data):
    lab, students, ta = build(course, data)
    viewer = data.draw(st.sampled_from([ta, *students]), label="viewer")
    split = data.draw(st.sampled_from(["public", "private"]), label="split")
    per_page = data.draw(st.integers(1, 4), label="per page")
    page = data.draw(st.integers(1, 6), label="page")
    _, expected = oracle_board(lab=lab, split=split, viewer=viewer)
    hers = next((p for p, row in enumerate(expected, start=1) if row[2] == viewer.pk and not row[7]), None)
    shown = [
        row
        for p, row in enumerate(expected, start=1)
        if (page - 1) * per_page < p <= page * per_page or row[7] or (hers is not None and abs(p - hers) <= NEIGHBOURS)
    ]
    board = leaderboard_for(lab=lab, split=split, viewer=viewer, page=page, per_page=per_page)
    assert as_tuples(board) == shown
    assert (board.total, board.viewer_position) == (len(expected), hers)
    assert board.pages == max(math.ceil(len(expected) / per_page), 1)
    # A gap is marked exactly where rows of the board are left out between two shown rows (or before the first).
    positions = [0] + [r.position for r in board.rows]
    assert [r.gap_before for r in board.rows] == [b != a + 1 for a, b in itertools.pairwise(positions)]
