"""Files served as attachments under a strict policy, and CSV exports that no spreadsheet runs."""

import csv
import io

import pytest
from django.test import Client

from tests.security.conftest import fill, url_patterns

FILE_VIEWS = ("labs:artifact_file", "labs:result_file", "projects:slides_file", "projects:review_file")


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


@pytest.mark.parametrize("name", ["projects:staff_completion_csv", "projects:staff_scores_csv", "prizes:results_csv"])
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
