"""Assignment and Grade Services: line items made once, scores from the completion selector, refusals kept."""

import pytest
from django.utils import timezone

from lms.grades import sync_course, sync_grades
from lms.models import GradeSent, LineItem
from projects.models import Group, GroupMember


def present(member):
    group = Group.objects.create(course=member.course, name="G1", presented_at=timezone.now())
    GroupMember.objects.create(group=group, member=member)
    return group


def test_line_items_are_made_once_and_a_resync_never_duplicates_them(section, lms, ta):
    sync_grades(section=section, actor=ta.user)
    LineItem.objects.all().delete()  # even a tool that lost its records finds the LMS's columns by their tag
    sync_grades(section=section, actor=ta.user)
    sync_grades(section=section, actor=ta.user)
    assert [item["tag"] for item in lms.line_items["ctx-1"]] == ["project"]
    assert LineItem.objects.get(section=section).url == lms.line_items["ctx-1"][0]["id"]


def test_a_completed_project_is_sent_once_and_again_when_it_changes(section, lms, student, ta):
    result = sync_grades(section=section, actor=ta.user)
    assert (result.sent, lms.scores) == (0, [])
    group = present(student)
    assert sync_grades(section=section, actor=ta.user).sent == 1
    assert sync_grades(section=section, actor=ta.user).sent == 0
    [score] = lms.scores
    assert (score["userId"], score["scoreGiven"], score["scoreMaximum"]) == ("lms-student", 1, 1)
    group.presented_at = None
    group.save()
    assert sync_grades(section=section, actor=ta.user).sent == 1
    assert lms.scores[-1]["scoreGiven"] == 0
    assert lms.scores[-1]["timestamp"] > score["timestamp"]


def test_a_score_the_lms_refuses_is_kept_shown_and_retried(section, lms, student, ta, client, login):
    present(student)
    lms.refuse_scores = True
    result = sync_grades(section=section, actor=ta.user)
    assert result.refused == [f"{student.user.email}: Final project"]
    record = GradeSent.objects.get(member=student)
    assert record.status == GradeSent.Status.REFUSED and "locked" in record.error
    login(ta)
    page = client.get(f"/courses/{section.course.slug}/staff/lms/")
    assert b"Refused by the LMS" in page.content and b"locked" in page.content
    lms.refuse_scores = False
    assert sync_course(course_id=section.course.pk) == []  # what the worker's task runs again
    record.refresh_from_db()
    assert (record.status, record.attempts) == (GradeSent.Status.SENT, 2)
    assert [s["scoreGiven"] for s in lms.scores] == [1]


def test_the_staff_button_asks_the_worker_and_the_request_never_calls_the_lms(
    section, lms, student, ta, client, login, django_capture_on_commit_callbacks, monkeypatch
):
    from celery import current_app

    present(student)
    sent_tasks = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent_tasks.append((name, kw["kwargs"])))
    url = f"/courses/{section.course.slug}/staff/lms/sections/{section.pk}/grades/"
    login(student)
    assert client.post(url).status_code == 403
    login(ta)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
    assert lms.scores == [] and not GradeSent.objects.exists()
    assert sent_tasks == [
        (
            "worker.tasks.sync_lms_grades",
            {"course_id": section.course.pk, "section_id": section.pk, "actor_id": ta.user.pk},
        )
    ]


def test_the_sync_task_retries_while_the_lms_refuses(section, lms, student, settings):
    from celery.exceptions import Retry

    from worker.tasks import sync_lms_grades

    present(student)
    lms.refuse_scores = True
    with pytest.raises(Retry):
        sync_lms_grades.apply(kwargs={"course_id": section.course.pk}, throw=True)
    lms.refuse_scores = False
    assert sync_lms_grades.apply(kwargs={"course_id": section.course.pk}, throw=True).get() == 0
    assert [s["scoreGiven"] for s in lms.scores] == [1]


def succeeded(lab, member):
    from datetime import timedelta

    from labs.models import Evaluation, Submission

    submission = Submission.objects.create(
        lab=lab,
        member=member,
        number=1,
        storage_prefix=f"p/{member.pk}/1",
        files=[],
        sha256=f"{member.pk}-1",
        size=1,
        received_at=timezone.now() - timedelta(hours=1),
    )
    return Evaluation.objects.create(
        submission=submission, status="succeeded", finished_at=timezone.now(), public_score=1.0, private_score=1.0
    )


