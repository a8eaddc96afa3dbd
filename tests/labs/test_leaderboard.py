"""Ranking, the student's counted entry, public/private visibility, release and freeze."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from courses.services import grant_extension
from labs import finals, services
from labs.models import Evaluation, Submission
from labs.selectors import leaderboard_for
from tests.conftest import make_member
from tests.factories import make_music_lab


@pytest.fixture
def lab(course):
    return make_music_lab(course)


def graded(lab, member, *, public, private, tiebreak=0.5, minutes_ago=60, label=""):
    submission = Submission.objects.create(
        lab=lab,
        member=member,
        storage_prefix=f"x/{Submission.objects.count()}-{member.pk}-{public}",
        files=[],
        sha256=f"{member.pk}-{public}-{private}",
        size=1,
        received_at=timezone.now() - timedelta(minutes=minutes_ago),
        baseline_label=label,
    )
    Evaluation.objects.create(
        submission=submission,
        status="succeeded",
        finished_at=timezone.now(),
        public_score=public,
        private_score=private,
        public_tiebreak=tiebreak,
        private_tiebreak=tiebreak,
        metrics={"public": {"bpc": public, "validity": tiebreak}, "private": {"bpc": private, "validity": tiebreak}},
    )
    return submission


def names(board):
    return [(row.rank, row.name) for row in board.rows]


def test_ranking_is_primary_then_tiebreak_then_earliest(lab, course, student, student2):
    third = make_member(course, "third@example.edu", display_name="third")
    graded(lab, student, public=2.0, private=2.0, tiebreak=0.4, minutes_ago=10)
    graded(lab, student2, public=2.0, private=2.0, tiebreak=0.4, minutes_ago=20)
    graded(lab, third, public=2.0, private=2.0, tiebreak=0.9, minutes_ago=5)
    board = leaderboard_for(lab=lab, split="public", viewer=student)
    assert names(board) == [(1, "third"), (2, student2.display_name), (3, student.display_name)]


def test_her_entry_is_her_best_public_score_unless_she_marks_another_final(lab, student):
    worse = graded(lab, student, public=3.0, private=1.0)
    graded(lab, student, public=2.0, private=9.0)
    board = leaderboard_for(lab=lab, split="public", viewer=student)
    assert [row.score for row in board.rows] == [2.0]
    finals.mark_final(submission=worse, member=student)
    board = leaderboard_for(lab=lab, split="public", viewer=student)
    assert [row.submission_id for row in board.rows] == [worse.pk]


def test_baselines_are_shown_but_not_ranked(lab, student, ta):
    graded(lab, student, public=2.0, private=2.0)
    graded(lab, ta, public=1.5, private=1.5, label="Reference LSTM")
    board = leaderboard_for(lab=lab, split="public", viewer=student)
    assert names(board) == [(None, "Reference LSTM"), (1, student.display_name)]


def test_students_see_only_public_scores_until_release(lab, student, ta):
    graded(lab, student, public=2.0, private=5.0)
    board = leaderboard_for(lab=lab, split="private", viewer=student)
    assert board.split == "public" and [r.score for r in board.rows] == [2.0]
    assert leaderboard_for(lab=lab, split="private", viewer=ta).rows[0].score == 5.0
    lab.private_released_at = timezone.now()
    lab.save()
    assert leaderboard_for(lab=lab, split="private", viewer=student).rows[0].score == 5.0


def test_release_is_refused_before_the_last_effective_deadline_including_extensions(lab, student, ta):
    lab.deadline.due_at = timezone.now() - timedelta(hours=2)
    lab.deadline.save()
    grant_extension(
        deadline=lab.deadline, member=student, until=timezone.now() + timedelta(hours=1), reason="", actor=ta.user
    )
    with pytest.raises(ValidationError, match="can still submit on time"):
        services.release_private(lab=lab, actor=ta.user)
    lab.refresh_from_db()
    assert lab.private_released_at is None
    services.release_private(lab=lab, actor=ta.user, at=timezone.now() + timedelta(hours=2))
    assert lab.course.audit_entries.filter(action="leaderboard.release").exists()


def test_a_frozen_leaderboard_ignores_results_that_arrive_later(lab, student, student2, ta):
    graded(lab, student, public=2.0, private=2.0)
    services.set_frozen(lab=lab, actor=ta.user, frozen=True)
    late = graded(lab, student2, public=1.0, private=1.0)
    Evaluation.objects.filter(submission=late).update(finished_at=timezone.now() + timedelta(seconds=5))
    assert [r.member_id for r in leaderboard_for(lab=lab, split="public", viewer=ta).rows] == [student.pk]
    services.set_frozen(lab=lab, actor=ta.user, frozen=False)
    assert len(leaderboard_for(lab=lab, split="public", viewer=ta).rows) == 2
    assert list(lab.course.audit_entries.values_list("action", flat=True)) == [
        "leaderboard.unfreeze",
        "leaderboard.freeze",
    ]


def test_a_rerun_writes_a_new_evaluation_and_the_latest_result_counts(
    lab, student, ta, django_capture_on_commit_callbacks
):
    submission = graded(lab, student, public=3.0, private=3.0)
    with django_capture_on_commit_callbacks(execute=False):
        evaluation = services.rerun(submission=submission, actor=ta.user, reason="grader fix")
    assert submission.evaluations.count() == 2 and evaluation.status == "queued"
    Evaluation.objects.filter(pk=evaluation.pk).update(status="succeeded", public_score=2.5, finished_at=timezone.now())
    assert [r.score for r in leaderboard_for(lab=lab, split="public", viewer=ta).rows] == [2.5]
    assert lab.course.audit_entries.filter(action="evaluation.rerun").exists()


def test_display_names_not_real_names_appear(lab, student):
    graded(lab, student, public=2.0, private=2.0)
    assert leaderboard_for(lab=lab, split="public", viewer=None).rows[0].name == student.display_name
    student.show_real_name = True
    student.save()
    assert leaderboard_for(lab=lab, split="public", viewer=None).rows[0].name == student.user.get_full_name()


def test_a_lab_counts_as_completed_only_with_a_succeeded_submission_on_time(lab, student, student2, course):
    from labs.selectors import labs_completed

    graded(lab, student, public=2.0, private=2.0)
    late = graded(lab, student2, public=2.0, private=2.0)
    Submission.objects.filter(pk=late.pk).update(late=True)
    third = make_member(course, "third@example.edu")
    failed = graded(lab, third, public=2.0, private=2.0)
    Evaluation.objects.filter(submission=failed).update(status="failed")
    done = labs_completed(course=course, members=[student, student2, third])
    assert done == {student.pk: {lab.slug: True}, student2.pk: {lab.slug: False}, third.pk: {lab.slug: False}}


def test_a_leaderboard_ranks_results_of_one_device_class_only(lab, student, student2, ta):
    graded(lab, student, public=2.0, private=2.0)
    other = graded(lab, student2, public=1.0, private=1.0)
    Evaluation.objects.exclude(submission=other).update(device_class="cuda:NVIDIA H100 80GB HBM3")
    Evaluation.objects.filter(submission=other).update(device_class="cpu")
    lab.device_class = "cpu"
    lab.save()
    assert [r.member_id for r in leaderboard_for(lab=lab, split="public", viewer=ta).rows] == [student2.pk]
    lab.device_class = ""
    lab.save()
    third = graded(lab, make_member(lab.course, "third@example.edu"), public=3.0, private=3.0)
    Evaluation.objects.filter(submission=third).update(device_class="cuda:NVIDIA H100 80GB HBM3")
    rows = leaderboard_for(lab=lab, split="public", viewer=ta).rows
    assert [r.member_id for r in rows] == [student.pk, third.member_id]  # the class most results have


def test_a_frozen_board_tells_her_why_it_shows_her_older_score(login, lab, student, ta):
    from django.urls import reverse

    from courses.deadlines import format_course_time

    graded(lab, student, public=2.5, private=2.5)
    services.set_frozen(lab=lab, actor=ta.user, frozen=True)
    better = graded(lab, student, public=1.5, private=1.5)
    Evaluation.objects.filter(submission=better).update(finished_at=timezone.now() + timedelta(seconds=5))
    lab.refresh_from_db()
    body = login(student).get(reverse("labs:leaderboard", args=[lab.course.slug, lab.slug])).content.decode()
    frozen_at = format_course_time(lab.frozen_at, lab.course)
    assert (
        '<p class="notice">The board is frozen: it ranks every entry, yours included, by what had been graded by '
        f'<time datetime="{lab.frozen_at.isoformat()}" class="course-time">{frozen_at}</time>. Results graded since '
        "then show on your own submissions page, and count here once the staff unfreeze the board.</p>"
    ) in body
    assert "2.5000" in body and "1.5000" not in body


def test_an_unfrozen_board_says_nothing_of_freezing(login, lab, student):
    graded(lab, student, public=2.5, private=2.5)
    body = login(student).get(reverse_board(lab)).content.decode()
    assert "The board is frozen" not in body


def reverse_board(lab):
    from django.urls import reverse

    return reverse("labs:leaderboard", args=[lab.course.slug, lab.slug])


def test_staff_see_who_each_row_is_and_open_its_submission_while_students_see_chosen_names(
    login, lab, student, student2, ta
):
    from django.urls import reverse

    mine = graded(lab, student, public=2.0, private=2.0)
    theirs = graded(lab, student2, public=1.0, private=1.0)
    graded(lab, ta, public=1.5, private=1.5, label="Reference LSTM")

    def link(submission):
        return reverse("labs:submission", args=[lab.course.slug, lab.slug, submission.pk])

    staff_page = login(ta).get(reverse_board(lab)).content.decode()
    for member, submission in ((student, mine), (student2, theirs)):
        assert f'<a href="{link(submission)}">{member.display_name}</a>' in staff_page
        assert f"{member.user.get_full_name()} · {member.user.email}" in staff_page
    assert login(ta).get(link(theirs)).status_code == 200

    student_page = login(student).get(reverse_board(lab)).content.decode()
    assert f'<a href="{link(mine)}">{student.display_name}</a>' in student_page  # her own row
    assert student2.display_name in student_page and link(theirs) not in student_page
    assert student2.user.email not in student_page and student2.user.get_full_name() not in student_page
    assert login(student).get(link(theirs)).status_code == 404
