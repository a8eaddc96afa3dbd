"""The roster: import from CSV (email, name, role, registered), every row checked, all rows imported or none; and
one member's edit (display name, role, for-credit registration) or removal from the course.

An import enrols people in its own course; it never edits their accounts (see ``import_roster``). Neither does an
edit: it changes the membership in this course alone.
"""

import csv
import io
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import router, transaction
from django.db.models.deletion import Collector
from django.db.models.functions import Lower

from courses import audit
from courses.models import Course, Membership, Role
from courses.roles import last_instructor_refusal, membership_change_refusal, role_of_actor
from courses.services import check_display_name_free, send_added_notice, send_welcome

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


def _accounts_by_email(emails: list[str]) -> dict[str, list]:
    """Every account per (lower-cased) address; a list, because the user model does not make e-mails unique."""
    found: dict[str, list] = {}
    for start in range(0, len(emails), 1000):  # bounded IN lists (SQLite caps the parameters of one query)
        chunk = emails[start : start + 1000]
        for user in User.objects.annotate(email_lower=Lower("email")).filter(email_lower__in=chunk).order_by("pk"):
            found.setdefault(user.email_lower, []).append(user)
    return found


def _taken_usernames(names: list[str]) -> set[str]:
    taken: set[str] = set()
    for start in range(0, len(names), 1000):
        taken.update(User.objects.filter(username__in=names[start : start + 1000]).values_list("username", flat=True))
    return taken


def _membership_state(member: Membership) -> dict:
    return {"role": member.role, "registered": member.registered_for_credit}


def _edit_state(member: Membership) -> dict:
    return {**_membership_state(member), "display name": member.display_name}


def _locked_member(*, course: Course, member: Membership) -> Membership:
    # The member is looked up in ``course`` only: a membership of another course is not found, whatever its number.
    found = Membership.objects.select_for_update().select_related("user").filter(course=course, pk=member.pk).first()
    if found is None:
        raise ValidationError("That person is not a member of this course.")
    return found


@transaction.atomic
def edit_member(
    *, course: Course, member: Membership, actor, display_name: str, role: str, registered: bool
) -> Membership:
    """Change one member's display name, role or for-credit registration, by the rules of ``courses.roles``."""
    authority = role_of_actor(course=course, actor=actor)
    member = _locked_member(course=course, member=member)
    if role not in Role.values:
        raise ValidationError(f"{role!r} is not a role of the course.")
    display_name = display_name.strip()
    refusal = membership_change_refusal(
        actor_role=authority,
        about_herself=actor is not None and member.user_id == actor.pk,
        email=member.user.email,
        before_role=member.role,
        after_role=role,
        other_fields_change=(member.registered_for_credit, member.display_name) != (registered, display_name),
    ) or last_instructor_refusal(member=member, after_role=role)
    if refusal:
        raise ValidationError(refusal[0].upper() + refusal[1:] + ".")
    if display_name and display_name != member.display_name:
        check_display_name_free(member=member, display_name=display_name)
    before = _edit_state(member)
    member.display_name, member.role, member.registered_for_credit = display_name, role, registered
    if _edit_state(member) == before:
        return member
    member.save(update_fields=["display_name", "role", "registered_for_credit"])
    audit.record(
        course=course,
        actor=actor,
        action="member.update",
        target=member.user.email,
        before=before,
        after=_edit_state(member),
    )
    return member


@transaction.atomic
def remove_member(*, course: Course, member: Membership, actor, reason: str = "") -> None:
    """Take one member out of the course; what belongs to her membership here (her work, tokens, scores) goes too.

    Her account stays: she may be in other courses, and a removal here is this course's decision alone.
    """
    authority = role_of_actor(course=course, actor=actor)
    member = _locked_member(course=course, member=member)
    refusal = membership_change_refusal(
        actor_role=authority,
        about_herself=actor is not None and member.user_id == actor.pk,
        email=member.user.email,
        before_role=member.role,
        after_role=None,
    ) or last_instructor_refusal(member=member, after_role=None)
    if refusal:
        raise ValidationError(refusal[0].upper() + refusal[1:] + ".")
    before = _edit_state(member)
    email = member.user.email
    member.delete()
    audit.record(course=course, actor=actor, action="member.remove", target=email, before=before, reason=reason)


