"""Whether a database holds anything but the demo course: the demo seeds staff accounts whose password is public.

``manage.py demo`` runs against whatever DATABASE_URL points at; in a real course's database its instructor and TA
accounts with the documented password would be a way in. So it seeds only a database that is empty or holds its own
course and people alone, unless told ``--force``.
"""

from django.contrib.auth import get_user_model
from django.db import connection

from courses.models import Course
from demo import course as demo_course

SHOWN = 5  # names listed per kind of foreign data; the rest are counted


def _listed(names: list[str], one: str, many: str) -> str:
    shown = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    return f"{len(names)} {one if len(names) == 1 else many} ({shown})"


def foreign_data() -> list[str]:
    """What the database holds that the demo did not put there, one line per kind; empty when it may be seeded.

    Works before ``migrate``: a table that does not exist yet holds nothing.
    """
    tables = set(connection.introspection.table_names())
    found = []
    ours = set(connection.introspection.django_table_names()) | {"django_migrations"}
    others = sorted(tables - ours)
    if others:
        found.append(_listed(others, "table of no app of this platform", "tables of no app of this platform"))
    if Course._meta.db_table in tables:
        courses = list(
            Course.objects.exclude(slug=demo_course.COURSE_SLUG).order_by("slug").values_list("slug", flat=True)
        )
        if courses:
            found.append(_listed(courses, "course besides the demo's", "courses besides the demo's"))
    User = get_user_model()
    if User._meta.db_table in tables:
        people = [email for email, *_ in demo_course.PEOPLE]
        users = list(
            User.objects.exclude(username__in=people, email__in=people)
            .order_by(User.USERNAME_FIELD)
            .values_list(User.USERNAME_FIELD, flat=True)
        )
        if users:
            found.append(
                _listed(users, "user who is not one of the demo's people", "users who are not the demo's people")
            )
    return found


def refusal(found: list[str]) -> str:
    """The message of a refused run: what is there, why that matters, and what to do."""
    where = connection.settings_dict["NAME"]
    return (
        f"The database {where} ({connection.vendor}) holds more than the demo course: " + "; ".join(found) + ". "
        f"The demo creates instructor and TA accounts whose password is public ({demo_course.PASSWORD}), so it "
        "does not run here. Point DATABASE_URL at a database of its own (unset, the demo uses var/db.sqlite3), or "
        "pass --force if this database is only ever a demo's."
    )
