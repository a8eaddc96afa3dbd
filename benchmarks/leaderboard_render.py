"""How long the leaderboard page takes to render, and with how many queries, at 10 and at 2,000 submissions.

Usage: .venv/bin/python benchmarks/leaderboard_render.py [--repeat 5]
It creates its own database on the machine's PostgreSQL (dropped afterwards; RUSH_POSTGRES_URL names the server),
fills Lab 1 with succeeded evaluations in bulk, and renders GET /courses/<slug>/labs/<lab>/leaderboard/ as a student.
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
    plan = [(10, 4, 0), (1990, 600, 4)]
    total = 0
    for submissions, members, start in plan:
        fill_leaderboard(lab, submissions=submissions, members=members, start=start)
        total += submissions
        client.get(url)  # the first render fills caches (templates, content types)
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"the leaderboard answered {response.status_code}")
        print(
            f"{total:>5} submissions ({start + members} students): {len(queries.captured_queries)} queries, "
            f"render median {statistics.median(times) * 1000:.0f} ms, min {min(times) * 1000:.0f} ms, "
            f"page {len(response.content) // 1024} KiB"
        )


if __name__ == "__main__":
    main()
