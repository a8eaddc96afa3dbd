from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from courses.models import Deadline
from projects import services
from projects.models import Group, SlidesVersion
from tests.conftest import make_member
from tests.projects.conftest import pdf_upload, set_deadline


def test_every_slides_version_is_kept_and_the_newest_is_current(deadlines, student):
    group = services.create_group(member=student, name="G")
    first = services.upload_slides(group=group, member=student, upload=pdf_upload(3))
    second = services.upload_slides(group=group, member=student, upload=pdf_upload(5))
    assert SlidesVersion.objects.filter(group=group).count() == 2
    assert group.current_slides() == second
    assert (first.pages, second.pages) == (3, 5)
    assert first.file.name != second.file.name


def test_slides_after_the_deadline_are_refused_unless_the_group_has_an_extension(course, student, ta):
    set_deadline(course, "project-slides", timezone.now() + timedelta(days=1))
    group = services.create_group(member=student, name="G")
    set_deadline(course, "project-slides", timezone.now() - timedelta(minutes=1))
    with pytest.raises(ValidationError, match="The deadline for Project slides was .* ET"):
        services.upload_slides(group=group, member=student, upload=pdf_upload(2))
    services.grant_group_extension(
        group=group, until=timezone.now() + timedelta(hours=1), reason="projector broke", actor=ta.user
    )
    assert services.upload_slides(group=group, member=student, upload=pdf_upload(2)).late is False


def test_late_slides_are_flagged_when_the_deadline_accepts_late_work(course, student):
    set_deadline(course, "project-slides", timezone.now() + timedelta(days=1), late_policy=Deadline.LatePolicy.FLAG)
    group = services.create_group(member=student, name="G")
    set_deadline(course, "project-slides", timezone.now() - timedelta(minutes=1))
    assert services.upload_slides(group=group, member=student, upload=pdf_upload(2)).late is True


def test_only_members_upload_slides(deadlines, student, student2):
    group = services.create_group(member=student, name="G")
    with pytest.raises(ValidationError, match="Only members of this group"):
        services.upload_slides(group=group, member=student2, upload=pdf_upload(1))


def test_the_proposal_title_and_abstract_are_length_limited(deadlines, student):
    group = services.create_group(member=student, name="G")
    services.update_proposal(group=group, member=student, title="Diffusion for music", abstract="We propose...")
    assert Group.objects.get(pk=group.pk).title == "Diffusion for music"
    with pytest.raises(ValidationError, match="The abstract may be at most 1500 characters; yours has 1501"):
        services.update_proposal(group=group, member=student, title="x", abstract="a" * 1501)


def make_groups(course, count):
    return [
        services.create_group(member=make_member(course, f"g{i}@example.edu"), name=f"Group {i}") for i in range(count)
    ]


def test_a_seeded_shuffle_gives_the_same_order_for_the_same_seed(deadlines, course, ta):
    make_groups(course, 6)
    first = [g.name for g in services.generate_schedule(course=course, seed="2025", actor=ta.user)]
    again = [g.name for g in services.generate_schedule(course=course, seed="2025", actor=ta.user)]
    assert first == again
    stored = list(Group.objects.filter(course=course).order_by("presentation_order").values_list("name", flat=True))
    assert stored == first
    assert sorted(Group.objects.values_list("presentation_order", flat=True)) == [1, 2, 3, 4, 5, 6]


def test_setting_the_order_by_hand_refuses_two_groups_in_one_slot(deadlines, course, ta):
    a, b = make_groups(course, 2)
    with pytest.raises(ValidationError, match="Slot 1 is given to both Group 0 and Group 1"):
        services.set_schedule(course=course, positions={a.pk: 1, b.pk: 1}, actor=ta.user)
    services.set_schedule(course=course, positions={a.pk: 2, b.pk: 1}, actor=ta.user)
    assert Group.objects.get(pk=b.pk).presentation_order == 1


def test_the_group_sees_its_slot_and_the_strict_talk_time(deadlines, login, course, student, ta):
    course.talk_seconds = 150
    course.save()
    group = services.create_group(member=student, name="Mine")
    make_groups(course, 2)
    services.set_schedule(course=course, positions={group.pk: 2}, actor=ta.user)
    body = login(student).get(reverse("projects:home", args=[course.slug])).content.decode()
    assert "slot 2</strong> of 1" in body
    assert "2:30 minutes, strictly timed" in body


def test_mark_presented_is_idempotent_and_logged_once(deadlines, course, student, ta):
    group = services.create_group(member=student, name="G")
    marked = services.mark_presented(group=group, actor=ta.user)
    again = services.mark_presented(group=group, actor=ta.user)
    assert marked.presented_at == again.presented_at
    assert course.audit_entries.filter(action="project.group.presented").count() == 1


def test_a_ta_marks_a_group_presented_from_the_schedule_with_htmx(deadlines, login, course, student, ta):
    group = services.create_group(member=student, name="Now")
    response = login(ta).post(
        reverse("projects:staff_presented", args=[course.slug, group.pk]), {"next": "schedule"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert f'id="slot-row-{group.pk}"' in response.content.decode()
    assert "presented" in response.content.decode()
    assert Group.objects.get(pk=group.pk).presented_at is not None


def test_default_project_deadlines_fall_on_thursday_night_and_friday_afternoon_in_the_course_zone(course):
    from datetime import date

    from courses.deadlines import format_course_time

    made = services.ensure_project_deadlines(course=course, friday=date(2025, 1, 31))
    assert [(d.key, format_course_time(d.due_at, course)) for d in made] == [
        ("project-groups", "Thu 30 Jan 2025, 11:59 pm ET"),
        ("project-slides", "Fri 31 Jan 2025, 1:00 pm ET"),
        ("paper-review", "Fri 31 Jan 2025, 1:00 pm ET"),
    ]
    assert services.ensure_project_deadlines(course=course, friday=date(2025, 2, 7))[0].pk == made[0].pk
