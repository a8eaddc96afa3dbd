"""`manage.py demo` seeds staff with a public password, so it refuses a database that holds anything but its own."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from courses.models import Course
from demo import course as demo_course
from demo import guard
from demo.management.commands.demo import Command

User = get_user_model()


@pytest.fixture
def demo_runs(monkeypatch):
    """Stands in for the demo's steps (data, training, servers): records that the guard let it through."""
    runs = []
    monkeypatch.setattr(Command, "run", lambda self, *args: runs.append(args))
    return runs


def refused_message() -> str:
    with pytest.raises(CommandError) as info:
        call_command("demo", "--no-serve")
    return str(info.value)


def nothing_seeded() -> bool:
    people = [email for email, *_ in demo_course.PEOPLE]
    return (
        not Course.objects.filter(slug=demo_course.COURSE_SLUG).exists()
        and not User.objects.filter(email__in=people).exists()
    )


def test_a_database_with_another_course_is_refused_and_nothing_is_seeded(course, ta, demo_runs):
    message = refused_message()
    assert "holds more than the demo course" in message
    assert "1 course besides the demo's (dl)" in message
    assert "1 user who is not one of the demo's people (grace.hopper@example.edu)" in message
    assert demo_course.PASSWORD in message and "--force" in message and "DATABASE_URL" in message
    assert demo_runs == [] and nothing_seeded()


def test_a_database_with_a_user_who_is_not_the_demos_is_refused(db, demo_runs):
    User.objects.create_superuser(username="root", email="root@university.edu", password="x" * 20)
    message = refused_message()
    assert "1 user who is not one of the demo's people (root)" in message
    assert "courses besides" not in message
    assert demo_runs == [] and nothing_seeded()


def test_a_database_holding_another_applications_tables_is_refused(db, demo_runs):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE payroll (id integer PRIMARY KEY, salary integer)")
    message = refused_message()
    assert "1 table of no app of this platform (payroll)" in message
    assert demo_runs == []


def test_force_seeds_a_database_that_holds_other_data(course, ta, demo_runs):
    call_command("demo", "--no-serve", "--force")
    assert len(demo_runs) == 1


def test_an_empty_database_and_the_demos_own_are_seeded_without_force(db, demo_runs):
    assert guard.foreign_data() == []
    call_command("demo", "--no-serve")
    demo_course.seed_course()
    assert guard.foreign_data() == []
    call_command("demo", "--no-serve")
    assert len(demo_runs) == 2