def test_a_lab_score_is_sent_after_its_private_release_and_again_only_when_it_changes(section, lms, student, ta):
    from labs.models import Lab
    from tests.factories import make_music_lab

    lab = make_music_lab(section.course)
    evaluation = succeeded(lab, student)
    sync_grades(section=section, actor=ta.user)
    assert lms.scores == []  # before the release nothing about the lab is final
    Lab.objects.filter(pk=lab.pk).update(private_released_at=timezone.now())
    assert sync_grades(section=section, actor=ta.user).sent == 1
    [first] = lms.scores
    item = LineItem.objects.get(key="lab:lab1-music")
    assert first["line_item"] == item.url and first["userId"] == "lms-student"
    assert (first["scoreGiven"], first["scoreMaximum"]) == (item.score_maximum, item.score_maximum) == (1, 1)
    assert (first["activityProgress"], first["gradingProgress"]) == ("Completed", "FullyGraded")
    assert sync_grades(section=section, actor=ta.user).sent == 0
    assert len(lms.scores) == 1  # unchanged: not sent again
    evaluation.status = "failed"  # e.g. a re-run that failed: the lab is no longer completed
    evaluation.save()
    assert sync_grades(section=section, actor=ta.user).sent == 1
    second = lms.scores[-1]
    assert (second["scoreGiven"], second["scoreMaximum"], second["comment"]) == (0, 1, "not completed")
    assert second["timestamp"] > first["timestamp"]
    record = GradeSent.objects.get(line_item=item, member=student)
    assert (record.score_given, record.attempts) == (0, 2)


def test_the_project_posts_an_explicit_pass_or_fail_once_shown_to_her(section, lms, student, ta):
    from projects.models import PaperReview
    from projects.services.reviews import grade_review, release_review

    review = PaperReview.objects.create(
        member=student,
        paper_title="T",
        paper_authors="A",
        paper_link="1706.03762",
        file="r.pdf",
        original_name="r.pdf",
        size=1,
    )
    grade_review(review=review, actor=ta.user, clarity=2, technical=2, passed=False, feedback="thin")
    sync_grades(section=section, actor=ta.user)
    assert lms.scores == []  # graded but not released to her: the LMS does not learn it first
    release_review(review=review, actor=ta.user)
    assert sync_grades(section=section, actor=ta.user).sent == 1
    [fail] = lms.scores
    assert (fail["scoreGiven"], fail["scoreMaximum"], fail["comment"]) == (0, 1, "fail")
    assert (fail["activityProgress"], fail["gradingProgress"]) == ("Completed", "FullyGraded")
    assert sync_grades(section=section, actor=ta.user).sent == 0
    grade_review(review=review, actor=ta.user, clarity=4, technical=4, passed=True, feedback="better", release=True)
    assert sync_grades(section=section, actor=ta.user).sent == 1
    passed = lms.scores[-1]
    assert (passed["scoreGiven"], passed["scoreMaximum"], passed["comment"]) == (1, 1, "pass")
    assert passed["timestamp"] > fail["timestamp"]


def finishing(lab, member, *, number: int = 1):
    """A queued evaluation of an on-time submission of hers, claimed by a grading worker: finish() ends it."""
    from datetime import timedelta

    from labs import lifecycle
    from labs.models import Evaluation, Submission

    submission = Submission.objects.create(
        lab=lab,
        member=member,
        number=number,
        storage_prefix=f"p/{member.pk}/{number}",
        files=[],
        sha256=f"{member.pk}-{number}",
        size=1,
        received_at=timezone.now() - timedelta(hours=1),
    )
    evaluation = Evaluation.objects.create(submission=submission)
    return evaluation, lifecycle.claim(evaluation.pk, worker="grader-1")


