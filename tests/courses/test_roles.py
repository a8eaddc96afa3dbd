"""The one rule of who may change which membership, and the admin's use of it (the import's is in test_roster)."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from courses.models import AuditEntry, Membership, Role
from courses.roles import OPERATOR, membership_change_refusal, role_of_actor
from tests.conftest import make_member

User = get_user_model()


def refusal(actor_role, before, after, *, herself=False, registration=False):
    return membership_change_refusal(
        actor_role=actor_role,
        about_herself=herself,
        email="x@example.edu",
        before_role=before,
        after_role=after,
        other_fields_change=registration,
    )


@pytest.mark.parametrize(
    ("actor_role", "before", "after", "allowed"),
    [
        (Role.TA, None, Role.STUDENT, True),
        (Role.TA, None, Role.JUDGE, True),
        (Role.TA, Role.STUDENT, Role.JUDGE, True),
        (Role.TA, Role.JUDGE, Role.STUDENT, True),
        (Role.TA, None, Role.TA, False),
        (Role.TA, None, Role.INSTRUCTOR, False),
        (Role.TA, Role.STUDENT, Role.TA, False),
        (Role.TA, Role.TA, Role.STUDENT, False),
        (Role.TA, Role.INSTRUCTOR, Role.TA, False),
        (Role.INSTRUCTOR, Role.STUDENT, Role.TA, True),
        (Role.INSTRUCTOR, Role.TA, Role.STUDENT, True),
        (Role.INSTRUCTOR, Role.INSTRUCTOR, Role.TA, True),
        (Role.INSTRUCTOR, None, Role.INSTRUCTOR, True),
        (OPERATOR, Role.STUDENT, Role.INSTRUCTOR, True),
        (Role.STUDENT, None, Role.STUDENT, False),
        (Role.JUDGE, None, Role.STUDENT, False),
    ],
)
def test_only_an_instructor_grants_or_removes_staff_roles(actor_role, before, after, allowed):
    assert (refusal(actor_role, before, after) is None) is allowed


@pytest.mark.parametrize("actor_role", [Role.TA, Role.INSTRUCTOR, OPERATOR])
def test_nobody_changes_her_own_role_but_may_list_herself_unchanged(actor_role):
    own = actor_role or Role.STUDENT
    other = Role.JUDGE
    assert refusal(actor_role, own, other, herself=True).startswith("you cannot change your own role")
    assert refusal(actor_role, own, own, herself=True) is None


def test_a_ta_cannot_change_a_staff_members_registration_but_an_instructor_can():
    assert refusal(Role.TA, Role.TA, Role.TA, registration=True) is not None
    assert refusal(Role.INSTRUCTOR, Role.TA, Role.TA, registration=True) is None
    assert refusal(Role.TA, Role.STUDENT, Role.STUDENT, registration=True) is None


def test_the_actors_authority_comes_from_her_membership_in_this_course(course, ta, instructor, student, other_ta):
    from django.core.exceptions import PermissionDenied

    assert role_of_actor(course=course, actor=None) is OPERATOR
    assert role_of_actor(course=course, actor=ta.user) == Role.TA
    assert role_of_actor(course=course, actor=instructor.user) == Role.INSTRUCTOR
    for outsider in (student.user, other_ta.user):
        with pytest.raises(PermissionDenied):
            role_of_actor(course=course, actor=outsider)


# ------------------------------------------------------------------------------------------------ the admin


@pytest.fixture
def operator(db):
    return User.objects.create_superuser("root", "root@example.edu", "a long passphrase 42")


def admin_change(client, member: Membership, **fields):
    data = {
        "role": member.role,
        "registered_for_credit": "on" if member.registered_for_credit else "",
        "display_name": member.display_name,
        "show_real_name": "",
        **fields,
    }
    return client.post(reverse("admin:courses_membership_change", args=[member.pk]), data)


def test_the_operator_promotes_in_the_admin_and_it_is_audited(client, operator, student):
    client.force_login(operator)
    response = admin_change(client, student, role="ta")
    assert response.status_code == 302
    student.refresh_from_db()
    assert student.role == "ta"
    entry = AuditEntry.objects.get(action="member.update")
    assert (entry.actor, entry.target, entry.before, entry.after) == (
        operator,
        "ada.lovelace@example.edu",
        {"role": "student", "registered": True},
        {"role": "ta", "registered": True},
    )


def test_the_operator_cannot_change_her_own_role_in_the_admin(client, operator, course):
    own = make_member(course, operator.email, Role.STUDENT)
    client.force_login(operator)
    response = admin_change(client, own, role="instructor")
    assert response.status_code == 200
    assert "You cannot change your own role (Student to Instructor)" in response.content.decode()
    own.refresh_from_db()
    assert own.role == "student"
    assert not AuditEntry.objects.exists()


def test_removing_a_member_in_the_admin_is_audited(client, operator, ta):
    client.force_login(operator)
    response = client.post(reverse("admin:courses_membership_delete", args=[ta.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=ta.pk).exists()
    entry = AuditEntry.objects.get(action="member.remove")
    assert (entry.actor, entry.target, entry.before) == (
        operator,
        "grace.hopper@example.edu",
        {"role": "ta", "registered": False},
    )


@pytest.mark.parametrize("who", ["ta", "instructor"])
def test_course_staff_who_open_the_admin_are_told_it_is_the_operators_and_sent_to_their_course(client, request, who):
    member = request.getfixturevalue(who)
    # Even with Django's own staff flag, a course role is not an operator's.
    User.objects.filter(pk=member.user.pk).update(is_staff=True)
    client.force_login(member.user)
    for path in (reverse("admin:index"), reverse("admin:courses_membership_changelist")):
        response = client.get(path, follow=True)
        page = response.content.decode()
        assert response.status_code == 403
        assert "<h1>The admin is the platform operator's</h1>" in page
        assert "authorized" not in page
        assert f'<a href="{reverse("home")}">Go to your courses</a>' in page
    # Nor can she change anything by posting to it: she is sent to the same refusal, and nothing changes.
    response = client.post(
        reverse("admin:courses_membership_change", args=[member.pk]), {"role": "instructor"}, follow=True
    )
    assert response.status_code == 403
    member.refresh_from_db()
    assert member.role == who


def test_the_operator_still_has_the_admin(client, operator):
    client.force_login(operator)
    assert client.get(reverse("admin:index")).status_code == 200


def test_no_course_page_links_staff_to_the_admin(client, course, instructor):
    client.force_login(instructor.user)
    for name in ("courses:dashboard", "courses:roster", "courses:deadlines", "courses:extensions", "courses:audit"):
        page = client.get(reverse(name, args=[course.slug])).content.decode()
        assert "/admin/" not in page, name
