"""Import a course roster from a CSV file (email,name,role,registered): all rows or none.

Run by the platform operator, so it has an instructor's authority (courses.roles.OPERATOR); like every import it
enrols existing accounts without changing them.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from courses.models import Course
from courses.roles import OPERATOR
from courses.roster import MAX_ROSTER_BYTES, RosterError, import_roster


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("course", help="course slug")
        parser.add_argument("csv", type=Path)
        parser.add_argument(
            "--no-email",
            action="store_true",
            help="send no e-mail (neither set-password links nor added-to-course notices)",
        )

    def handle(self, *args, course, csv, no_email, **options):
        try:
            course_obj = Course.objects.get(slug=course)
        except Course.DoesNotExist:
            raise CommandError(f"No course with slug {course!r}.")
        if not csv.is_file():
            raise CommandError(f"{csv} is not a file.")
        with csv.open("rb") as handle:
            data = handle.read(MAX_ROSTER_BYTES + 1)
        try:
            result = import_roster(course=course_obj, data=data, actor=OPERATOR, send_links=not no_email)
        except RosterError as exc:
            raise CommandError("Nothing was imported:\n" + "\n".join(exc.errors))
        self.stdout.write(
            f"{len(result.created)} added, {len(result.updated)} updated, {len(result.unchanged)} unchanged."
        )
