from datetime import timedelta

from django.utils import timezone

from projects import services
from projects.models import Group
from projects.selectors import group_eligibility
from tests.conftest import make_member
from tests.projects.conftest import set_deadline


def test_a_group_registered_on_time_with_a_for_credit_member_is_eligible(deadlines, student):
    group = services.create_group(member=student, name="On time")
    assert group_eligibility(group).eligible is True
    assert group_eligibility(group).reasons == []


def test_a_group_registered_after_the_deadline_may_present_but_is_not_eligible(course, student):
    set_deadline(course, "project-groups", timezone.now() - timedelta(hours=2))
    set_deadline(course, "project-slides", timezone.now() + timedelta(days=1))
    group = services.create_group(member=student, name="Late")
    result = group_eligibility(group)
    assert result.eligible is False
    assert len(result.reasons) == 1
    assert "after the group-registration deadline" in result.reasons[0]
    assert "may still present but cannot win a prize" in result.reasons[0]


def test_registration_within_the_grace_period_still_counts_as_on_time(course, student):
    set_deadline(course, "project-groups", timezone.now() - timedelta(minutes=2), grace_minutes=10)
    group = services.create_group(member=student, name="Just in")
    assert group_eligibility(group).eligible is True


def test_a_group_without_a_for_credit_member_is_not_eligible(deadlines, course):
    listener = make_member(course, "listener@example.edu", registered=False)
    group = services.create_group(member=listener, name="Listeners")
    result = group_eligibility(group)
    assert result.eligible is False
    assert result.reasons == [
        "No member is registered for credit: a group needs at least one for-credit student to win a prize."
    ]


def test_one_for_credit_member_makes_a_group_of_listeners_eligible(deadlines, course, student):
    listener = make_member(course, "listener@example.edu", registered=False)
    group = services.create_group(member=listener, name="Mixed")
    invitation = services.invite(group=group, inviter=listener, email=student.user.email)
    services.accept_invitation(invitation=invitation, member=student)
    assert group_eligibility(group).eligible is True


def test_a_group_below_the_course_minimum_size_is_not_eligible(deadlines, course, student):
    course.group_size_min = 2
    course.save()
    group = services.create_group(member=student, name="Alone")
    group = Group.objects.get(pk=group.pk)
    assert group_eligibility(group).reasons == ["The group has 1 member; a group needs at least 2."]


def test_without_a_registration_deadline_registration_time_does_not_matter(course, student):
    group = services.create_group(member=student, name="Anytime")
    assert group_eligibility(group).eligible is True
