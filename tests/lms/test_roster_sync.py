"""Names and Role Provisioning: the LMS's roster imported with the CSV import's rules, from a real LTI platform."""

from courses.models import Membership, Role
from lms.models import LmsIdentity
from lms.roster import sync_roster
from tests.conftest import make_member
from tests.lms.platform import LEARNER, TEACHING_ASSISTANT


def person(user_id, email, roles, name="Some One"):
    return {"user_id": user_id, "email": email, "name": name, "roles": roles, "status": "Active"}


def test_learners_become_students_and_staff_roles_wait_for_an_instructor(section, lms, course, ta):
    lms.members["ctx-1"] = [
        person("s-new", "new@uni.example", [LEARNER], name="New Student"),
        person("t-new", "newta@uni.example", [TEACHING_ASSISTANT]),
    ]
    result = sync_roster(section=section, actor=ta.user, apply_staff_roles=True)
    assert result.roster.created == ["new@uni.example"]
    assert result.staff_to_confirm == ["newta@uni.example (ta)"]
    assert Membership.objects.get(course=course, user__email="new@uni.example").role == Role.STUDENT
    assert not Membership.objects.filter(user__email="newta@uni.example").exists()
    assert LmsIdentity.objects.get(subject="s-new").user.email == "new@uni.example"
    assert course.audit_entries.filter(action="member.add", target="new@uni.example", actor=ta.user).exists()
    assert course.audit_entries.filter(action="lms.roster.sync").exists()


def test_an_instructor_confirms_the_lms_staff_roles(section, lms, course, instructor):
    lms.members["ctx-1"] = [person("t-new", "newta@uni.example", [TEACHING_ASSISTANT])]
    sync_roster(section=section, actor=instructor.user, apply_staff_roles=True)
    assert Membership.objects.get(course=course, user__email="newta@uni.example").role == Role.TA


def test_the_lms_never_demotes_the_courses_instructor(section, lms, course, instructor, ta):
    lms.members["ctx-1"] = [person("i-1", instructor.user.email, [LEARNER])]
    result = sync_roster(section=section, actor=ta.user)
    instructor.refresh_from_db()
    assert instructor.role == Role.INSTRUCTOR
    assert result.kept_staff == [instructor.user.email]


def test_a_roster_naming_another_courses_member_changes_nothing_of_that_course(
    section, lms, course, other_course, instructor
):
    elsewhere = make_member(other_course, "prof.other@uni.example", Role.INSTRUCTOR)
    name_before = elsewhere.user.get_full_name()
    lms.members["ctx-1"] = [person("o-1", "prof.other@uni.example", [LEARNER], name="Forged Name")]
    sync_roster(section=section, actor=instructor.user, apply_staff_roles=True)
    elsewhere.refresh_from_db()
    elsewhere.user.refresh_from_db()
    assert elsewhere.role == Role.INSTRUCTOR and elsewhere.course == other_course
    assert elsewhere.user.get_full_name() == name_before
    assert Membership.objects.get(course=course, user=elsewhere.user).role == Role.STUDENT
    assert not other_course.audit_entries.exists()
    # Her LMS id is not linked: a staff account elsewhere is not opened by a learner's launch.
    assert not LmsIdentity.objects.filter(subject="o-1").exists()
