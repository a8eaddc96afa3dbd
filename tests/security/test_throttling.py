"""Throttling that protects without locking anyone out: sign-in (the site's and the admin's), password reset,
joining, invitations and uploads, each tried as an attacker behind the course's reverse proxy would."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from courses import ratelimit
from tests.conftest import PASSWORD
from tests.factories import make_music_lab, token_for

PROXY = "10.1.2.3"


@pytest.fixture(autouse=True)
def behind_the_proxy(settings):
    settings.TRUSTED_PROXIES = [f"{PROXY}/32"]
    settings.SIGN_IN_ACCOUNT_DELAY_CAP = 0.01  # the delay itself is measured by its own test


def via_proxy(client_ip: str) -> Client:
    """A browser at ``client_ip`` behind the course's reverse proxy: every request reaches us from the proxy."""
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=client_ip)


def sign_in(client: Client, username: str, password: str, url: str | None = None):
    return client.post(url or reverse("login"), {"username": username, "password": password})


def test_ten_wrong_passwords_for_made_up_names_on_a_shared_address_do_not_lock_out_a_real_student(student):
    campus = "192.0.2.10"  # one NAT address for the whole campus
    for attempt in range(12):
        assert sign_in(via_proxy(campus), f"nobody{attempt}@example.edu", "wrong").status_code == 200
    response = sign_in(via_proxy(campus), student.user.username, PASSWORD)
    assert response.status_code == 302, "her right password from the shared address signs her in"


def test_failures_for_one_account_from_many_addresses_only_slow_them_down_never_refuse_her(student, settings):
    import time

    settings.SIGN_IN_ACCOUNT_DELAY_STEP = 0.05
    settings.SIGN_IN_ACCOUNT_DELAY_CAP = 0.3
    timings = []
    for attempt in range(14):
        started = time.monotonic()
        assert sign_in(via_proxy(f"198.51.100.{attempt}"), student.user.username, "guess").status_code == 200
        timings.append(time.monotonic() - started)
    assert timings[-1] >= 0.3, "a failure past the free ones waits (here the cap, 0.3 s)"
    response = sign_in(via_proxy("203.0.113.7"), student.user.username, PASSWORD)
    assert response.status_code == 302, "her right password is never refused for it"


def test_a_pair_of_account_and_address_is_locked_at_its_tenth_failure_and_says_nothing_of_the_account(student):
    attacker = via_proxy("198.51.100.66")
    for _ in range(9):
        assert sign_in(attacker, student.user.username, "guess").status_code == 200
    assert sign_in(attacker, student.user.username, "guess").status_code == 429
    locked = sign_in(attacker, student.user.username, PASSWORD)
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) > 0
    assert "_auth_user_id" not in attacker.session, "the right password is not accepted from a locked pair"
    # A made-up account locked the same way gets the very same page: nothing tells them apart.
    for _ in range(10):
        sign_in(attacker, "nobody@example.edu", "guess")
    ghost = sign_in(attacker, "nobody@example.edu", "guess")
    assert ghost.status_code == 429
    strip = lambda r: re.sub(r"[A-Za-z0-9]{64}", "", r.content.decode())  # noqa: E731 - CSRF tokens differ
    assert strip(ghost) == strip(locked)
    # She still signs in from her own address.
    assert sign_in(via_proxy("203.0.113.8"), student.user.username, PASSWORD).status_code == 302


def test_an_address_past_its_ceiling_is_refused_but_the_ceiling_fits_a_campus(student, settings):
    assert settings.SIGN_IN_ADDRESS_CEILING[0] >= 100 and settings.SIGN_IN_ADDRESS_CEILING[1] <= 300
    settings.SIGN_IN_ADDRESS_CEILING = (5, 300)  # a small ceiling, to reach it quickly
    for attempt in range(5):
        sign_in(via_proxy("192.0.2.99"), f"user{attempt}@example.edu", "wrong")
    refused = sign_in(via_proxy("192.0.2.99"), student.user.username, PASSWORD)
    assert refused.status_code == 429
    assert "from your network" in refused.content.decode()
    assert sign_in(via_proxy("192.0.2.100"), student.user.username, PASSWORD).status_code == 302


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(rf, settings):
    request = rf.get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.5")
    assert ratelimit.client_address(request) == "192.0.2.5", "the nearest hop the proxy saw"
    forged = rf.get("/", REMOTE_ADDR="192.0.2.77", HTTP_X_FORWARDED_FOR="192.0.2.5")
    assert ratelimit.client_address(forged) == "192.0.2.77", "a client cannot name its own address"
    settings.TRUSTED_PROXIES = []
    assert ratelimit.client_address(request) == PROXY


def test_the_admin_sign_in_is_throttled_like_the_sites(student, superuser_factory):
    admin_user = superuser_factory()
    attacker = via_proxy("198.51.100.9")
    url = "/admin/login/"
    for _ in range(9):
        assert sign_in(attacker, admin_user.username, "guess", url).status_code == 200
    assert sign_in(attacker, admin_user.username, "guess", url).status_code == 429
    assert sign_in(attacker, admin_user.username, PASSWORD, url).status_code == 429
    assert sign_in(via_proxy("203.0.113.9"), admin_user.username, PASSWORD, url).status_code == 302


def test_a_password_reset_lifts_the_lock_on_her_account(student):
    attacker = via_proxy("198.51.100.10")
    for _ in range(10):
        sign_in(attacker, student.user.username, "guess")
    assert sign_in(attacker, student.user.username, PASSWORD).status_code == 429

    mail.outbox.clear()
    via_proxy("198.51.100.10").post(reverse("password_reset"), {"email": student.user.email})
    link = re.search(r"https?://\S+/accounts/password/set/\S+", mail.outbox[0].body).group(0)
    browser = via_proxy("198.51.100.10")
    form = browser.get(link.split("testserver", 1)[-1], follow=True)
    new = "a brand new passphrase 42"
    done = browser.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert sign_in(via_proxy("198.51.100.10"), student.user.username, new).status_code == 302


