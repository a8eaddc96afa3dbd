"""Files served as attachments under a strict policy, CSV exports that no spreadsheet runs, and rate limits."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from courses import ratelimit
from tests.conftest import PASSWORD
from tests.factories import token_for
from tests.security.conftest import fill, url_patterns

FILE_VIEWS = ("labs:artifact_file", "projects:slides_file", "projects:review_file")


def signed_in(member) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


@pytest.mark.parametrize("name", FILE_VIEWS)
def test_uploads_are_served_as_attachments_with_nosniff_under_a_strict_policy(world, student, name):
    route = next(route for n, route, _ in url_patterns() if n == name)
    response = signed_in(student).get(fill(route, name, world))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy
    assert not response["Content-Type"].startswith("text/html")


FORMULA_STARTS = ("=", "+", "-", "@")


def csv_cells(response) -> list[list[str]]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


@pytest.mark.parametrize("name", ["projects:staff_completion_csv", "prizes:results_csv"])
def test_csv_exports_neutralise_formulas(world, ta, student, name, course):
    from prizes.models import Entry

    if name == "prizes:results_csv":
        Entry.objects.filter(round__course=course).update(title='=HYPERLINK("http://evil","x")')
    route = next(route for n, route, _ in url_patterns() if n == name)
    response = signed_in(ta).get(fill(route, name, world))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    rows = csv_cells(response)
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c.startswith(FORMULA_STARTS)], cells
    if name == "projects:staff_completion_csv":  # the results export lists entries only once judges have scored
        assert any(c.startswith("'=HYPERLINK") for c in cells), cells


# ---------------------------------------------------------------------------------------------- rate limits


def test_ten_failed_sign_ins_from_one_address_then_429_with_a_clear_message(student):
    client = Client()
    url = reverse("login")
    for attempt in range(10):
        response = client.post(url, {"username": f"nobody{attempt}@example.edu", "password": "wrong"})
        assert response.status_code == 200
    response = client.post(url, {"username": student.user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session, "even the right password is not checked while blocked"


def test_ten_failed_sign_ins_for_one_username_block_it_from_any_address(student):
    url = reverse("login")
    for attempt in range(10):
        Client(REMOTE_ADDR=f"10.0.0.{attempt}").post(url, {"username": student.user.username, "password": "x"})
    response = Client(REMOTE_ADDR="10.0.1.1").post(url, {"username": student.user.username, "password": PASSWORD})
    assert response.status_code == 429
    other = Client(REMOTE_ADDR="10.0.1.2").post(url, {"username": "someone@example.edu", "password": "x"})
    assert other.status_code == 200


def test_successful_sign_ins_are_not_counted(student):
    client = Client()
    for _ in range(12):
        response = client.post(reverse("login"), {"username": student.user.username, "password": PASSWORD})
        assert response.status_code == 302
        client.logout()


def test_the_sign_in_window_resets_after_its_time(student):
    window = ratelimit.Window("sign-in-ip", "127.0.0.1", 10, 300)
    for _ in range(10):
        window.hit(now=1000.0)
    assert window.exceeded(now=1100.0)
    assert not window.exceeded(now=1200.0)  # the next five-minute window
    assert window.retry_after(now=1100.0) == 101


def test_the_token_api_allows_30_uploads_a_minute_then_answers_429_json(client, student, course):
    from tests.factories import make_music_lab

    lab = make_music_lab(course)
    key = token_for(student)
    url = f"/api/labs/{lab.slug}/submissions"
    for _ in range(30):
        assert client.post(url, {}, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 400  # empty, but counted
    response = client.post(url, {}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert "30 uploads" in response.json()["error"]["message"]
    assert int(response["Retry-After"]) > 0
    # Reading her results is not an upload.
    assert client.get(url, HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    # Another token has its own budget.
    other = token_for(student)
    assert client.post(url, {}, HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 400
