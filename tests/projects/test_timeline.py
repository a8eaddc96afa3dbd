"""A group's states follow each other in time: registered, then presented, on every page and in the demo."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from courses.deadlines import format_course_time
from demo import course as demo_course
from demo.judging import seed_judging
from demo.projects import seed_projects
from projects import services
from projects.models import Group
from tests.projects.conftest import pdf_upload


def test_a_talk_stamped_before_the_groups_registration_is_refused_and_changes_nothing(deadlines, course, student, ta):
    group = services.create_group(member=student, name="Early")
    before = group.created_at - timedelta(minutes=5)
    registered = format_course_time(group.created_at, course)
    with pytest.raises(ValidationError, match=f"Early registered at {registered}; it cannot have presented before"):
        services.mark_presented(group=group, actor=ta.user, at=before)
    group.refresh_from_db()
    assert group.presented_at is None
    assert not course.audit_entries.filter(action="project.group.presented").exists()


def test_the_group_page_lists_registered_before_presented(deadlines, login, course, student, ta):
    group = services.create_group(member=student, name="Ordered")
    services.upload_slides(group=group, member=student, upload=pdf_upload(2))
    services.mark_presented(group=group, actor=ta.user)
    group.refresh_from_db()
    body = login(student).get(reverse("projects:home", args=[course.slug])).content.decode()
    registered = body.index("Registered <time")
    presented = body.index('<span class="pill">presented <time')
    assert registered < presented
    assert group.created_at < group.presented_at


@pytest.mark.django_db
def test_the_demos_groups_registered_before_they_presented():
    seeded = demo_course.seed_course()
    course = seeded.course
    seed_projects(course)
    seed_judging(course)
    groups = list(Group.objects.filter(course=course).prefetch_related("members", "slides", "invitations"))
    assert [g.name for g in groups if g.presented_at] and len(groups) == 2
    for group in groups:
        assert group.created_at < group.presented_at, group.name
        for member in group.members.all():
            assert member.joined_at >= group.created_at
            assert member.joined_at < group.presented_at
        for slides in group.slides.all():
            assert group.created_at <= slides.uploaded_at < group.presented_at
        for invitation in group.invitations.all():
            assert group.created_at <= invitation.created_at <= invitation.responded_at < group.presented_at