def test_password_reset_mails_at_most_three_times_an_hour_and_answers_the_same_for_any_address(student):
    mail.outbox.clear()
    answers = []
    for _ in range(5):
        answers.append(via_proxy("192.0.2.20").post(reverse("password_reset"), {"email": student.user.email}))
    unknown = via_proxy("192.0.2.21").post(reverse("password_reset"), {"email": "nobody@example.edu"})
    assert len(mail.outbox) == 3, "no mail bombing"
    assert {r.status_code for r in answers} == {302} and unknown.status_code == 302
    assert {r["Location"] for r in answers} == {unknown["Location"]}


def test_password_reset_is_limited_per_address(db, settings):
    settings.PASSWORD_RESET_ADDRESS_LIMIT = (3, 3600)
    for attempt in range(3):
        via_proxy("192.0.2.30").post(reverse("password_reset"), {"email": f"x{attempt}@example.edu"})
    refused = via_proxy("192.0.2.30").post(reverse("password_reset"), {"email": "y@example.edu"})
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_the_join_page_checks_the_code_first_and_never_tells_whether_an_email_has_an_account(course, student):
    course.join_code = "JOIN-ME-1"
    course.save()
    url = reverse("courses:join", kwargs={"course_slug": course.slug})
    wrong = via_proxy("192.0.2.40").post(url, {"email": student.user.email, "name": "Ada L", "code": "nope"})
    assert "join code is not valid" in wrong.content.decode()
    assert "already has an account" not in wrong.content.decode()

    mail.outbox.clear()
    existing = via_proxy("192.0.2.40").post(url, {"email": student.user.email, "name": "Ada L", "code": "JOIN-ME-1"})
    fresh = via_proxy("192.0.2.40").post(
        url, {"email": "new.listener@example.edu", "name": "New L", "code": "JOIN-ME-1"}
    )
    assert existing.status_code == fresh.status_code == 200
    same = [re.sub(r"[A-Za-z0-9]{64}", "", r.content.decode()) for r in (existing, fresh)]  # CSRF tokens differ
    assert same[0] == same[1], "the same answer either way"
    assert [m.to for m in mail.outbox] == [[student.user.email], ["new.listener@example.edu"]]
    assert "already has an account" in mail.outbox[0].body
    student.user.refresh_from_db()
    assert student.user.first_name != "Ada L", "nothing of the existing account changed"


def test_the_join_page_is_limited_per_address(course, settings):
    settings.JOIN_ADDRESS_LIMIT = (2, 3600)
    course.join_code = "JOIN-ME-2"
    course.save()
    url = reverse("courses:join", kwargs={"course_slug": course.slug})
    for _ in range(2):
        via_proxy("192.0.2.50").post(url, {"email": "a@example.edu", "name": "A B", "code": "wrong"})
    assert via_proxy("192.0.2.50").post(url, {"email": "a@example.edu", "name": "A B", "code": "x"}).status_code == 429


def test_invitations_are_limited_per_student(course, student, settings):
    from projects.services import create_group

    settings.INVITE_RATE_LIMIT = (3, 3600)
    set_open_deadlines(course)
    group = create_group(member=student, name="Limits")
    client = Client()
    client.force_login(student.user)
    url = reverse("projects:invite", kwargs={"course_slug": course.slug, "pk": group.pk})
    answers = [client.post(url, {"email": f"x{i}@example.edu"}, follow=True).content.decode() for i in range(4)]
    # The first three reach the invitation rule (nobody of that address is enrolled), the fourth does not.
    assert all("No student with the e-mail" in a and "many invitations" not in a for a in answers[:3])
    assert "many invitations" in answers[3] and "No student with the e-mail" not in answers[3]


@pytest.mark.parametrize("path", ["api", "web"])
def test_uploads_are_limited_per_student_whichever_path_they_take(client, student, course, settings, path):
    settings.UPLOAD_RATE_LIMIT = (3, 60)
    lab = make_music_lab(course, daily_quota=100, max_in_flight=100)
    key = token_for(student)
    api = f"/api/labs/{lab.slug}/submissions"
    web = reverse("labs:upload", kwargs={"course_slug": course.slug, "lab_slug": lab.slug})
    client.force_login(student.user)
    # Three empty uploads (refused, but counted), one through the other path: the budget is hers, not the path's.
    for i in range(3):
        if (i == 0) == (path == "api"):
            assert client.post(api, {}, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 400
        else:
            client.post(web, {})
    if path == "api":
        refused = client.post(api, {}, HTTP_AUTHORIZATION=f"Bearer {key}")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) > 0
        another_token = token_for(student)
        assert client.post(api, {}, HTTP_AUTHORIZATION=f"Bearer {another_token}").status_code == 429
    else:
        page = client.post(web, {}, follow=True).content.decode()
        assert "uploads in the last 60 seconds" in page
    # Reading her results is not an upload.
    assert client.get(api, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200


def set_open_deadlines(course):
    from datetime import timedelta

    from django.utils import timezone

    from courses.models import Deadline

    for key in ("project-groups", "project-slides", "paper-review"):
        Deadline.objects.update_or_create(
            course=course, key=key, defaults={"title": key, "due_at": timezone.now() + timedelta(days=2)}
        )


@pytest.fixture
def superuser_factory(db):
    def make():
        return get_user_model().objects.create_superuser("root@example.edu", "root@example.edu", PASSWORD)

    return make
