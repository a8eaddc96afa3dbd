"""LTI 1.3 launches from a real platform on loopback: she lands on her course signed in; forged, replayed and
misdirected launches are refused."""

import jwt
import pytest
import requests
from bs4 import BeautifulSoup
from django.test import Client

from courses.models import Membership, Role
from lms.models import LmsIdentity, Section
from tests.conftest import make_member
from tests.factories import make_music_lab
from tests.lms.conftest import signed_launch
from tests.lms.platform import INSTRUCTOR, LoopbackLms, launch_form


def test_the_jwks_publishes_the_key_the_registration_signs_with(deployed, client):
    keys = client.get("/lti/jwks/").json()["keys"]
    assert [key["kid"] for key in keys] == [deployed.registration.tool_kid]
    assert keys[0]["kty"] == "RSA" and "d" not in keys[0]


def test_a_learner_lands_on_her_course_signed_in_with_a_cross_site_cookie(deployed, lms, client, course, student):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="lms-user-7", email=student.user.email)
    answer = client.post("/lti/launch/", fields)
    assert answer.status_code == 302
    assert answer["Location"] == f"/courses/{course.slug}/"
    cookie = answer.cookies["sessionid"]
    assert cookie["samesite"] == "None" and cookie["secure"] is True
    page = client.get(answer["Location"])
    assert page.status_code == 200
    assert page.wsgi_request.user == student.user
    assert f"frame-ancestors {lms.base_url};" in page["Content-Security-Policy"]
    assert "X-Frame-Options" not in page
    assert LmsIdentity.objects.get(subject="lms-user-7").user == student.user
    section = Section.objects.get(context_id="ctx-1")
    assert section.memberships_url == f"{lms.base_url}/memberships/ctx-1"
    assert section.lineitems_url == f"{lms.base_url}/lineitems/ctx-1"


def test_a_link_naming_a_lab_lands_on_that_lab(deployed, lms, client, course, student):
    make_music_lab(course)
    fields = signed_launch(
        lms, client, deployment_id="dep-1", sub="u1", email=student.user.email, custom={"lab": "lab1-music"}
    )
    assert client.post("/lti/launch/", fields)["Location"] == f"/courses/{course.slug}/labs/lab1-music/"


def test_a_new_learner_becomes_a_student_of_the_deployments_course_only(deployed, lms, client, course, other_course):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="new-1", email="new@uni.example", name="New One")
    assert client.post("/lti/launch/", fields).status_code == 302
    member = Membership.objects.get(user__email="new@uni.example")
    assert (member.course, member.role) == (course, Role.STUDENT)
    assert course.audit_entries.filter(action="member.add", target="new@uni.example").exists()


def test_a_replayed_launch_is_refused(deployed, lms, client, course, student):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="u1", email=student.user.email)
    assert client.post("/lti/launch/", fields).status_code == 302
    client.logout()
    replay = client.post("/lti/launch/", fields)
    assert replay.status_code == 400
    assert b"already used" in replay.content
    assert "_auth_user_id" not in client.session


def test_a_launch_for_another_audience_is_refused(deployed, lms, client, student):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="u1", email=student.user.email)
    claims = jwt.decode(fields["id_token"], options={"verify_signature": False})
    claims["aud"] = claims["azp"] = "another-tool"
    answer = client.post("/lti/launch/", {**fields, "id_token": lms.sign(claims)})
    assert answer.status_code == 400
    assert "_auth_user_id" not in client.session


def test_a_launch_signed_by_another_key_is_refused(deployed, lms, client, student):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="u1", email=student.user.email)
    claims = jwt.decode(fields["id_token"], options={"verify_signature": False})
    impostor = LoopbackLms(client_id=lms.client_id)
    try:
        # Same kid as the real LMS's key, so only the signature tells them apart.
        header = jwt.get_unverified_header(fields["id_token"])
        forged = jwt.encode(claims, impostor.private_key, algorithm="RS256", headers={"kid": header["kid"]})
    finally:
        impostor.close()
    answer = client.post("/lti/launch/", {**fields, "id_token": forged})
    assert answer.status_code == 400
    assert "_auth_user_id" not in client.session


def test_a_deployment_unknown_to_the_tool_is_refused(deployed, lms, client, student):
    fields = signed_launch(lms, client, deployment_id="dep-of-nobody", sub="u1", email=student.user.email)
    assert client.post("/lti/launch/", fields).status_code == 400
    assert not LmsIdentity.objects.exists()


