"""Generated from the URL configuration: every view declares who may see it, and the rule holds for every role."""

import pytest
from django.contrib.auth import views as auth_views
from django.test import Client

from tests.security.conftest import RAW_MARKERS, fill, url_patterns

# Django's own sign-in pages carry no course rule: they are public by nature, and listed here by name.
DJANGO_AUTH_VIEWS = {
    auth_views.LogoutView,
    auth_views.PasswordResetView,
    auth_views.PasswordResetDoneView,
    auth_views.PasswordResetConfirmView,
    auth_views.PasswordResetCompleteView,
}
PATTERNS = url_patterns()
IDS = [name for name, _, _ in PATTERNS]
ROLES = ("student", "judge", "ta")
# Refusals decided by the object, not the role: a judge opens the course's pages but never a student's paper review.
OBJECT_LEVEL_REFUSALS = {("projects:review_file", "judge")}


def rule_of(view):
    rule = getattr(view, "access_rule", None)
    view_class = getattr(view, "view_class", None)
    if rule is None and view_class is not None and issubclass(view_class, tuple(DJANGO_AUTH_VIEWS)):
        return ("django_auth", ())
    return rule


def test_every_view_declares_its_access_rule():
    missing = [name for name, _, view in PATTERNS if rule_of(view) is None]
    assert missing == [], f"views without a permission decorator (courses.permissions): {missing}"


def test_the_url_configuration_is_walked_whole():
    names = set(IDS)
    assert {"labs:lab", "labs:queue", "api:submissions", "projects:staff_completion_csv", "login"} <= names


def clients(world_members) -> dict[str, Client]:
    out = {"anonymous": Client()}
    for role, member in world_members.items():
        client = Client()
        client.force_login(member.user)
        out[role] = client
    return out


