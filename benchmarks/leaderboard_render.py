"""How long the leaderboard page takes to render, and with how many queries, at 10, 2,000 and 20,000 submissions.

Usage: .venv/bin/python benchmarks/leaderboard_render.py [--repeat 5]
It creates its own database on the machine's PostgreSQL (dropped afterwards; RUSH_POSTGRES_URL names the server),
fills Lab 1 with succeeded evaluations in bulk, and renders GET /courses/<slug>/labs/<lab>/leaderboard/ as a student
whose own entry lies deep in the board (so her row and its neighbours are shown beside the top), at 10 submissions
(4 students), 2,000 (604) and 20,000 (6,004). Each size prints its median render time, queries and page bytes, and
their ratios to the 10-submission page measured in the same run. After each bulk fill it runs VACUUM ANALYZE on the
two tables, as autovacuum would after a rush, so the planner has statistics and index-only scans are possible.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from deadline_rush import platform_env, scratch_database, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leaderboard-render-"))
    try:
        with scratch_database("leaderboard_render") as database_url:
            setup_django(platform_env(database_url=database_url, broker_url="memory://", var_dir=work))
            measure(args.repeat)
            from django.db import connections

            connections.close_all()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(repeat: int) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from courses.models import Course, Deadline, Role
    from tests.conftest import make_member
    from tests.factories import make_music_lab
    from tests.labs.test_leaderboard_queries import add_baseline, fill_leaderboard

    course = Course.objects.create(name="Leaderboard bench", slug="bench", term="January 2025")
    Deadline.objects.create(course=course, key="lab1", title="Lab 1", due_at=timezone.now() + timedelta(days=1))
    lab = make_music_lab(course)
    viewer = make_member(course, "viewer@example.edu")
    add_baseline(lab, make_member(course, "ta@example.edu", Role.TA))
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(viewer.user)
    url = f"/courses/{course.slug}/labs/{lab.slug}/leaderboard/"
    plan = [(10, 4, 0), (1990, 600, 4), (18000, 5400, 604)]
    total = 0
    first = None
    for submissions, members, start in plan:
        fill_leaderboard(lab, submissions=submissions, members=members, start=start)
        total += submissions
        # The viewer's entry: a middling result submitted at the end of each fill, so she is never on page 1.
        add_entry(lab, viewer, 2.6)
        with connection.cursor() as cursor:
            # What autovacuum does after a bulk load: statistics, and the visibility map index-only scans need.
            cursor.execute("VACUUM ANALYZE labs_evaluation, labs_submission")
        client.get(url)  # the first render fills caches (templates, content types)
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"the leaderboard answered {response.status_code}")
        median = statistics.median(times)
        figures = (median, len(queries.captured_queries), len(response.content))
        first = first or figures
        print(
            f"{total:>6} submissions ({start + members:>5} students): {figures[1]} queries, "
            f"render median {median * 1000:.1f} ms (min {min(times) * 1000:.1f}), page {figures[2] / 1024:.0f} KiB; "
            f"vs 10 submissions: time x{median / first[0]:.2f}, queries x{figures[1] / first[1]:.2f}, "
            f"bytes x{figures[2] / first[2]:.2f}"
        )


def add_entry(lab, member, score: float) -> None:
    """Her one graded submission (replacing the one before, so she has a single entry at each size)."""
    from django.utils import timezone

    from labs.models import Evaluation, EvaluationStatus, Submission

    Submission.objects.filter(lab=lab, member=member).delete()
    row = Submission.objects.create(
        lab=lab,
        member=member,
        storage_prefix=f"artifacts/bench/{lab.slug}/viewer-{score}-{Submission.objects.count()}",
        files=[],
        sha256="v" * 64,
        size=1000,
        received_at=timezone.now(),
    )
    Evaluation.objects.create(
        submission=row,
        status=EvaluationStatus.SUCCEEDED,
        attempt=1,
        finished_at=timezone.now(),
        metrics={"public": {"bpc": score, "validity": 0.5, "novelty": 0.9}},
        public_score=score,
        public_tiebreak=0.5,
    )


if __name__ == "__main__":
    main()
