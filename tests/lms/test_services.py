"""The LMS's service endpoints as the loopback LMS serves them: each wants a bearer token of its scope and the media
types the specifications define, so the tool's calls passing there shows that it sends exactly those."""

import json

import pytest
import requests

from lms.grades import sync_grades
from lms.roster import sync_roster
from lms.tool import service_connector
from tests.lms.platform import (
    LINEITEM,
    LINEITEM_CONTAINER,
    LINEITEM_SCOPE,
    MEMBERSHIP_CONTAINER,
    NRPS_SCOPE,
    SCORE,
    SCORE_SCOPE,
)


def bearer(section, scope: str) -> str:
    """A real access token of ``scope``, obtained from the LMS as the tool obtains it."""
    return "Bearer " + service_connector(section.deployment.registration).get_access_token([scope])


@pytest.fixture
def line_item_url(section, lms):
    lms.line_items["ctx-1"] = [{"id": f"{lms.base_url}/lineitems/ctx-1/900", "tag": "project", "scoreMaximum": 1}]
    return f"{lms.base_url}/lineitems/ctx-1/900"


def score_body():
    return json.dumps(
        {
            "userId": "lms-student",
            "scoreGiven": 1,
            "scoreMaximum": 1,
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            "timestamp": "2025-01-01T00:00:00+00:00",
        }
    )


@pytest.mark.parametrize(
    "accept, status",
    [
        (MEMBERSHIP_CONTAINER, 200),
        (f"{MEMBERSHIP_CONTAINER}; charset=utf-8, application/json;q=0.5", 200),
        ("application/json", 406),
        ("*/*", 406),
        (LINEITEM_CONTAINER, 406),
    ],
)
def test_the_roster_service_answers_its_container_type_only(section, lms, accept, status):
    answer = requests.get(
        section.memberships_url, headers={"Authorization": bearer(section, NRPS_SCOPE), "Accept": accept}, timeout=10
    )
    assert answer.status_code == status
    if status == 200:
        assert answer.headers["Content-Type"] == MEMBERSHIP_CONTAINER


@pytest.mark.parametrize(
    "accept, status", [(LINEITEM_CONTAINER, 200), ("application/json", 406), (MEMBERSHIP_CONTAINER, 406)]
)
def test_the_line_item_list_answers_its_container_type_only(section, lms, accept, status):
    answer = requests.get(
        section.lineitems_url, headers={"Authorization": bearer(section, LINEITEM_SCOPE), "Accept": accept}, timeout=10
    )
    assert answer.status_code == status


@pytest.mark.parametrize(
    "content_type, accept, status",
    [
        (LINEITEM, LINEITEM, 201),
        ("application/json", LINEITEM, 415),
        (LINEITEM_CONTAINER, LINEITEM, 415),
        (LINEITEM, "text/html", 406),
    ],
)
def test_a_new_line_item_is_taken_in_its_own_type_only(section, lms, content_type, accept, status):
    answer = requests.post(
        section.lineitems_url,
        data=json.dumps({"label": "Extra", "scoreMaximum": 1, "tag": "extra"}),
        headers={"Authorization": bearer(section, LINEITEM_SCOPE), "Content-Type": content_type, "Accept": accept},
        timeout=10,
    )
    assert answer.status_code == status
    assert [item["tag"] for item in lms.line_items["ctx-1"]] == (["extra"] if status == 201 else [])


@pytest.mark.parametrize("content_type, status", [(SCORE, 200), ("application/json", 415), (LINEITEM, 415)])
def test_a_score_is_taken_in_its_own_type_only(section, lms, line_item_url, content_type, status):
    answer = requests.post(
        line_item_url + "/scores",
        data=score_body(),
        headers={"Authorization": bearer(section, SCORE_SCOPE), "Content-Type": content_type},
        timeout=10,
    )
    assert answer.status_code == status
    assert len(lms.scores) == (1 if status == 200 else 0)


def test_each_service_wants_a_token_of_its_own_scope(section, lms, line_item_url):
    roster_token, line_item_token = bearer(section, NRPS_SCOPE), bearer(section, LINEITEM_SCOPE)
    roster = requests.get(
        section.memberships_url,
        headers={"Authorization": line_item_token, "Accept": MEMBERSHIP_CONTAINER},
        timeout=10,
    )
    listing = requests.get(
        section.lineitems_url, headers={"Authorization": roster_token, "Accept": LINEITEM_CONTAINER}, timeout=10
    )
    score = requests.post(
        line_item_url + "/scores",
        data=score_body(),
        headers={"Authorization": line_item_token, "Content-Type": SCORE},
        timeout=10,
    )
    forged = requests.get(
        section.memberships_url,
        headers={"Authorization": "Bearer " + lms.sign({"iss": lms.issuer, "scopes": NRPS_SCOPE}) + "x"},
        timeout=10,
    )
    assert [roster.status_code, listing.status_code, score.status_code, forged.status_code] == [401, 401, 401, 401]
    assert lms.scores == []


def test_the_tools_own_calls_send_exactly_these_types(section, lms, student, ta):
    from tests.lms.test_grade_sync import present

    lms.members["ctx-1"] = [
        {"user_id": "lms-student", "email": student.user.email, "name": "S", "roles": [], "status": "Active"}
    ]
    sync_roster(section=section, actor=ta.user)
    present(student)
    result = sync_grades(section=section, actor=ta.user)
    assert (result.sent, result.refused) == (1, [])
    assert [method for method, _ in lms.requests] == ["GET", "GET", "POST", "POST"]  # roster, list, create, score
    assert [score["scoreGiven"] for score in lms.scores] == [1]
