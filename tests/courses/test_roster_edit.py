"""Editing and removing one member on the roster: the roles rule, the last instructor, the audit log, one course."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from courses.models import AuditEntry, Membership, Role
from courses.roster import edit_member, remove_member
from labs.models import ApiToken
from tests.conftest import make_member
from tests.factories import token_for


def edit_url(member):
    return reverse("courses:roster_member", args=[member.course.slug, member.pk])


def remove_url(member):
    return reverse("courses:roster_remove", args=[member.course.slug, member.pk])


def test_a_ta_edits_a_students_display_name_and_registration_and_it_is_audited(login, course, ta, student):
    chosen = student.display_name
    response = login(ta).post(edit_url(student), {"display_name": "  Ada L. ", "role": "student", "registered": ""})
    assert response.status_code == 302 and response["Location"] == reverse("courses:roster", args=[course.slug])
    student.refresh_from_db()
    assert (student.display_name, student.role, student.registered_for_credit) == ("Ada L.", "student", False)
    entry = AuditEntry.objects.get(action="member.update")
    assert entry.actor == ta.user and entry.target == student.user.email
    assert entry.before == {"role": "student", "registered": True, "display name": chosen}
    assert entry.after == {"role": "student", "registered": False, "display name": "Ada L."}
    roster = login(ta).get(reverse("courses:roster", args=[course.slug])).content.decode()
    assert f'href="{edit_url(student)}"' in roster and "Ada L." in roster


def test_a_display_name_someone_else_uses_is_refused_and_nothing_changes(login, course, ta, student, student2):
    Membership.objects.filter(pk=student2.pk).update(display_name="Turing Fan")
    response = login(ta).post(edit_url(student), {"display_name": "turing fan", "role": "student", "registered": "on"})
    assert response.status_code == 200
    assert "Someone in this course already uses that display name; choose another." in response.content.decode()
    student.refresh_from_db()
    assert student.display_name != "turing fan"
    assert not AuditEntry.objects.filter(action="member.update").exists()


def test_a_ta_cannot_make_a_ta_nor_edit_an_instructor(course, ta, instructor, student):
    with pytest.raises(ValidationError, match="Only an instructor can make someone a TA"):
        edit_member(course=course, member=student, actor=ta.user, display_name="", role="ta", registered=True)
    with pytest.raises(ValidationError, match="only an instructor can change the role or registration"):
        edit_member(
            course=course, member=instructor, actor=ta.user, display_name="Prof", role="instructor", registered=False
        )
    with pytest.raises(ValidationError, match="only an instructor can remove a TA or an instructor"):
        remove_member(course=course, member=instructor, actor=ta.user)
    assert Membership.objects.filter(pk=instructor.pk, role=Role.INSTRUCTOR).exists()
    assert Membership.objects.get(pk=student.pk).role == Role.STUDENT


def test_the_last_instructor_is_never_demoted_nor_removed(course, instructor, ta):
    # Not by herself (nobody changes her own role), and not by the operator either.
    with pytest.raises(ValidationError, match="You cannot change your own role"):
        edit_member(
            course=course, member=instructor, actor=instructor.user, display_name="", role="ta", registered=False
        )
    with pytest.raises(ValidationError, match="last instructor and cannot be made a TA"):
        edit_member(course=course, member=instructor, actor=None, display_name="", role="ta", registered=False)
    with pytest.raises(ValidationError, match="last instructor and cannot be removed"):
        remove_member(course=course, member=instructor, actor=None)
    with pytest.raises(ValidationError, match="You cannot remove yourself"):
        remove_member(course=course, member=instructor, actor=instructor.user)
    assert Membership.objects.get(pk=instructor.pk).role == Role.INSTRUCTOR
    # With a second instructor, the first may be made a TA by her.
    second = make_member(course, "second.instructor@example.edu", Role.INSTRUCTOR, registered=False)
    edit_member(course=course, member=instructor, actor=second.user, display_name="", role="ta", registered=False)
    assert Membership.objects.get(pk=instructor.pk).role == Role.TA


def test_removal_asks_first_with_what_is_deleted_then_removes_and_audits(login, course, ta, student):
    token_for(student)
    client = login(ta)
    asked = client.post(remove_url(student)).content.decode()
    assert f"<h1>Remove {student.user.email} from {course.name}?</h1>" in asked
    assert "Deleted with her membership: 1 api token." in asked
    assert Membership.objects.filter(pk=student.pk).exists() and ApiToken.objects.count() == 1
    response = client.post(remove_url(student), {"confirm": "yes"})
    assert response["Location"] == reverse("courses:roster", args=[course.slug])
    assert not Membership.objects.filter(pk=student.pk).exists()
    assert ApiToken.objects.count() == 0
    student.user.refresh_from_db()  # her account stays
    entry = AuditEntry.objects.get(action="member.remove")
    assert entry.actor == ta.user and entry.target == student.user.email and entry.before["role"] == "student"


def test_students_and_judges_cannot_open_nor_use_the_roster_pages(client, login, student, student2, judge):
    assert client.get(edit_url(student2)).status_code == 302
    for someone in (student, judge):
        browser = login(someone)
        assert browser.get(edit_url(student2)).status_code == 403
        assert browser.post(edit_url(student2), {"display_name": "x", "role": "ta"}).status_code == 403
        assert browser.post(remove_url(student2), {"confirm": "yes"}).status_code == 403
    assert Membership.objects.get(pk=student2.pk).role == Role.STUDENT


def test_another_courses_member_is_not_found_from_this_courses_roster(login, course, ta, outsider):
    # The URL names this course and the other course's membership number: not found, nothing changes.
    staff = login(ta)
    chosen = outsider.display_name
    url = reverse("courses:roster_member", args=[course.slug, outsider.pk])
    assert staff.get(url).status_code == 404
    assert staff.post(url, {"display_name": "x", "role": "student"}).status_code == 404
    remove = reverse("courses:roster_remove", args=[course.slug, outsider.pk])
    assert staff.post(remove, {"confirm": "yes"}).status_code == 404
    assert Membership.objects.filter(pk=outsider.pk, display_name=chosen).exists()
    with pytest.raises(ValidationError, match="not a member of this course"):
        remove_member(course=course, member=outsider, actor=ta.user)
