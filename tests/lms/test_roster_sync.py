"""Names and Role Provisioning: the LMS's roster imported with the CSV import's rules, from a real LTI platform."""

import pytest
from pylti1p3.exception import LtiException

from courses.models import Membership, Role
from lms.models import LmsIdentity
from lms.roster import sync_roster
from lms.tool import every_page, next_page_url
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


def five_learners():
    return [person(f"s-{n}", f"learner{n}@uni.example", [LEARNER], name=f"Learner {n}") for n in range(1, 6)]


def test_a_roster_over_three_pages_is_imported_whole(section, lms, course, ta):
    lms.members["ctx-1"] = five_learners()
    lms.page_size = 2
    result = sync_roster(section=section, actor=ta.user)
    assert sorted(result.roster.created) == [f"learner{n}@uni.example" for n in range(1, 6)]
    pages = [query for method, query in lms.requests if query.startswith("/memberships/")]
    assert len(pages) == 3 and all("bookmark" in page for page in pages[1:])  # the cursor's case kept
    assert Membership.objects.filter(course=course, user__email__startswith="learner", role=Role.STUDENT).count() == 5
    assert LmsIdentity.objects.filter(subject__startswith="s-").count() == 5


def test_a_roster_page_that_fails_midway_changes_nothing(section, lms, course, ta, client, login):
    lms.members["ctx-1"] = five_learners()
    lms.page_size, lms.failing_page = 2, 2
    members_before = set(Membership.objects.filter(course=course).values_list("pk", "role"))
    audit_before = course.audit_entries.count()
    login(ta)
    answer = client.post(f"/courses/{course.slug}/staff/lms/sections/{section.pk}/roster/", follow=True)
    assert b"The LMS did not answer as expected" in answer.content
    assert set(Membership.objects.filter(course=course).values_list("pk", "role")) == members_before
    assert not LmsIdentity.objects.filter(subject__startswith="s-").exists()
    assert course.audit_entries.count() == audit_before
    lms.failing_page = None
    assert len(sync_roster(section=section, actor=ta.user).roster.created) == 5


def test_a_next_page_is_read_relative_to_its_page_and_never_on_another_site():
    here = "https://lms.example/memberships/ctx-1"
    assert next_page_url(here, '<?page=B2>; rel="next"') == here + "?page=B2"
    assert next_page_url(here, '<https://x.example/a?page=A1>; rel="first"') is None
    with pytest.raises(LtiException):
        next_page_url(here, '<https://collector.example/steal?page=2>; rel="next"')


def test_a_list_that_comes_back_to_a_page_it_gave_is_an_error_not_a_loop():
    pages = {"https://lms.example/m": (["a"], "https://lms.example/m?p=2"), "https://lms.example/m?p=2": (["b"], None)}
    assert every_page(pages.get, "https://lms.example/m") == ["a", "b"]
    pages["https://lms.example/m?p=2"] = (["b"], "https://lms.example/m")
    with pytest.raises(LtiException):
        every_page(pages.get, "https://lms.example/m")