def removal_consequences(member: Membership) -> list[str]:
    """What removing her deletes besides the membership, counted per kind ("3 submissions"), for the confirmation."""
    collector = Collector(using=router.db_for_write(Membership))
    collector.collect([member])
    counts: dict = {}
    for model, instances in collector.data.items():
        if model is not Membership:
            counts[model] = counts.get(model, 0) + len(instances)
    for queryset in collector.fast_deletes:
        counts[queryset.model] = counts.get(queryset.model, 0) + queryset.count()
    lines = []
    for model, number in counts.items():
        if number:
            name = model._meta.verbose_name if number == 1 else model._meta.verbose_name_plural
            lines.append(f"{number} {name}")
    return sorted(lines, key=lambda line: line.split(" ", 1)[1])


@transaction.atomic
def import_roster(*, course: Course, data: bytes, actor, send_links: bool = True) -> RosterResult:
    """Create or update this course's membership per row; every row is checked first, then all are applied or none.

    An import writes memberships of ``course`` alone. An address the platform does not know gets a new account
    named as in the file; an existing account (matched by e-mail) is enrolled as it is and told by e-mail. No
    import changes anything of an existing account (its name, flags, password), whoever she is elsewhere: a roster
    file is the importer's word, not the account owner's, and a name forged in one course would otherwise show on
    every other course's pages. A superuser or another course's staff may still be enrolled here (an instructor
    taking a colleague's course is ordinary), since a membership in this course gives nothing outside it; only her
    account is not the importer's to edit. Who may give which role is ``courses.roles``' rule, checked per line;
    ``actor`` is the signed-in staff member, or ``OPERATOR`` (None) for the platform operator at the command line.
    """
    rows = parse_roster(data)
    authority = role_of_actor(course=course, actor=actor)
    accounts = _accounts_by_email([row.email for row in rows])
    taken = _taken_usernames([row.email for row in rows if row.email not in accounts])
    # The course's memberships are locked, so that no role change slips between the check of a row and its write.
    members = {member.user_id: member for member in Membership.objects.select_for_update().filter(course=course)}
    plan: list[tuple[RosterRow, object, Membership | None]] = []
    errors: list[str] = []
    for row in rows:
        found = accounts.get(row.email, [])
        if len(found) > 1:
            errors.append(
                f"Line {row.line}: more than one account uses {row.email}; "
                "ask a platform administrator to merge them first."
            )
            continue
        if not found and row.email in taken:
            errors.append(
                f"Line {row.line}: another account already has the user name {row.email}; ask a platform administrator."
            )
            continue
        user = found[0] if found else None
        member = members.get(user.pk) if user else None
        refusal = membership_change_refusal(
            actor_role=authority,
            about_herself=user is not None and actor is not None and user.pk == actor.pk,
            email=row.email,
            before_role=member.role if member else None,
            after_role=row.role,
            other_fields_change=member is not None and member.registered_for_credit != row.registered,
        )
        if refusal:
            errors.append(f"Line {row.line}: {refusal}.")
            continue
        plan.append((row, user, member))
    if errors:
        raise RosterError(errors)

    result = RosterResult()
    new_users, enrolled = [], []
    for row, user, member in plan:
        if user is None:
            first, last = _split_name(row.name)
            user = User(username=row.email, email=row.email, first_name=first[:150], last_name=last[:150])
            user.set_unusable_password()
            user.save()
            new_users.append(user)
        elif member is None:
            enrolled.append((user, row.role))
        if member is None:
            member = Membership.objects.create(
                user=user, course=course, role=row.role, registered_for_credit=row.registered
            )
            result.created.append(row.email)
            audit.record(
                course=course, actor=actor, action="member.add", target=row.email, after=_membership_state(member)
            )
        elif (member.role, member.registered_for_credit) != (row.role, row.registered):
            before = _membership_state(member)
            member.role, member.registered_for_credit = row.role, row.registered
            member.save(update_fields=["role", "registered_for_credit"])
            result.updated.append(row.email)
            audit.record(
                course=course,
                actor=actor,
                action="member.update",
                target=row.email,
                before=before,
                after=_membership_state(member),
            )
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

        def tell_everyone():
            for user in new_users:
                send_welcome(user=user, course=course)
            for user, role in enrolled:
                send_added_notice(user=user, course=course, role=role, actor=actor)

        transaction.on_commit(tell_everyone)
    return result
