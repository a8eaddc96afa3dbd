"""Assignment and Grade Services: line items made once, scores from the completion selector, refusals kept."""

from django.utils import timezone

from lms.grades import sync_grades
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
    client.post(f"/courses/{section.course.slug}/staff/lms/sections/{section.pk}/grades/")
    record.refresh_from_db()
    assert (record.status, record.attempts) == (GradeSent.Status.SENT, 2)
    assert [s["scoreGiven"] for s in lms.scores] == [1]
