"""Institution sign-in end to end: the site against a real OpenID Connect provider (tests/oidc_provider, node's
oidc-provider) in its own process on loopback, driven by a real HTTP client through every redirect."""

import html
import json
import re
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
from axes.models import AccessAttempt
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import reverse

from courses import institution
from courses.identities import NOT_LINKABLE
from courses.models import InstitutionIdentity, Role
from tests.conftest import PASSWORD, make_member

PROVIDER_DIR = Path(__file__).resolve().parents[1] / "oidc_provider"
CLIENT_ID = "course-platform"
CLIENT_SECRET = "a-client-secret-long-enough-for-the-provider"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def provider(live_server, settings):
    """Starts a provider (``provider(accounts, fault=None)``) and points the site at it; returns its issuer."""
    started = []

    def start(accounts: dict, fault: str | None = None) -> str:
        port = free_port()
        config = {
            "port": port,
            "clients": [
                {
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [f"{live_server.url}/accounts/institution/callback/"],
                }
            ],
            "accounts": accounts,
            "fault": fault,
        }
        process = subprocess.Popen(
            ["node", "provider.js", json.dumps(config)],
            cwd=PROVIDER_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        issuer = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"{issuer}/.well-known/openid-configuration", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                assert process.poll() is None, process.stdout.read().decode()
                time.sleep(0.1)
        settings.OIDC_ISSUER = issuer
        settings.OIDC_RP_CLIENT_ID = CLIENT_ID
        settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
        settings.INSTITUTION_NAME = "Example University"
        institution._metadata.cache_clear()
        return issuer

    yield start
    institution._metadata.cache_clear()
    for process in started:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def sign_in_with_institution(live_server):
    """What her browser does (``sign_in_with_institution(sub)``): the site's button, the provider's sign-in page
    where she is ``sub``, and back to the site. Returns the last page and the browser."""
    from django.db import connection

    # A live-server thread lives as long as its kept-alive socket, which Session.close() does not end while a
    # response still holds it; with persistent connections (CONN_MAX_AGE) the thread's database connection lives on
    # too, past the run's end, and the test database cannot be dropped. Each request here closes its own.
    kept = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 0
    browsers = []

    def sign_in(sub: str) -> tuple[requests.Response, requests.Session]:
        browser = requests.Session()
        browsers.append(browser)
        return _sign_in(browser, live_server.url, sub), browser

    yield sign_in
    for browser in browsers:
        browser.close()
    connection.settings_dict["CONN_MAX_AGE"] = kept


def _sign_in(browser: requests.Session, site: str, sub: str) -> requests.Response:
    page = browser.get(f"{site}/accounts/institution/", timeout=10)
    assert page.url.startswith("http://127.0.0.1:"), page.url  # at the provider's sign-in page
    action = re.search(r'action="([^"]+)"', page.text).group(1)
    return browser.post(urljoin(page.url, html.unescape(action)), data={"login": sub}, timeout=10)


def signed_in_user_id(browser: requests.Session) -> int | None:
    key = browser.cookies.get("sessionid")
    if not key:
        return None
    user_id = SessionStore(session_key=key).get("_auth_user_id")
    return int(user_id) if user_id else None


@pytest.fixture
def roster(course):
    return {
        "student": make_member(course, "ada.lovelace@example.edu"),
        "ta": make_member(course, "grace.hopper@example.edu", Role.TA, registered=False),
    }


@pytest.mark.django_db(transaction=True)
def test_a_roster_student_with_a_verified_address_is_linked_by_sub_and_signed_in(
    live_server, provider, roster, sign_in_with_institution
):
    issuer = provider({"inst-0001": {"email": "Ada.Lovelace@example.edu", "email_verified": True}})

    page, browser = sign_in_with_institution("inst-0001")

    assert page.url == f"{live_server.url}/courses/dl/"  # home sends her on to her course
    assert signed_in_user_id(browser) == roster["student"].user.pk
    identity = InstitutionIdentity.objects.get(user=roster["student"].user)
    assert (identity.issuer, identity.subject) == (issuer, "inst-0001")


@pytest.mark.django_db(transaction=True)
def test_a_linked_sub_signs_in_as_its_account_whatever_address_it_now_claims(
    live_server, provider, roster, sign_in_with_institution
):
    issuer = provider({"inst-0001": {"email": "grace.hopper@example.edu", "email_verified": True}})
    InstitutionIdentity.objects.create(user=roster["student"].user, issuer=issuer, subject="inst-0001")

    page, browser = sign_in_with_institution("inst-0001")

    assert signed_in_user_id(browser) == roster["student"].user.pk


@pytest.mark.django_db(transaction=True)
def test_a_new_sub_with_an_unknown_address_gets_a_new_account_without_a_password(
    live_server, provider, roster, sign_in_with_institution
):
    issuer = provider({"inst-0042": {"email": "new.person@example.edu", "email_verified": True}})

    page, browser = sign_in_with_institution("inst-0042")

    identity = InstitutionIdentity.objects.get(issuer=issuer, subject="inst-0042")
    assert signed_in_user_id(browser) == identity.user.pk
    assert identity.user.email == "new.person@example.edu"
    assert not identity.user.has_usable_password()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["signature", "issuer", "audience", "nonce"])