def test_a_deployment_of_another_course_opens_that_course_only(deployed, lms, client, course, other_course, student):
    from lms.services import register_deployment

    register_deployment(course=other_course, actor=None, deployment_id="dep-2", **lms.endpoints())
    make_music_lab(course)
    fields = signed_launch(
        lms, client, deployment_id="dep-2", sub="x1", email="x@uni.example", custom={"lab": "lab1-music"}
    )
    answer = client.post("/lti/launch/", fields)
    assert answer["Location"] == f"/courses/{other_course.slug}/"
    assert list(Membership.objects.filter(user__email="x@uni.example").values_list("course", flat=True)) == [
        other_course.pk
    ]
    assert client.get(f"/courses/{course.slug}/labs/lab1-music/").status_code == 403


def test_an_lms_instructor_is_not_signed_in_by_a_launch(deployed, lms, client, course, instructor):
    fields = signed_launch(
        lms, client, deployment_id="dep-1", sub="t1", email=instructor.user.email, roles=[INSTRUCTOR]
    )
    answer = client.post("/lti/launch/", fields)
    assert answer.status_code == 403
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("email_owner", ["ta", "superuser"])
def test_a_learner_launch_never_opens_a_staff_account_by_its_address(deployed, lms, client, course, email_owner):
    from django.contrib.auth import get_user_model

    if email_owner == "ta":
        user = make_member(course, "ta2@uni.example", Role.TA).user
    else:
        user = get_user_model().objects.create_superuser("root", "root@uni.example", "x-long-password-1")
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="evil", email=user.email)
    assert client.post("/lti/launch/", fields).status_code == 403
    assert "_auth_user_id" not in client.session


def test_a_framed_launch_whose_browser_kept_no_cookie_is_explained_in_the_frame_with_a_way_out(
    deployed, lms, client, course, student
):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="u1", email=student.user.email)
    client.cookies.clear()  # third-party cookies blocked in the LMS's frame: the login's cookies never come back
    answer = client.post("/lti/launch/", fields, secure=True)
    assert answer.status_code == 400
    assert b"third-party cookies are blocked" in answer.content
    assert "_auth_user_id" not in client.session and not LmsIdentity.objects.exists()
    # The LMS of this launch, and no other site, may frame the refusal.
    policy = answer["Content-Security-Policy"]
    assert f"frame-ancestors {lms.base_url};" in policy and "'none'" not in policy.split("frame-ancestors")[1][:20]
    assert "X-Frame-Options" not in answer
    # Its link opens the same login in a new window, where the cookie is first-party and the launch goes through.
    page = BeautifulSoup(answer.content, "html.parser")
    [link] = page.select('a[target="_blank"]')
    assert link["rel"] == ["noopener"]
    new_window = Client()
    start = new_window.get(link["href"])  # (over http: the LMS has the tool's http launch URL registered)
    assert start.status_code == 302 and start["Location"].startswith(lms.base_url + "/auth?")
    action, launch = launch_form(requests.get(start["Location"], timeout=10).text)
    assert action == "http://testserver/lti/launch/"
    landing = new_window.post("/lti/launch/", launch)
    assert landing.status_code == 302 and landing["Location"] == f"/courses/{course.slug}/"
    assert new_window.get(landing["Location"]).wsgi_request.user == student.user


def test_a_launch_refused_for_another_reason_stays_unframeable_and_offers_no_new_window(deployed, lms, client, student):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="u1", email=student.user.email)
    claims = jwt.decode(fields["id_token"], options={"verify_signature": False})
    claims["aud"] = claims["azp"] = "another-tool"
    answer = client.post("/lti/launch/", {**fields, "id_token": lms.sign(claims)})  # its cookie came back
    assert answer.status_code == 400 and b"could not be verified" in answer.content
    assert "frame-ancestors 'none'" in answer["Content-Security-Policy"]
    assert answer["X-Frame-Options"] == "DENY" and b'target="_blank"' not in answer.content
    # Nor does a cookie-less launch naming a state this site never issued.
    client.cookies.clear()
    forged = client.post("/lti/launch/", {**fields, "state": "state-made-up"}, secure=True)
    assert forged.status_code == 400 and "frame-ancestors 'none'" in forged["Content-Security-Policy"]
    assert b'target="_blank"' not in forged.content


@pytest.mark.parametrize(
    "claim, value", [("iss", "https://another-lms.example"), ("nonce", "never-issued-by-the-tool")]
)
def test_a_launch_naming_another_issuer_or_a_nonce_the_tool_never_issued_is_refused(
    deployed, lms, client, student, claim, value
):
    fields = signed_launch(lms, client, deployment_id="dep-1", sub="u1", email=student.user.email)
    claims = jwt.decode(fields["id_token"], options={"verify_signature": False})
    claims[claim] = value  # signed by the real LMS's key: only the claim is wrong
    answer = client.post("/lti/launch/", {**fields, "id_token": lms.sign(claims)})
    assert answer.status_code == 400
    assert "_auth_user_id" not in client.session and not LmsIdentity.objects.exists()
