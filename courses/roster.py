"""Roster import from CSV (email, name, role, registered): every row checked, all rows imported or none."""

import csv
import io
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from courses import audit
from courses.models import Course, Membership, Role
from courses.services import send_welcome

MAX_ROSTER_BYTES = 2 * 1024 * 1024
MAX_ROSTER_ROWS = 20_000
REQUIRED_COLUMNS = ("email", "name", "role", "registered")
TRUE_WORDS = {"yes", "y", "true", "1", "registered", "credit"}
FALSE_WORDS = {"no", "n", "false", "0", "", "listener"}
ROLE_WORDS = {choice.value: choice.value for choice in Role} | {
    "instructor": Role.INSTRUCTOR,
    "teaching assistant": Role.TA,
}

User = get_user_model()


class RosterError(Exception):
    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class RosterRow:
    line: int
    email: str
    name: str
    role: str
    registered: bool


@dataclass
class RosterResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def parse_roster(data: bytes) -> list[RosterRow]:
    """Check every row; raise RosterError listing every problem with its line number."""
    if len(data) > MAX_ROSTER_BYTES:
        raise RosterError(
            [f"The file is {len(data) / 1e6:.1f} MB; a roster may be at most {MAX_ROSTER_BYTES // (1024 * 1024)} MB."]
        )
    if not data.strip():
        raise RosterError(["The file is empty; it needs a header line: email,name,role,registered."])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError([f"The file is not UTF-8 text (bad byte at position {exc.start}); export it as CSV UTF-8."])
    if "\x00" in text:
        raise RosterError(["The file is not a CSV text file (it contains NUL bytes)."])
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [(name or "").strip().lower() for name in (reader.fieldnames or [])]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise RosterError(
            [f"Line 1: missing column(s) {', '.join(missing)}; the header must be: {','.join(REQUIRED_COLUMNS)}."]
        )
    reader.fieldnames = header
    rows: list[RosterRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    try:
        for record in reader:
            line = reader.line_num
            if len(rows) + len(errors) >= MAX_ROSTER_ROWS:
                raise RosterError([f"The roster has more than {MAX_ROSTER_ROWS} rows."])
            if None in record:
                errors.append(f"Line {line}: more fields than the header has.")
                continue
            values = {key: (record.get(key) or "").strip() for key in REQUIRED_COLUMNS}
            if not any(values.values()):
                continue
            email = values["email"].lower()
            problems = []
            try:
                validate_email(email)
            except ValidationError:
                problems.append(f"{values['email']!r} is not a valid e-mail address")
            if not values["name"]:
                problems.append("the name is empty")
            elif len(values["name"]) > 150:
                problems.append("the name is longer than 150 characters")
            role = ROLE_WORDS.get(values["role"].lower())
            if role is None:
                problems.append(f"unknown role {values['role']!r} (use student, ta, instructor or judge)")
            registered_word = values["registered"].lower()
            if registered_word not in TRUE_WORDS | FALSE_WORDS:
                problems.append(f"registered must be yes or no, not {values['registered']!r}")
            if email in seen:
                problems.append(f"{email} is already on line {seen[email]}")
            if problems:
                errors.append(f"Line {line}: " + "; ".join(problems) + ".")
                continue
            seen[email] = line
            rows.append(RosterRow(line, email, values["name"], role, registered_word in TRUE_WORDS))
    except csv.Error as exc:
        errors.append(f"Line {reader.line_num}: not valid CSV ({exc}).")
    if errors:
        raise RosterError(errors)
    if not rows:
        raise RosterError(["The file has a header but no rows."])
    return rows


def _split_name(name: str) -> tuple[str, str]:
    first, _, last = name.rpartition(" ")
    return (first, last) if first else (name, "")


@transaction.atomic
def import_roster(*, course: Course, data: bytes, actor=None, send_links: bool = True) -> RosterResult:
    """Create or update a membership per row. Re-importing updates rather than duplicates."""
    rows = parse_roster(data)
    result = RosterResult()
    new_users = []
    for row in rows:
        first, last = _split_name(row.name)
        user = User.objects.filter(email__iexact=row.email).first()
        if user is None:
            user = User(username=row.email, email=row.email, first_name=first[:150], last_name=last[:150])
            user.set_unusable_password()
            user.save()
            new_users.append(user)
        elif (user.first_name, user.last_name) != (first[:150], last[:150]):
            user.first_name, user.last_name = first[:150], last[:150]
            user.save(update_fields=["first_name", "last_name"])
        member, created = Membership.objects.get_or_create(
            user=user, course=course, defaults={"role": row.role, "registered_for_credit": row.registered}
        )
        if created:
            result.created.append(row.email)
        elif (member.role, member.registered_for_credit) != (row.role, row.registered):
            member.role, member.registered_for_credit = row.role, row.registered
            member.save(update_fields=["role", "registered_for_credit"])
            result.updated.append(row.email)
        else:
            result.unchanged.append(row.email)
    audit.record(
        course=course,
        actor=actor,
        action="roster.import",
        target=course.slug,
        after={
            "created": len(result.created),
            "updated": len(result.updated),
            "unchanged": len(result.unchanged),
        },
    )
    if send_links:
        transaction.on_commit(lambda: [send_welcome(user=user, course=course) for user in new_users])
    return result