def test_an_id_token_with_a_wrong_signature_issuer_audience_or_nonce_is_refused(
    live_server, provider, roster, sign_in_with_institution, fault
):
    provider({"inst-0001": {"email": "ada.lovelace@example.edu", "email_verified": True}}, fault=fault)

    page, browser = sign_in_with_institution("inst-0001")

    assert page.url == f"{live_server.url}/accounts/login/"
    assert "Signing in with Example University did not succeed" in page.text
    assert signed_in_user_id(browser) is None
    assert not InstitutionIdentity.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("verified", [False, True])
def test_an_address_of_a_staff_account_never_links_to_it(
    live_server, provider, roster, sign_in_with_institution, verified
):
    """Unverified, anyone could claim the TA's address; verified, a TA's account is still never linked by it."""
    provider({"attacker": {"email": "grace.hopper@example.edu", "email_verified": verified}})

    page, browser = sign_in_with_institution("attacker")

    assert page.url == f"{live_server.url}/accounts/login/"
    assert NOT_LINKABLE in html.unescape(page.text)
    assert signed_in_user_id(browser) is None
    assert not InstitutionIdentity.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_unverified_address_of_a_student_does_not_link_to_her(
    live_server, provider, roster, sign_in_with_institution
):
    provider({"attacker": {"email": "ada.lovelace@example.edu", "email_verified": False}})

    page, browser = sign_in_with_institution("attacker")

    assert signed_in_user_id(browser) is None
    assert not InstitutionIdentity.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_sub_cannot_take_over_an_account_already_linked(
    live_server, provider, roster, sign_in_with_institution
):
    issuer = provider(
        {
            "inst-0001": {"email": "ada.lovelace@example.edu", "email_verified": True},
            "inst-0666": {"email": "ada.lovelace@example.edu", "email_verified": True},
        }
    )
    first, _ = sign_in_with_institution("inst-0001")

    page, browser = sign_in_with_institution("inst-0666")

    assert page.url == f"{live_server.url}/accounts/login/"
    assert signed_in_user_id(browser) is None
    assert list(InstitutionIdentity.objects.values_list("user", "issuer", "subject")) == [
        (roster["student"].user.pk, issuer, "inst-0001")
    ]


