from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from courses.models import AuditEntry
from projects import services
from projects.models import PaperReview
from projects.selectors import review_queue
from tests.projects.conftest import pdf_upload, set_deadline


def hand_in(member, **overrides):
    fields = {
        "paper_title": "Deep Residual Learning",
        "paper_authors": "He, Zhang, Ren, Sun",
        "paper_link": "arXiv:1512.03385v1",
        "upload": pdf_upload(1),
    }
    fields.update(overrides)
    return services.submit_review(member=member, **fields)


def test_the_reference_takes_a_link_or_an_arxiv_id(deadlines, student):
    assert hand_in(student).paper_link == "arXiv:1512.03385v1"
    assert hand_in(student, paper_link="https://papers.nips.cc/paper/7181").paper_link == (
        "https://papers.nips.cc/paper/7181"
    )
    with pytest.raises(ValidationError, match="Give a link to the paper"):
        hand_in(student, paper_link="javascript:alert(1)")


def test_a_review_after_the_deadline_is_refused_with_the_deadline(course, student):
    set_deadline(course, "paper-review", timezone.now() - timedelta(hours=1))
    with pytest.raises(ValidationError, match="The deadline for Paper review was .* ET; ask a TA for an extension"):
        hand_in(student)
    assert not PaperReview.objects.exists()


def test_a_review_can_be_replaced_until_it_is_graded(deadlines, student, ta):
    first = hand_in(student)
    second = hand_in(student, paper_title="Batch Normalization")
    assert second.pk == first.pk
    assert PaperReview.objects.get().paper_title == "Batch Normalization"
    services.grade_review(review=second, actor=ta.user, clarity=4, technical=3, passed=True, feedback="Good.")
    with pytest.raises(ValidationError, match="has been graded"):
        hand_in(student)


def test_the_student_sees_the_grade_only_once_released(deadlines, login, course, student, ta):
    saved = hand_in(student)
    services.grade_review(
        review=saved, actor=ta.user, clarity=5, technical=2, passed=True, feedback="Explain the residual block."
    )
    page = reverse("projects:review", args=[course.slug])
    body = login(student).get(page).content.decode()
    assert "Explain the residual block." not in body
    assert "Waiting for its grade" in body

    services.release_review(review=saved, actor=ta.user)
    body = login(student).get(page).content.decode()
    assert "Explain the residual block." in body
    assert "Clarity of writing: 5 / 5" in body
    assert "Technical communication of the main ideas: 2 / 5" in body
    assert "Passed" in body
    assert [e.action for e in AuditEntry.objects.order_by("id")] == ["project.review.grade", "project.review.release"]


def test_rubric_scores_outside_the_scale_are_refused(deadlines, student, ta):
    saved = hand_in(student)
    with pytest.raises(ValidationError, match="scored from 1 to 5; got 6"):
        services.grade_review(review=saved, actor=ta.user, clarity=6, technical=3, passed=True, feedback="")


def test_a_regrade_request_goes_to_the_top_of_the_queue_and_a_regrade_resolves_it(
    deadlines, course, student, student2, ta
):
    other = hand_in(student2)
    mine = hand_in(student)
    services.grade_review(review=mine, actor=ta.user, clarity=2, technical=2, passed=False, feedback="", release=True)
    with pytest.raises(ValidationError, match="Say what you think was graded wrongly"):
        services.request_regrade(review=mine, member=student, reason=" ")
    services.request_regrade(review=mine, member=student, reason="The second paragraph explains the method.")
    assert [r.pk for r in review_queue(course=course)] == [mine.pk, other.pk]

    regraded = services.grade_review(
        review=mine, actor=ta.user, clarity=4, technical=3, passed=True, feedback="Fair point.", release=True
    )
    assert regraded.regrade_resolved_at is not None
    assert regraded.regrade_pending is False
    assert [r.pk for r in review_queue(course=course)] == [other.pk]


def test_a_second_regrade_request_is_refused(deadlines, student, ta):
    mine = hand_in(student)
    services.grade_review(review=mine, actor=ta.user, clarity=2, technical=2, passed=False, feedback="", release=True)
    services.request_regrade(review=mine, member=student, reason="Please look again.")
    services.grade_review(review=mine, actor=ta.user, clarity=2, technical=2, passed=False, feedback="", release=True)
    with pytest.raises(ValidationError, match="You already asked for a regrade on .*; a review can be regraded once"):
        services.request_regrade(review=mine, member=student, reason="Once more.")


def test_a_regrade_cannot_be_asked_before_the_grade_is_released(deadlines, student, ta):
    mine = hand_in(student)
    services.grade_review(review=mine, actor=ta.user, clarity=3, technical=3, passed=True, feedback="")
    with pytest.raises(ValidationError, match="once your grade has been released"):
        services.request_regrade(review=mine, member=student, reason="Why?")


def test_a_ta_grades_and_releases_from_the_queue_pages(deadlines, login, course, student, ta):
    mine = hand_in(student)
    client = login(ta)
    queue = client.get(reverse("projects:staff_reviews", args=[course.slug])).content.decode()
    assert "Deep Residual Learning" in queue
    response = client.post(
        reverse("projects:staff_review", args=[course.slug, mine.pk]),
        {"clarity": "4", "technical": "5", "passed": "1", "feedback": "Clear.", "release": "on"},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    assert (mine.clarity, mine.technical, mine.passed, mine.feedback, mine.released) == (4, 5, True, "Clear.", True)
    assert mine.graded_by == ta.user


def test_the_grading_form_starts_with_no_mark_and_refuses_to_save_without_one(deadlines, login, course, student, ta):
    review = services.submit_review(
        member=student, paper_title="T", paper_authors="A", paper_link="1706.03762", upload=pdf_upload(1)
    )
    client = login(ta)
    url = reverse("projects:staff_review", args=[course.slug, review.pk])
    page = client.get(url).content.decode()
    for name in ("clarity", "technical"):
        assert (
            f'<select name="{name}" required id="id_{name}">\n  <option value="" selected>choose a mark</option>'
            in page
        )
        assert '<option value="1" selected>' not in page
    body = client.post(url, {"passed": "1", "feedback": "Clear."}).content.decode()
    assert "Choose a mark for clarity of writing." in body
    assert "Choose a mark for the technical communication." in body
    review.refresh_from_db()
    assert review.clarity is None and review.graded_at is None

    download = client.get(reverse("projects:review_file", args=[course.slug, review.pk]))
    assert download["Content-Disposition"] == 'attachment; filename="paper-review-ada-lovelace.pdf"'
