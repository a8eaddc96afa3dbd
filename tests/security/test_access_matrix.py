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
    if rule is None and getattr(view, "view_class", None) in DJANGO_AUTH_VIEWS:
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
    client = Client(enforce_csrf_checks=True)
    if kind == "course":
        client.force_login((student if not roles or "student" in roles else ta).user)
    elif kind == "signed_in":
        client.force_login(student.user)
    response = client.post(fill(route, name, world), {"name": "x", "reason": "x"})
    assert response.status_code == 403, (name, response.status_code)