@pytest.mark.django_db(transaction=True)
def test_refused_callbacks_are_not_failed_passwords_and_lock_nobody_out(
    live_server, provider, roster, sign_in_with_institution, settings
):
    settings.AXES_FAILURE_LIMIT = 2
    provider({"inst-0001": {"email": "ada.lovelace@example.edu", "email_verified": True}}, fault="signature")
    for _ in range(3):
        page, browser = sign_in_with_institution("inst-0001")
        assert signed_in_user_id(browser) is None
    assert AccessAttempt.objects.count() == 0

    provider({"inst-0001": {"email": "ada.lovelace@example.edu", "email_verified": True}})
    page, browser = sign_in_with_institution("inst-0001")

    assert signed_in_user_id(browser) == roster["student"].user.pk
    # The throttle still counts passwords: one wrong password is recorded as before.
    Client().post(reverse("login"), {"username": "ada.lovelace@example.edu", "password": "wrong"})
    assert AccessAttempt.objects.count() == 1


@pytest.mark.django_db
def test_the_sign_in_page_offers_the_institution_only_when_configured(client, settings):
    assert "Sign in with" not in client.get(reverse("login")).text
    settings.OIDC_ISSUER = "https://login.example.edu"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.INSTITUTION_NAME = "Example University"

    page = client.get(reverse("login")).text

    assert 'href="/accounts/institution/">Sign in with Example University</a>' in page


@pytest.mark.django_db
def test_with_local_passwords_off_for_students_only_judges_and_staff_sign_in_with_one(course, settings):
    settings.LOCAL_PASSWORDS_FOR_STUDENTS = False
    people = {
        "student": make_member(course, "ada.lovelace@example.edu"),
        "judge": make_member(course, "sponsor.judge@example.com", Role.JUDGE, registered=False),
        "ta": make_member(course, "grace.hopper@example.edu", Role.TA, registered=False),
    }
    answers = {
        who: Client().post(reverse("login"), {"username": member.user.username, "password": PASSWORD}).status_code
        for who, member in people.items()
    }
    assert answers == {"student": 200, "judge": 302, "ta": 302}


@pytest.mark.django_db
@pytest.mark.parametrize("student_passwords", [True, False])
def test_a_password_reset_reaches_a_student_only_while_students_have_local_passwords(
    course, settings, mailoutbox, student_passwords
):
    settings.LOCAL_PASSWORDS_FOR_STUDENTS = student_passwords
    student = make_member(course, "ada.lovelace@example.edu")
    judge = make_member(course, "sponsor.judge@example.com", Role.JUDGE, registered=False)
    login_page = Client().get(reverse("login")).content.decode()
    assert ("Students sign in with their institution" in login_page) is not student_passwords
    for member in (student, judge):
        answer = Client().post(reverse("password_reset"), {"email": member.user.email})
        assert answer.status_code == 302 and answer["Location"] == reverse("password_reset_done")
    mailed_to = [message.to for message in mailoutbox]
    expected = [[student.user.email], [judge.user.email]] if student_passwords else [[judge.user.email]]
    assert mailed_to == expected


@pytest.mark.django_db
def test_a_students_reset_link_opens_nothing_once_local_passwords_are_off_and_a_judges_still_works(course, settings):
    from courses.services import set_password_link

    student = make_member(course, "ada.lovelace@example.edu")
    judge = make_member(course, "sponsor.judge@example.com", Role.JUDGE, registered=False)
    links = {who: set_password_link(member.user) for who, member in (("student", student), ("judge", judge))}
    settings.LOCAL_PASSWORDS_FOR_STUDENTS = False
    new = {"new_password1": "a-fresh-long-password-9", "new_password2": "a-fresh-long-password-9"}
    for who, link in links.items():
        client = Client()
        opened = client.get(link.removeprefix(settings.SITE_URL.rstrip("/")), follow=True)
        form_url = opened.redirect_chain[-1][0] if opened.redirect_chain else link
        answer = client.post(form_url, new)
        member = student if who == "student" else judge
        member.user.refresh_from_db()
        if who == "student":
            assert b"new_password1" not in opened.content
            assert not member.user.check_password(new["new_password1"])
        else:
            assert answer.status_code == 302
            assert member.user.check_password(new["new_password1"])