def test_evaluations_ending_after_the_release_ask_for_one_sync_of_the_course(
    section, student, student2, ta, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from celery import current_app

    from labs import lifecycle
    from labs.models import Lab
    from tests.factories import make_music_lab
    from worker.tasks import sync_lms_grades

    settings.LMS_GRADE_SYNC_COALESCE_SECONDS = 90
    course = section.course
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.append((kw["kwargs"], kw.get("countdown"))))
    lab = make_music_lab(course)
    before, token = finishing(lab, student, number=9)
    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.finish(before.pk, token, "succeeded")
    assert sent == []  # before the release the LMS holds nothing of the lab
    Lab.objects.filter(pk=lab.pk).update(private_released_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        for number, (member, status) in enumerate(((student, "succeeded"), (student2, "failed"), (student, "error"))):
            evaluation, token = finishing(lab, member, number=number + 1)
            assert lifecycle.finish(evaluation.pk, token, status)
    assert sent == [({"course_id": course.pk, "coalesced": True}, 90)]
    course.refresh_from_db()
    assert course.grade_sync_due_at is not None

    # The sync begins: a change from then on asks for the next one.
    sync_lms_grades.apply(kwargs={"course_id": course.pk, "coalesced": True}, throw=True)
    course.refresh_from_db()
    assert course.grade_sync_due_at is None
    with django_capture_on_commit_callbacks(execute=True):
        evaluation, token = finishing(lab, student2, number=77)
        lifecycle.finish(evaluation.pk, token, "succeeded")
    assert sent[1:] == [({"course_id": course.pk, "coalesced": True}, 90)]


def test_a_coalesced_sync_that_was_lost_is_asked_for_again(section, monkeypatch, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from celery import current_app

    from courses import gradebook
    from courses.models import Course

    course = section.course
    sent = []
    monkeypatch.setattr(current_app, "send_task", lambda name, **kw: sent.append(kw["kwargs"]))
    Course.objects.filter(pk=course.pk).update(grade_sync_due_at=timezone.now() - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        gradebook.request_sync_soon(course_id=course.pk)
    assert sent == []  # one is waiting, recently due: the worker may be just starting it
    Course.objects.filter(pk=course.pk).update(grade_sync_due_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        gradebook.request_sync_soon(course_id=course.pk)
    assert sent == [{"course_id": course.pk, "coalesced": True}]


def test_a_section_whose_lms_does_not_answer_is_shown_failed_on_the_staff_page(
    section, lms, student, ta, client, login
):
    from lms.models import Section
    from tests.e2e.conftest import free_port

    present(student)
    reachable = section.lineitems_url
    Section.objects.filter(pk=section.pk).update(lineitems_url=f"http://127.0.0.1:{free_port()}/lineitems/ctx-1")
    login(student)
    assert client.get(f"/courses/{section.course.slug}/staff/lms/").status_code == 403
    [left] = sync_course(course_id=section.course.pk)
    assert left.startswith(f"{section}: ")
    section.refresh_from_db()
    assert section.grade_sync_at is not None and "Connection refused" in section.grade_sync_error
    login(ta)
    page = client.get(f"/courses/{section.course.slug}/staff/lms/").content.decode()
    assert "The last grade sync, " in page and "failed: The LMS did not answer:" in page
    assert "Connection refused" in page
    assert lms.scores == [] and not GradeSent.objects.exists()

    Section.objects.filter(pk=section.pk).update(lineitems_url=reachable)
    assert sync_course(course_id=section.course.pk) == []
    section.refresh_from_db()
    assert section.grade_sync_error == ""
    page = client.get(f"/courses/{section.course.slug}/staff/lms/").content.decode()
    assert "the LMS took every score" in page and "failed:" not in page


def test_a_resync_finds_its_line_item_on_a_later_page_and_makes_no_duplicate(section, lms, ta):
    others = [
        {
            "id": f"{lms.base_url}/lineitems/ctx-1/{800 + n}",
            "tag": f"quiz-{n}",
            "label": f"Quiz {n}",
            "scoreMaximum": 10,
        }
        for n in range(3)
    ]
    ours = {"id": f"{lms.base_url}/lineitems/ctx-1/899", "tag": "project", "label": "Final project", "scoreMaximum": 1}
    lms.line_items["ctx-1"] = [*others, ours]  # ours is on page 2 of 2
    lms.page_size = 2
    sync_grades(section=section, actor=ta.user)
    assert lms.line_items["ctx-1"] == [*others, ours]
    assert LineItem.objects.get(section=section).url == ours["id"]
    listing = [query for method, query in lms.requests if method == "GET" and query.startswith("/lineitems/")]
    assert len(listing) == 2 and "page=bookmark" in listing[1]
    assert not [query for method, query in lms.requests if method == "POST"]
