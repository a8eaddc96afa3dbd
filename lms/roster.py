"""The roster from the LMS (Names and Role Provisioning Services), imported with the CSV import's own rules.

The LMS's list becomes roster rows that go through ``courses.roster.import_roster``: only the section's course
changes, each membership change is audited, and who may give which role is ``courses.roles``' rule. On top of it:
learners become students; the LMS's staff roles are applied only when an instructor runs the sync and confirms
them; and nothing the LMS says lowers a member who is staff of the course.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.db.models.functions import Lower
from pylti1p3.names_roles import NamesRolesProvisioningService

from courses import audit
from courses.models import STAFF_ROLES, Membership, Role
from courses.roles import role_of_actor
from courses.roster import RosterResult, import_roster
from lms.identities import holds_staff_role, link, role_from_lms, roster_csv
from lms.models import Section
from lms.tool import every_page, service_connector


@dataclass
class SyncResult:
    roster: RosterResult = field(default_factory=RosterResult)
    staff_to_confirm: list[str] = field(default_factory=list)
    kept_staff: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def lms_members(section: Section) -> list[dict]:
    """The section's whole LMS roster, every page of it; a page the LMS does not answer fails the whole list."""
    connector = service_connector(section.deployment.registration)
    service = NamesRolesProvisioningService(connector, {"context_memberships_url": section.memberships_url})
    return every_page(service.get_members_page, section.memberships_url)


def sync_roster(*, section: Section, actor, apply_staff_roles: bool = False) -> SyncResult:
    """Imports the section's LMS roster into its course. ``apply_staff_roles``: the instructor confirmed that the
    LMS's TAs and instructors become the course's; without her (or without that confirmation) they are listed in
    ``staff_to_confirm`` and left out. The whole roster is read before anything changes, and then imported in one
    transaction: a page the LMS does not answer, or a row the import refuses, leaves the course as it was."""
    people = lms_members(section)
    course = section.course
    authority = role_of_actor(course=course, actor=actor)
    apply_staff = apply_staff_roles and authority == Role.INSTRUCTOR
    current = {
        m.email_lower: m
        for m in Membership.objects.filter(course=course)
        .annotate(email_lower=Lower("user__email"))
        .select_related("user")
    }
    result = SyncResult()
    rows, subjects, confirmed_staff = [], {}, set()
    for person in people:
        email = (person.get("email") or "").strip().lower()
        label = email or person.get("name") or person.get("user_id", "?")
        if person.get("status", "Active") != "Active":
            continue
        role = role_from_lms(person.get("roles") or [])
        if role is None or not email:
            result.skipped.append(label)
            continue
        member = current.get(email)
        if member is not None and member.role in STAFF_ROLES and role not in STAFF_ROLES:
            result.kept_staff.append(email)  # the LMS never lowers the course's staff
            subjects[email] = person["user_id"]
            continue
        if role in STAFF_ROLES and not apply_staff:
            result.staff_to_confirm.append(f"{email} ({role})")
            continue
        name = (person.get("name") or email).strip()[:150]
        registered = member.registered_for_credit if member is not None else role == Role.STUDENT
        rows.append((email, name, role, registered))
        subjects[email] = person["user_id"]
        if role in STAFF_ROLES:
            confirmed_staff.add(email)
    with transaction.atomic():
        if rows:
            result.roster = import_roster(course=course, data=roster_csv(rows), actor=actor)
        _link_identities(section=section, subjects=subjects, confirmed_staff=confirmed_staff)
        audit.record(
            course=course,
            actor=actor,
            action="lms.roster.sync",
            target=str(section)[:200],
            after={
                "created": len(result.roster.created),
                "updated": len(result.roster.updated),
                "unchanged": len(result.roster.unchanged),
                "staff_to_confirm": len(result.staff_to_confirm),
                "skipped": len(result.skipped),
            },
        )
    return result


def _link_identities(*, section: Section, subjects: dict[str, str], confirmed_staff: set[str]) -> None:
    """Links each LMS user id to the account of its course member, so that launches and grades name her. An account
    holding a staff role anywhere is linked only when the LMS named her staff here and an instructor confirmed it:
    an LMS learner row with a colleague's address must not open the colleague's account at the next launch."""
    registration = section.deployment.registration
    members = Membership.objects.filter(course=section.course).annotate(email_lower=Lower("user__email"))
    for member in members.filter(email_lower__in=list(subjects)).select_related("user"):
        if holds_staff_role(member.user) and member.email_lower not in confirmed_staff:
            continue
        link(registration=registration, subject=subjects[member.email_lower], user=member.user)
