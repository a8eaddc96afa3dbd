"""Deep linking from a real platform on loopback: the LMS's staff place a lab or the final project in a module, the
LMS checks the tool's signed answer, and a student who opens the placed link lands on what it names."""

import html
import re

import jwt
import requests

from lms.grades import sync_grades
from lms.models import LineItem
from tests.factories import make_music_lab
from tests.lms.conftest import signed_launch
from tests.lms.platform import INSTRUCTOR, LEARNER, TEACHING_ASSISTANT

DL_CLAIM = "https://purl.imsglobal.org/spec/lti-dl/claim/"


def selection(lms, client, roles=(INSTRUCTOR,), sub="lms-teacher"):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub=sub, roles=list(roles), deep_link=True)
    return client.post("/lti/launch/", fields)


def launch_id_of(page) -> str:
    return re.search(r'name="launch_id" value="([^"]+)"', page.content.decode())[1]


def return_form(page) -> tuple[str, str]:
    body = page.content.decode()
    action = html.unescape(re.search(r'<form id="lms-deep-link-return" method="post" action="([^"]+)"', body)[1])
    return action, html.unescape(re.search(r'name="JWT" value="([^"]+)"', body)[1])


def test_an_lms_instructor_places_a_lab_and_the_lms_accepts_the_signed_answer(deployed, lms, client, course):
    make_music_lab(course)
    page = selection(lms, client)
    assert page.status_code == 200
    assert b"Lab 1" in page.content and b"Final project" in page.content
    answer = client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "lab:lab1-music"})
    assert answer.status_code == 200
    action, token = return_form(answer)
    assert action == lms.base_url + "/deep_link_return"
    assert f"form-action 'self' {lms.base_url}" in answer["Content-Security-Policy"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims[DL_CLAIM + "data"]["request"]  # the request's data comes back as the spec asks
    accepted = requests.post(action, data={"JWT": token}, timeout=10)
    assert accepted.status_code == 200, accepted.text
    [placed] = lms.placed
    assert placed["type"] == "ltiResourceLink"
    assert placed["url"] == "http://testserver/lti/launch/"
    assert placed["custom"] == {"lab": "lab1-music"}
    assert placed["lineItem"]["scoreMaximum"] == 1 and placed["lineItem"]["tag"] == "lab:lab1-music"
    assert course.audit_entries.filter(action="lms.deep_link").exists()
    # The same signed answer posted again is refused by the LMS (its request is answered, its nonce used).
    assert requests.post(action, data={"JWT": token}, timeout=10).status_code == 400
    # The choice is good once: the same launch cannot answer again.
    again = client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "project"})
    assert again.status_code == 400


def test_a_student_opening_the_placed_link_lands_on_the_lab(deployed, lms, client, course, student):
    make_music_lab(course)
    page = selection(lms, client, roles=(TEACHING_ASSISTANT,))
    answer = client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "lab:lab1-music"})
    action, token = return_form(answer)
    assert requests.post(action, data={"JWT": token}, timeout=10).status_code == 200
    client.logout()
    [placed] = lms.placed
    fields = signed_launch(
        lms, client, deployment_id="dep-1", sub="lms-student", email=student.user.email, custom=placed["custom"]
    )
    assert client.post("/lti/launch/", fields)["Location"] == f"/courses/{course.slug}/labs/lab1-music/"


def test_the_project_is_placed_with_its_column_which_the_grade_sync_then_reuses(
    deployed, lms, client, course, student, ta
):
    page = selection(lms, client)
    answer = client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "project"})
    action, token = return_form(answer)
    assert requests.post(action, data={"JWT": token}, timeout=10).status_code == 200
    [placed] = lms.placed
    assert placed["custom"] == {"project": "final"}
    client.logout()
    fields = signed_launch(
        lms, client, deployment_id="dep-1", sub="lms-student", email=student.user.email, custom=placed["custom"]
    )
    assert client.post("/lti/launch/", fields)["Location"] == f"/courses/{course.slug}/project/"
    from lms.models import Section

    sync_grades(section=Section.objects.get(context_id="ctx-1"), actor=ta.user)
    assert [item["tag"] for item in lms.line_items["ctx-1"]] == ["project"]
    assert LineItem.objects.get(key="project").url == placed["line_item_id"]


def test_a_learner_never_reaches_the_selection(deployed, lms, client, course, student):
    page = selection(lms, client, roles=(LEARNER,), sub="lms-student")
    assert page.status_code == 403
    assert b"launch_id" not in page.content
    assert "_auth_user_id" not in client.session
    assert client.post("/lti/deep-link/", {"launch_id": "anything", "item": "project"}).status_code == 400
    assert lms.placed == []


def test_a_choice_from_another_browser_or_off_the_list_changes_nothing(deployed, lms, client, course):
    from django.test import Client

    page = selection(lms, client)
    stranger = Client()
    assert stranger.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "project"}).status_code == 400
    wrong = client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "lab:not-a-lab"})
    assert wrong.status_code == 400 and b"Choose one of the listed items" in wrong.content
    assert not course.audit_entries.filter(action="lms.deep_link").exists()
    # The launch is still open after a wrong choice.
    assert client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "project"}).status_code == 200


def test_the_lms_refuses_an_answer_signed_by_another_key(deployed, lms, client, course):
    page = selection(lms, client)
    answer = client.post("/lti/deep-link/", {"launch_id": launch_id_of(page), "item": "project"})
    action, token = return_form(answer)
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    forged = jwt.encode(claims, lms.private_key, algorithm="RS256", headers={"kid": header["kid"]})
    assert requests.post(action, data={"JWT": forged}, timeout=10).status_code == 400
    assert lms.placed == []
