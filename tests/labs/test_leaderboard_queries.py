"""The leaderboard page costs the same number of queries with ten submissions as with two thousand."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses.models import Membership, Role
from labs.models import Evaluation, EvaluationStatus, Submission
from tests.factories import make_music_lab

User = get_user_model()
SONG = "X:1\nT:Rush\nM:6/8\nK:D\n" + "|:dAF DFA|dfe dBA|" * 30
LOG_TAIL = "exit=0 timed_out=False oom=False duration=4.2s\n--- stderr ---\n" + "step 1 loss 2.31\n" * 500


def fill_leaderboard(lab, *, submissions: int, members: int, start: int = 0) -> list[Membership]:
    """Bulk rows as a deadline rush leaves them: students with several graded submissions each, some marked final,
    some showing their real name, plus one staff baseline."""
    users = User.objects.bulk_create(
        [
            User(
                username=f"rush{start + k}@example.edu",
                email=f"rush{start + k}@example.edu",
                first_name="R",
                last_name=f"{k}",
            )
            for k in range(members)
        ]
    )
    people = Membership.objects.bulk_create(
        [
            Membership(
                user=user,
                course=lab.course,
                role=Role.STUDENT,
                display_name=f"rusher-{start + k}",
                show_real_name=k % 3 == 0,
            )
            for k, user in enumerate(users)
        ]
    )
    base = timezone.now() - timedelta(days=1)
    rows = Submission.objects.bulk_create(
        [
            Submission(
                lab=lab,
                member=people[k % members],
                storage_prefix=f"artifacts/bench/{lab.slug}/{start}-{k}",
                files=[],
                sha256=f"{start:08d}{k:056d}",
                size=1000,
                received_at=base + timedelta(seconds=k),
                # Her first submission is her chosen final one for every seventh student.
                is_final=k < members and k % 7 == 0,
            )
            for k in range(submissions)
        ]
    )
    Evaluation.objects.bulk_create(
        [
            Evaluation(
                submission=row,
                status=EvaluationStatus.SUCCEEDED,
                attempt=1,
                started_at=row.received_at,
                finished_at=row.received_at + timedelta(seconds=5),
                metrics={
                    "public": {"bpc": 2 + (k * 37 % 1000) / 1000, "validity": (k % 5) / 4, "novelty": 0.9},
                    "private": {"bpc": 2 + (k * 53 % 1000) / 1000, "validity": (k % 4) / 3, "novelty": 0.9},
                },
                public_score=2 + (k * 37 % 1000) / 1000,
                private_score=2 + (k * 53 % 1000) / 1000,
                public_tiebreak=(k % 5) / 4,
                private_tiebreak=(k % 4) / 3,
                duration_s=5.0,
                # What a real result carries besides its numbers: generated songs and the worker's log tail.
                samples=[{"kind": "abc", "split": "public", "title": f"Song {n}", "text": SONG} for n in (1, 2)],
                staff_log=LOG_TAIL,
            )
            for k, row in enumerate(rows)
        ]
    )
    return people


def add_baseline(lab, owner) -> None:
    row = Submission.objects.create(
        lab=lab,
        member=owner,
        storage_prefix=f"artifacts/bench/{lab.slug}/baseline",
        files=[],
        sha256="b" * 64,
        size=1000,
        received_at=timezone.now(),
        baseline_label="Reference LSTM",
    )
    Evaluation.objects.create(
        submission=row,
        status=EvaluationStatus.SUCCEEDED,
        attempt=1,
        finished_at=timezone.now(),
        metrics={"public": {"bpc": 2.5, "validity": 0.5, "novelty": 0.9}},
        public_score=2.5,
        public_tiebreak=0.5,
    )


def render(client, lab, query: str = "") -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/courses/{lab.course.slug}/labs/{lab.slug}/leaderboard/{query}")
    assert response.status_code == 200
    return len(queries.captured_queries), response.content.decode()


ROW = re.compile(r'<tr class="(?P<kind>[^"]*)">\s*<td class="num">(?P<rank>[^<]*)</td>\s*<td[^>]*>(?P<name>[^<]*)')


def shown(page: str) -> list[tuple[str, str, str]]:
    """(rank or "—", name, row kind) of each row the page shows, gap markers included."""
    return [(m["rank"], m["name"].strip(), m["kind"].strip()) for m in ROW.finditer(page)]


@pytest.mark.django_db
def test_leaderboard_page_runs_as_many_queries_for_2000_submissions_as_for_10(
    course, student, ta, login, django_assert_num_queries
):
    lab = make_music_lab(course)
    add_baseline(lab, ta)
    fill_leaderboard(lab, submissions=10, members=4)
    client = login(student)
    small, page = render(client, lab)
    # Four students ranked once each (two under their real name, by consent) and the baseline.
    assert page.count('<tr class="') == 5 and page.count("rusher-") == 2 and "Reference LSTM" in page

    fill_leaderboard(lab, submissions=1990, members=600, start=4)
    assert Submission.objects.filter(lab=lab, baseline_label="").count() == 2000
    with django_assert_num_queries(small):
        response = client.get(f"/courses/{course.slug}/labs/{lab.slug}/leaderboard/")
    rows = shown(response.content.decode())
    # The top fifty of 604 students, then a gap and the baseline further down, on the first of 13 pages.
    assert [rank for rank, _, kind in rows if kind == ""] == [str(n) for n in range(1, 51)]
    assert [(name, kind) for _, name, kind in rows[50:]] == [("more rows", "gap"), ("Reference LSTM", "baseline")]
    assert "Page 1 of 13 (605 rows)" in response.content.decode()


@pytest.mark.django_db
def test_every_row_of_a_long_board_is_found_on_some_page_exactly_once(course, student, ta, login):
    lab = make_music_lab(course)
    add_baseline(lab, ta)
    fill_leaderboard(lab, submissions=400, members=120)
    client = login(ta)
    ranks = []
    for number in range(1, 4):
        _, page = render(client, lab, f"?page={number}")
        ranks += [int(rank) for rank, _, kind in shown(page) if kind == ""]
    assert ranks == list(range(1, 121))
    _, past_the_end = render(client, lab, "?page=9")
    assert [kind for _, _, kind in shown(past_the_end)] == ["gap", "baseline"]


@pytest.mark.django_db
def test_her_entry_and_its_neighbours_are_on_every_page_she_opens(course, login):
    lab = make_music_lab(course)
    people = fill_leaderboard(lab, submissions=300, members=300)
    her = max(people, key=lambda m: Evaluation.objects.get(submission__member=m).public_score)  # bpc: she is last
    client = login(her)
    for query in ("", "?page=3", "?page=oops"):
        _, page = render(client, lab, query)
        rows = shown(page)
        mine = [row for row in rows if row[2] == "me"]
        assert len(mine) == 1 and mine[0][0] == "300"
        # Her two neighbours above; nobody below her; a gap separates them from the page's own rows.
        assert [rank for rank, _, _ in rows[-3:]] == ["298", "299", "300"] and rows[-4][2] == "gap"
