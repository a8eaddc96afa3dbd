from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from courses.models import AuditEntry, Extension
from projects import services
from projects.models import GroupMember, Invitation
from projects.selectors import group_of
from tests.conftest import make_member
from tests.projects.conftest import set_deadline


def test_a_student_registers_a_group_invites_a_classmate_who_accepts(deadlines, student, student2):
    group = services.create_group(member=student, name="  Deep   Dreamers ")
    assert group.name == "Deep Dreamers"
    invitation = services.invite(group=group, inviter=student, email="ALAN.TURING@example.edu")
    assert invitation.invitee == student2
    services.accept_invitation(invitation=invitation, member=student2)
    assert group_of(student2) == group
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.ACCEPTED
    assert sorted(gm.member.user.email for gm in group.members.all()) == [
        "ada.lovelace@example.edu",
        "alan.turing@example.edu",
    ]


def test_a_declined_invitation_leaves_her_without_a_group(deadlines, student, student2):
    group = services.create_group(member=student, name="Solo")
    invitation = services.invite(group=group, inviter=student, email=student2.user.email)
    services.decline_invitation(invitation=invitation, member=student2)
    assert group_of(student2) is None
    with pytest.raises(ValidationError, match="no longer open"):
        services.accept_invitation(invitation=invitation, member=student2)


def test_group_names_are_length_limited_and_unique_in_the_course(deadlines, student, student2):
    with pytest.raises(ValidationError, match="at most 60 characters; yours has 61"):
        services.create_group(member=student, name="x" * 61)
    services.create_group(member=student, name="Transformers")
    with pytest.raises(ValidationError, match="already exists"):
        services.create_group(member=student2, name="transformers")


def test_inviting_someone_not_in_the_course_is_refused(deadlines, student, outsider):
    group = services.create_group(member=student, name="G")
    with pytest.raises(ValidationError, match="No student with the e-mail eve.outsider@example.edu is in this course"):
        services.invite(group=group, inviter=student, email=outsider.user.email)


def test_inviting_a_ta_is_refused_because_groups_are_for_students(deadlines, student, ta):
    group = services.create_group(member=student, name="G")
    with pytest.raises(ValidationError, match="No student with the e-mail"):
        services.invite(group=group, inviter=student, email=ta.user.email)


def test_inviting_someone_already_in_a_group_is_refused(deadlines, student, student2):
    group = services.create_group(member=student, name="G1")
    services.create_group(member=student2, name="G2")
    with pytest.raises(ValidationError, match="Alan Turing is already in a project group"):
        services.invite(group=group, inviter=student, email=student2.user.email)


def test_a_fifth_member_is_refused(deadlines, course, student):
    group = services.create_group(member=student, name="Four")
    others = [make_member(course, f"s{i}@example.edu") for i in range(4)]
    for other in others[:3]:
        invitation = services.invite(group=group, inviter=student, email=other.user.email)
        services.accept_invitation(invitation=invitation, member=other)
    assert group.members.count() == 4
    with pytest.raises(ValidationError, match="already has 4 members; a group has at most 4 members"):
        services.invite(group=group, inviter=student, email=others[3].user.email)


def test_pending_invitations_count_towards_the_size_limit(deadlines, course, student):
    course.group_size_max = 2
    course.save()
    group = services.create_group(member=student, name="Pair")
    services.invite(group=group, inviter=student, email=make_member(course, "a@example.edu").user.email)
    with pytest.raises(ValidationError, match="1 member and 1 pending invitation; a group has at most 2"):
        services.invite(group=group, inviter=student, email=make_member(course, "b@example.edu").user.email)


def test_accepting_into_a_group_that_filled_up_meanwhile_is_refused(deadlines, course, student, ta):
    course.group_size_max = 2
    course.save()
    group = services.create_group(member=student, name="Pair")
    late = make_member(course, "late@example.edu")
    invitation = services.invite(group=group, inviter=student, email=late.user.email)
    services.staff_add_member(group=group, member=make_member(course, "b@example.edu"), actor=ta.user, reason="x")
    with pytest.raises(ValidationError, match="already has 2 members"):
        services.accept_invitation(invitation=invitation, member=late)


def test_the_database_refuses_a_second_group_for_the_same_student(deadlines, student, student2):
    services.create_group(member=student, name="A")
    other = services.create_group(member=student2, name="B")
    with pytest.raises(IntegrityError), transaction.atomic():
        GroupMember.objects.create(group=other, member=student)


def test_accepting_an_invitation_drops_her_other_invitations(deadlines, course, student, student2):
    third = make_member(course, "c@example.edu")
    first = services.invite(
        group=services.create_group(member=student, name="A"), inviter=student, email="c@example.edu"
    )
    second = services.invite(
        group=services.create_group(member=student2, name="B"), inviter=student2, email="c@example.edu"
    )
    services.accept_invitation(invitation=first, member=third)
    second.refresh_from_db()
    assert second.status == Invitation.Status.CANCELLED


def test_group_lifecycle_around_the_slides_deadline_and_a_group_extension(deadlines, course, student, student2, ta):
    group = services.create_group(member=student, name="Late Night")
    invitation = services.invite(group=group, inviter=student, email=student2.user.email)
    slides = set_deadline(course, "project-slides", timezone.now() - timedelta(minutes=5))

    with pytest.raises(ValidationError, match="slides deadline .* has passed: changes to the group's members now go"):
        services.accept_invitation(invitation=invitation, member=student2)
    with pytest.raises(ValidationError, match="has passed"):
        services.leave_group(group=group, member=student)

    until = timezone.now() + timedelta(hours=3)
    granted = services.grant_group_extension(group=group, until=until, reason="sick teammate", actor=ta.user)
    assert [e.member for e in granted] == [student]
    assert Extension.objects.get(deadline=slides, member=student, revoked_at__isnull=True).until == until

    services.accept_invitation(invitation=invitation, member=student2)
    assert group_of(student2) == group


def test_after_the_slides_deadline_a_ta_changes_members_and_each_change_is_logged(
    deadlines, course, student, student2, ta
):
    group = services.create_group(member=student, name="G")
    set_deadline(course, "project-slides", timezone.now() - timedelta(hours=1))
    with pytest.raises(ValidationError, match="Say why"):
        services.staff_add_member(group=group, member=student2, actor=ta.user, reason="  ")
    services.staff_add_member(group=group, member=student2, actor=ta.user, reason="forgot to accept in time")
    services.staff_remove_member(group=group, member=student, actor=ta.user, reason="dropped the course")
    entries = list(AuditEntry.objects.filter(action__startswith="project.group").order_by("id"))
    assert [(e.action, e.actor, e.reason) for e in entries] == [
        ("project.group.add_member", ta.user, "forgot to accept in time"),
        ("project.group.remove_member", ta.user, "dropped the course"),
    ]
    assert entries[1].after == {"members": ["alan.turing@example.edu"]}
    assert group_of(student) is None


def test_a_student_cannot_register_a_group_after_her_slides_deadline(course, student):
    set_deadline(course, "project-slides", timezone.now() - timedelta(minutes=1))
    with pytest.raises(ValidationError, match="ask a TA to set up your group"):
        services.create_group(member=student, name="Too late")


def test_the_last_member_leaving_removes_the_group(deadlines, student):
    group = services.create_group(member=student, name="Gone")
    assert services.leave_group(group=group, member=student) is False
    assert group_of(student) is None
