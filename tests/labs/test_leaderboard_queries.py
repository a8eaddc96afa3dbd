"""The leaderboard page costs the same number of queries with ten submissions as with two thousand."""

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


def render(client, lab) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/courses/{lab.course.slug}/labs/{lab.slug}/leaderboard/")
    assert response.status_code == 200
    return len(queries.captured_queries), response.content.decode()


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
    page = response.content.decode()
    assert page.count('<tr class="') == 604 + 1 and page.count("rusher-") == 2 + 400 and "Reference LSTM" in page