def is_sign_in_redirect(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(("name", "route", "view"), PATTERNS, ids=IDS)
def test_each_url_answers_each_role_as_its_rule_says(world, student, judge, ta, outsider, name, route, view):
    url = fill(route, name, world)
    kind, roles = rule_of(view)
    people = clients({"student": student, "judge": judge, "ta": ta, "outsider": outsider})
    answers = {who: client.get(url) for who, client in people.items()}
    codes = {who: r.status_code for who, r in answers.items()}
    assert all(code < 500 for code in codes.values()), codes
    if kind == "course":
        assert is_sign_in_redirect(answers["anonymous"]), codes
        assert codes["outsider"] in (403, 404), codes
        members = {"student": student, "judge": judge, "ta": ta}
        for who, member in members.items():
            allowed = not roles or member.role in roles
            if (name, who) in OBJECT_LEVEL_REFUSALS:
                assert codes[who] == 403, (who, codes)
            elif allowed:
                assert codes[who] in (200, 302, 404, 405) and not is_sign_in_redirect(answers[who]), (who, codes)
            else:
                assert codes[who] == 403, (who, codes)
    elif kind == "signed_in":
        assert is_sign_in_redirect(answers["anonymous"]), codes
        assert all(codes[who] in (200, 302) for who in ROLES), codes
    elif kind == "token":
        assert codes["anonymous"] == 401, codes
        # A browser session is not a token: signed-in people get 401 too.
        assert all(codes[who] == 401 for who in ROLES), codes
    elif kind == "public":
        assert codes["anonymous"] in (200, 302), codes
    elif kind == "signed_message":
        # Without a signed message there is nothing to act on, for anyone.
        assert all(code in (400, 405) for code in codes.values()), codes
    else:
        assert kind == "django_auth"
        assert codes["anonymous"] in (200, 302, 405), codes


def test_a_judge_is_refused_every_lab_page_and_a_student_every_staff_page(world, student, judge):
    """The two refusals the course cares most about, stated plainly on top of the generated matrix."""
    student_client, judge_client = Client(), Client()
    student_client.force_login(student.user)
    judge_client.force_login(judge.user)
    for name, route, view in PATTERNS:
        kind, roles = rule_of(view)
        url = fill(route, name, world)
        if name.startswith("labs:"):
            assert judge_client.get(url).status_code == 403, name
        if kind == "course" and roles and "student" not in roles:
            assert student_client.get(url).status_code == 403, name


@pytest.mark.parametrize("role", ["student", "student2", "ta", "judge"])
def test_hostile_text_is_escaped_on_every_page_a_role_can_reach(world, request, role):
    member = request.getfixturevalue(role)
    client = Client()
    client.force_login(member.user)
    seen = escaped = 0
    for name, route, view in PATTERNS:
        if rule_of(view)[0] == "token":
            continue
        response = client.get(fill(route, name, world), HTTP_HX_REQUEST="true" if name.endswith("mine") else "")
        body = response.content.decode("utf-8", "replace") if hasattr(response, "content") else ""
        if response.status_code != 200 or not response.get("Content-Type", "").startswith("text/html"):
            continue
        seen += 1
        for raw in RAW_MARKERS:
            assert raw not in body, f"{name} shows {raw!r} unescaped to the {role}"
        escaped += "&lt;script&gt;alert(1)" in body
    assert seen >= 4
    assert escaped >= 1, "the hostile text is shown (escaped) on at least one page, so the check is not vacuous"


@pytest.mark.parametrize(("name", "route", "view"), PATTERNS, ids=IDS)
def test_every_state_changing_form_needs_a_csrf_token(world, student, ta, name, route, view):
    kind, roles = rule_of(view)
    if kind == "token":
        pytest.skip("the token API authenticates each request by its header, not a cookie")
    if kind == "signed_message":
        pytest.skip("an LTI launch is posted from the LMS's site; its signed id_token and state are its proof")
    client = Client(enforce_csrf_checks=True)
    if kind == "course":
        client.force_login((student if not roles or "student" in roles else ta).user)
    elif kind == "signed_in":
        client.force_login(student.user)
    response = client.post(fill(route, name, world), {"name": "x", "reason": "x"})
    assert response.status_code == 403, (name, response.status_code)


# ------------------------------------------------------------------------ endpoints that change who has which role
# Each is posted by every role with a file that would promote a student to TA: only an instructor may, a TA is
# refused line by line, everyone else is refused outright, and a refusal changes nothing at all.

ROLE_CHANGING_ENDPOINTS = ("courses:roster",)
PROMOTION = b"email,name,role,registered\nada.lovelace@example.edu,Forged Name,ta,no\n"
ENROLMENT = b"email,name,role,registered\nnew.student@example.edu,New Student,student,yes\n"
# who -> (status of the promotion, status of a students-only file)
EXPECTED = {
    "anonymous": ("sign-in", "sign-in"),
    "student": (403, 403),
    "judge": (403, 403),
    "other course's TA": (403, 403),
    "ta": (200, 302),
    "instructor": (302, 302),
}


def platform_state() -> tuple:
    from django.contrib.auth import get_user_model

    from courses.models import AuditEntry, Membership

    users = list(get_user_model().objects.order_by("pk").values())
    members = list(Membership.objects.order_by("pk").values("user_id", "course_id", "role", "registered_for_credit"))
    return users, members, AuditEntry.objects.count()


def test_the_role_changing_endpoints_are_in_the_url_configuration():
    assert set(ROLE_CHANGING_ENDPOINTS) <= set(IDS)


@pytest.mark.parametrize("name", ROLE_CHANGING_ENDPOINTS)
@pytest.mark.parametrize("who", EXPECTED)
@pytest.mark.parametrize("upload", ["promotion", "enrolment"])
def test_role_changes_answer_each_role_and_a_refusal_changes_nothing(
    request, course, student, judge, ta, instructor, other_ta, name, who, upload
):
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    from courses.models import AuditEntry, Membership

    actors = {"student": student, "judge": judge, "ta": ta, "instructor": instructor, "other course's TA": other_ta}
    client = Client()
    if who in actors:
        client.force_login(actors[who].user)
    data = PROMOTION if upload == "promotion" else ENROLMENT
    before = platform_state()
    response = client.post(
        reverse(name, args=[course.slug]), {"file": SimpleUploadedFile("roster.csv", data, "text/csv")}
    )
    expected = EXPECTED[who][0 if upload == "promotion" else 1]
    if expected == "sign-in":
        assert is_sign_in_redirect(response)
    else:
        assert response.status_code == expected, response.status_code
    if expected != 302:
        assert platform_state() == before
        if who == "ta":
            assert "only an instructor can make someone a TA" in response.content.decode()
        return
    assert get_user_model_name(student) == "Ada Lovelace"
    if upload == "promotion":
        student.refresh_from_db()
        assert student.role == "ta"
        entry = AuditEntry.objects.get(action="member.update", target=student.user.email)
        assert (entry.actor, entry.before["role"], entry.after["role"]) == (instructor.user, "student", "ta")
    else:
        added = Membership.objects.get(user__email="new.student@example.edu")
        assert (added.course, added.role) == (course, "student")
        assert AuditEntry.objects.get(action="member.add").actor == actors[who].user


def get_user_model_name(member) -> str:
    member.user.refresh_from_db()
    return member.user.get_full_name()
