"""Writes of the projects app: groups and invitations, proposals and slides, the schedule, paper reviews and grading.

Every rule a student can run into (deadlines, group size, one group, one project option, one regrade) is checked
here, so the pages, the admin actions and the tests all go through the same functions.
"""

import logging
import random
import tempfile
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from courses import audit
from courses import services as course_services
from courses.deadlines import format_course_time, judge_timing
from courses.models import Course, Deadline, Extension, Membership, Role
from projects.models import (
    ABSTRACT_MAX,
    FEEDBACK_MAX,
    GROUP_NAME_MAX,
    GROUPS_DEADLINE,
    REGRADE_REASON_MAX,
    REVIEW_DEADLINE,
    RUBRIC_MAX,
    RUBRIC_MIN,
    SLIDES_DEADLINE,
    TITLE_MAX,
    Group,
    GroupMember,
    Invitation,
    PaperReview,
    SlidesVersion,
)
from projects.pdfcheck import check_pdf
from projects.references import clean_paper_link
from projects.selectors import allow_both_options, group_members, group_timing, project_deadline

logger = logging.getLogger(__name__)

MAX_PDF_BYTES = 20 * 1024 * 1024
REVIEW_PAGES = 1


# ---------------------------------------------------------------- checks shared by several writes


def _lock(member: Membership) -> Membership:
    # Serialises one student's choices (create, accept, submit a review) so that two tabs cannot both pass a check.
    return Membership.objects.select_for_update().select_related("user", "course").get(pk=member.pk)


def _require_student(member: Membership) -> None:
    if member.role != Role.STUDENT:
        raise ValidationError("Final projects are for students of the course.")


def _require_no_group(member: Membership, *, who: str = "You") -> None:
    if GroupMember.objects.filter(member=member).exists():
        verb = "are" if who == "You" else "is"
        raise ValidationError(f"{who} {verb} already in a project group; a student belongs to at most one group.")


def _require_group_option_free(member: Membership) -> None:
    """Option 1 (a group) and Option 2 (a review) exclude each other unless the course allows both."""
    if allow_both_options(member.course):
        return
    if PaperReview.objects.filter(member=member).exists():
        raise ValidationError(
            "You have handed in a paper review (Option 2); the course allows one project option per student, "
            "so you cannot also join a proposal group (Option 1). Ask a TA if you want to switch."
        )


def _require_review_option_free(member: Membership) -> None:
    if allow_both_options(member.course):
        return
    if GroupMember.objects.filter(member=member).exists():
        raise ValidationError(
            "You are in a proposal group (Option 1); the course allows one project option per student, so you "
            "cannot also hand in a paper review (Option 2). Leave the group first if you want to switch."
        )


def _require_membership_changes_open(group: Group) -> None:
    timing = group_timing(group=group, key=SLIDES_DEADLINE, at=timezone.now())
    if timing is not None and timing.late:
        raise ValidationError(
            f"The slides deadline ({format_course_time(timing.due_at, group.course)}) has passed: "
            "changes to the group's members now go through a TA."
        )


def _require_in_group(group: Group, member: Membership) -> None:
    if not GroupMember.objects.filter(group=group, member=member).exists():
        raise ValidationError("Only members of this group can do that.")


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValidationError("Give the group a name.")
    if len(name) > GROUP_NAME_MAX:
        raise ValidationError(f"A group name may be at most {GROUP_NAME_MAX} characters; yours has {len(name)}.")
    return name


# ---------------------------------------------------------------- uploads


def _checked_pdf(upload: UploadedFile, *, what: str, exact_pages: int | None = None) -> int:
    """Size, then the page count from the child-process check; returns the number of pages."""
    if upload.size > MAX_PDF_BYTES:
        raise ValidationError(
            f"The file is {upload.size / 1_000_000:.1f} MB; {what} may be at most {MAX_PDF_BYTES // 1_000_000} MB."
        )
    if upload.size == 0:
        raise ValidationError("The file is empty; choose the PDF again.")
    with tempfile.NamedTemporaryFile(suffix=".pdf") as copy:
        for chunk in upload.chunks():
            copy.write(chunk)
        copy.flush()
        result = check_pdf(copy.name)
    upload.seek(0)
    if result.error == "not-pdf":
        raise ValidationError(
            "This file is not a PDF (whatever its name says). Export or print your document to PDF and upload that."
        )
    if result.error in ("timeout", "crashed"):
        raise ValidationError(
            "We could not read this PDF in the time allowed. Re-export it (for example with Print to PDF) and try "
            "again; if it keeps failing, ask a TA."
        )
    if result.error:
        raise ValidationError("This PDF is damaged and cannot be read. Re-export it to PDF and upload it again.")
    if result.encrypted:
        raise ValidationError("This PDF is password-protected. Save a copy without a password and upload that.")
    if not result.pages:
        raise ValidationError("This PDF has no pages.")
    if exact_pages is not None and result.pages != exact_pages:
        raise ValidationError(
            f"{what[0].upper()}{what[1:]} must be exactly {exact_pages} page; your PDF has {result.pages} pages. "
            "Shorten it and upload it again."
        )
    return result.pages


def _original_name(upload: UploadedFile) -> str:
    return (upload.name or "upload.pdf").rsplit("/", 1)[-1][:200]


# ---------------------------------------------------------------- course set-up


def ensure_project_deadlines(*, course: Course, friday: date) -> list[Deadline]:
    """The course's default project deadlines for the week ending ``friday``, in the course's zone: groups register
    by Thursday 11:59 pm, slides and paper reviews are due Friday 1:00 pm. Existing deadlines are left as they are."""
    thursday_night = datetime.combine(friday - timedelta(days=1), time(23, 59), tzinfo=course.tz)
    friday_one_pm = datetime.combine(friday, time(13, 0), tzinfo=course.tz)
    defaults = [
        (GROUPS_DEADLINE, "Final project: group registration (for prize eligibility)", thursday_night),
        (SLIDES_DEADLINE, "Final project: proposal slides", friday_one_pm),
        (REVIEW_DEADLINE, "Final project: paper review", friday_one_pm),
    ]
    return [
        Deadline.objects.get_or_create(course=course, key=key, defaults={"title": title, "due_at": due})[0]
        for key, title, due in defaults
    ]


# ---------------------------------------------------------------- groups


@transaction.atomic
def create_group(*, member: Membership, name: str) -> Group:
    """A student registers a group with herself as its first member."""
    _require_student(member)
    member = _lock(member)
    name = _clean_name(name)
    _require_no_group(member)
    _require_group_option_free(member)
    deadline = project_deadline(course=member.course, key=SLIDES_DEADLINE)
    if deadline is not None:
        timing = judge_timing(deadline=deadline, member=member, at=timezone.now())
        if timing.late:
            raise ValidationError(
                f"The slides deadline ({format_course_time(timing.due_at, member.course)}) has passed: "
                "ask a TA to set up your group."
            )
    if Group.objects.filter(course=member.course, name__iexact=name).exists():
        raise ValidationError(f"A group called “{name}” already exists in this course; choose another name.")
    group = Group.objects.create(course=member.course, name=name, created_by=member.user)
    GroupMember.objects.create(group=group, member=member)
    return group


def _size_check(group: Group, *, adding: int, count_pending: bool) -> None:
    course = group.course
    size = group.members.count()
    pending = group.invitations.filter(status=Invitation.Status.PENDING).count() if count_pending else 0
    if size + pending + adding > course.group_size_max:
        detail = f"{size} member{'s' if size != 1 else ''}"
        if pending:
            detail += f" and {pending} pending invitation{'s' if pending != 1 else ''}"
        raise ValidationError(f"The group already has {detail}; a group has at most {course.group_size_max} members.")


@transaction.atomic
def invite(*, group: Group, inviter: Membership, email: str) -> Invitation:
    """A member invites a classmate, named by her e-mail, from the course's students."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    _require_in_group(group, inviter)
    _require_membership_changes_open(group)
    email = email.strip()
    invitee = (
        Membership.objects.filter(course=group.course, user__email__iexact=email, role=Role.STUDENT)
        .select_related("user")
        .first()
    )
    if invitee is None:
        raise ValidationError(
            f"No student with the e-mail {email} is in this course. Check the address she uses for the course."
        )
    if invitee.pk == inviter.pk:
        raise ValidationError("You are already in this group.")
    _require_no_group(invitee, who=invitee.user.get_full_name() or invitee.user.email)
    if group.invitations.filter(invitee=invitee, status=Invitation.Status.PENDING).exists():
        raise ValidationError(f"{invitee.user.email} already has an invitation to this group.")
    _size_check(group, adding=1, count_pending=True)
    return Invitation.objects.create(group=group, invitee=invitee, invited_by=inviter)


@transaction.atomic
def accept_invitation(*, invitation: Invitation, member: Membership) -> GroupMember:
    if invitation.invitee_id != member.pk:
        raise ValidationError("This invitation is for someone else.")
    member = _lock(member)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError(f"This invitation is no longer open (it was {invitation.get_status_display().lower()}).")
    group = Group.objects.select_for_update().get(pk=invitation.group_id)
    _require_membership_changes_open(group)
    _require_no_group(member)
    _require_group_option_free(member)
    _size_check(group, adding=1, count_pending=False)
    link = GroupMember.objects.create(group=group, member=member)
    invitation.status = Invitation.Status.ACCEPTED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    # She can only be in one group: her other open invitations lapse.
    Invitation.objects.filter(invitee=member, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.CANCELLED, responded_at=timezone.now()
    )
    return link


@transaction.atomic
def decline_invitation(*, invitation: Invitation, member: Membership) -> Invitation:
    if invitation.invitee_id != member.pk:
        raise ValidationError("This invitation is for someone else.")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError("This invitation is no longer open.")
    invitation.status = Invitation.Status.DECLINED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    return invitation


@transaction.atomic
def cancel_invitation(*, invitation: Invitation, member: Membership) -> Invitation:
    _require_in_group(invitation.group, member)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError("This invitation is no longer open.")
    invitation.status = Invitation.Status.CANCELLED
    invitation.responded_at = timezone.now()
    invitation.save(update_fields=["status", "responded_at"])
    return invitation


def _drop_member(group: Group, member: Membership) -> bool:
    """Remove her; an emptied group is deleted. Returns whether the group still exists."""
    GroupMember.objects.filter(group=group, member=member).delete()
    if not group.members.exists():
        group.delete()
        return False
    return True


@transaction.atomic
def leave_group(*, group: Group, member: Membership) -> bool:
    """A student leaves her group before the slides deadline; returns whether the group still exists."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    _require_in_group(group, member)
    _require_membership_changes_open(group)
    if group.slides.exists() and group.members.count() == 1:
        raise ValidationError("You are the last member and the group has slides; ask a TA to remove the group.")
    return _drop_member(group, member)


def _require_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why: changes made by staff are logged with a reason.")
    return reason


@transaction.atomic
def staff_add_member(*, group: Group, member: Membership, actor, reason: str) -> GroupMember:
    """A TA puts a student into a group at any time (after the slides deadline only staff may); logged."""
    reason = _require_reason(reason)
    group = Group.objects.select_for_update().get(pk=group.pk)
    if member.course_id != group.course_id or member.role != Role.STUDENT:
        raise ValidationError(f"{member.user.email} is not a student of {group.course.name}.")
    member = _lock(member)
    _require_no_group(member, who=member.user.email)
    if not allow_both_options(group.course) and PaperReview.objects.filter(member=member).exists():
        raise ValidationError(f"{member.user.email} has handed in a paper review (Option 2); remove it first.")
    _size_check(group, adding=1, count_pending=False)
    before = [m.user.email for m in group_members(group)]
    link = GroupMember.objects.create(group=group, member=member)
    Invitation.objects.filter(invitee=member, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.CANCELLED, responded_at=timezone.now()
    )
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.add_member",
        target=f"group {group.name}: {member.user.email}",
        before={"members": before},
        after={"members": [*before, member.user.email]},
        reason=reason,
    )
    return link


@transaction.atomic
def staff_remove_member(*, group: Group, member: Membership, actor, reason: str) -> bool:
    """A TA takes a student out of a group; logged. Returns whether the group still exists."""
    reason = _require_reason(reason)
    group = Group.objects.select_for_update().get(pk=group.pk)
    _require_in_group(group, member)
    before = [m.user.email for m in group_members(group)]
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.remove_member",
        target=f"group {group.name}: {member.user.email}",
        before={"members": before},
        after={"members": [e for e in before if e != member.user.email]},
        reason=reason,
    )
    return _drop_member(group, member)


@transaction.atomic
def grant_group_extension(
    *, group: Group, until: datetime, reason: str, actor, key: str = SLIDES_DEADLINE
) -> list[Extension]:
    """Give the whole group more time: a courses Extension for every member, so one rule decides what is late."""
    deadline = project_deadline(course=group.course, key=key)
    if deadline is None:
        raise ValidationError("This course has no such deadline to extend.")
    reason = _require_reason(reason)
    return [
        course_services.grant_extension(
            deadline=deadline, member=member, until=until, reason=f"group {group.name}: {reason}", actor=actor
        )
        for member in group_members(group)
    ]


# ---------------------------------------------------------------- proposal and slides


@transaction.atomic
def update_proposal(*, group: Group, member: Membership, title: str, abstract: str) -> Group:
    """The group's title and abstract; members edit them until the slides deadline, staff at any time."""
    if not member.is_staff_role:
        _require_in_group(group, member)
        timing = group_timing(group=group, key=SLIDES_DEADLINE, at=timezone.now())
        if timing is not None and not timing.allowed:
            raise ValidationError(timing.message)
    title = " ".join(title.split())
    abstract = abstract.strip()
    if len(title) > TITLE_MAX:
        raise ValidationError(f"The title may be at most {TITLE_MAX} characters; yours has {len(title)}.")
    if len(abstract) > ABSTRACT_MAX:
        raise ValidationError(f"The abstract may be at most {ABSTRACT_MAX} characters; yours has {len(abstract)}.")
    group.title = title
    group.abstract = abstract
    group.save(update_fields=["title", "abstract"])
    return group


def upload_slides(*, group: Group, member: Membership, upload: UploadedFile) -> SlidesVersion:
    """A member uploads the group's slides; each upload is a new version, the newest counts."""
    _require_in_group(group, member)
    now = timezone.now()
    timing = group_timing(group=group, key=SLIDES_DEADLINE, at=now)
    if timing is not None and not timing.allowed:
        raise ValidationError(timing.message)
    pages = _checked_pdf(upload, what="the slides")
    with transaction.atomic():
        return SlidesVersion.objects.create(
            group=group,
            file=upload,
            original_name=_original_name(upload),
            size=upload.size,
            pages=pages,
            uploaded_by=member,
            uploaded_at=now,
            late=bool(timing and timing.late),
        )


# ---------------------------------------------------------------- presentation schedule


def _apply_order(course: Course, ordered: list[Group]) -> None:
    # Clear first: the slots are unique, and a swap would otherwise collide half-way.
    Group.objects.filter(course=course).update(presentation_order=None)
    for position, group in enumerate(ordered, start=1):
        Group.objects.filter(pk=group.pk).update(presentation_order=position)


@transaction.atomic
def generate_schedule(*, course: Course, seed: str, actor) -> list[Group]:
    """Shuffle every group into a presentation order; the same seed gives the same order."""
    groups = list(Group.objects.select_for_update().filter(course=course).order_by("created_at", "id"))
    random.Random(f"{course.slug}:{seed}").shuffle(groups)
    before = list(
        Group.objects.filter(course=course, presentation_order__isnull=False)
        .order_by("presentation_order")
        .values_list("name", flat=True)
    )
    _apply_order(course, groups)
    audit.record(
        course=course,
        actor=actor,
        action="project.schedule.generate",
        target=course.slug,
        before={"order": before},
        after={"order": [g.name for g in groups], "seed": seed},
    )
    return groups


@transaction.atomic
def set_schedule(*, course: Course, positions: dict[int, int | None], actor) -> list[Group]:
    """Set the order by hand: ``positions`` maps group id to a slot (1, 2, ...) or None for "not scheduled"."""
    groups = {g.pk: g for g in Group.objects.select_for_update().filter(course=course)}
    unknown = set(positions) - set(groups)
    if unknown:
        raise ValidationError("Some of those groups are not in this course.")
    taken: dict[int, str] = {}
    for group_id, slot in positions.items():
        if slot is None:
            continue
        if slot < 1:
            raise ValidationError("Slots are numbered from 1.")
        if slot in taken:
            raise ValidationError(
                f"Slot {slot} is given to both {taken[slot]} and {groups[group_id].name}; give each group its own."
            )
        taken[slot] = groups[group_id].name
    before = {g.name: g.presentation_order for g in groups.values()}
    Group.objects.filter(course=course).update(presentation_order=None)
    for group_id, slot in positions.items():
        if slot is not None:
            Group.objects.filter(pk=group_id).update(presentation_order=slot)
    audit.record(
        course=course,
        actor=actor,
        action="project.schedule.set",
        target=course.slug,
        before=before,
        after={groups[g].name: s for g, s in positions.items()},
    )
    return list(Group.objects.filter(course=course))


@transaction.atomic
def mark_presented(*, group: Group, actor, at: datetime | None = None) -> Group:
    """Record that the group gave its talk (a TA, or the judging app's "now presenting" flow); idempotent."""
    group = Group.objects.select_for_update().get(pk=group.pk)
    if group.presented_at is not None:
        return group
    group.presented_at = at or timezone.now()
    group.presented_marked_by = actor if getattr(actor, "is_authenticated", False) else None
    group.save(update_fields=["presented_at", "presented_marked_by"])
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.presented",
        target=f"group {group.name}",
        after={"presented_at": group.presented_at.isoformat()},
    )
    return group


@transaction.atomic
def clear_presented(*, group: Group, actor, reason: str) -> Group:
    reason = _require_reason(reason)
    group = Group.objects.select_for_update().get(pk=group.pk)
    before = group.presented_at
    group.presented_at = None
    group.presented_marked_by = None
    group.save(update_fields=["presented_at", "presented_marked_by"])
    audit.record(
        course=group.course,
        actor=actor,
        action="project.group.unpresented",
        target=f"group {group.name}",
        before={"presented_at": before.isoformat() if before else None},
        reason=reason,
    )
    return group


# ---------------------------------------------------------------- paper reviews


def submit_review(
    *, member: Membership, paper_title: str, paper_authors: str, paper_link: str, upload: UploadedFile
) -> PaperReview:
    """A student hands in (or, before grading and the deadline, replaces) her one-page review of a paper."""
    _require_student(member)
    paper_title = " ".join(paper_title.split())
    paper_authors = " ".join(paper_authors.split())
    if not paper_title or not paper_authors:
        raise ValidationError("Give the paper's title and authors.")
    paper_link = clean_paper_link(paper_link)
    now = timezone.now()
    deadline = project_deadline(course=member.course, key=REVIEW_DEADLINE)
    timing = judge_timing(deadline=deadline, member=member, at=now) if deadline else None
    if timing is not None and not timing.allowed:
        raise ValidationError(timing.message)
    existing = PaperReview.objects.filter(member=member).first()
    if existing is not None and existing.graded:
        raise ValidationError("Your review has been graded, so it can no longer be replaced.")
    _require_review_option_free(member)
    _checked_pdf(upload, what="a paper review", exact_pages=REVIEW_PAGES)
    with transaction.atomic():
        member = _lock(member)
        _require_review_option_free(member)
        review = PaperReview.objects.select_for_update().filter(member=member).first() or PaperReview(member=member)
        if review.graded:
            raise ValidationError("Your review has been graded, so it can no longer be replaced.")
        review.paper_title = paper_title[:300]
        review.paper_authors = paper_authors[:500]
        review.paper_link = paper_link
        review.file = upload
        review.original_name = _original_name(upload)
        review.size = upload.size
        review.submitted_at = now
        review.late = bool(timing and timing.late)
        review.save()
        return review


def _score(value, label: str) -> int:
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"Give {label} a score from {RUBRIC_MIN} to {RUBRIC_MAX}.")
    if not RUBRIC_MIN <= value <= RUBRIC_MAX:
        raise ValidationError(f"{label.capitalize()} is scored from {RUBRIC_MIN} to {RUBRIC_MAX}; got {value}.")
    return value


def _grade_state(review: PaperReview) -> dict:
    return {
        "clarity": review.clarity,
        "technical": review.technical,
        "passed": review.passed,
        "released": review.released,
    }


@transaction.atomic
def grade_review(
    *,
    review: PaperReview,
    actor,
    clarity: int,
    technical: int,
    passed: bool,
    feedback: str,
    release: bool = False,
) -> PaperReview:
    """A TA grades a review on the rubric; the student sees it only once released (here or later)."""
    review = PaperReview.objects.select_for_update().get(pk=review.pk)
    clarity = _score(clarity, "clarity of writing")
    technical = _score(technical, "technical communication")
    feedback = feedback.strip()
    if len(feedback) > FEEDBACK_MAX:
        raise ValidationError(f"Feedback may be at most {FEEDBACK_MAX} characters.")
    before = _grade_state(review)
    now = timezone.now()
    review.clarity, review.technical, review.passed, review.feedback = clarity, technical, bool(passed), feedback
    review.graded_by = actor
    review.graded_at = now
    review.released_at = now if release else None
    if review.regrade_pending:
        review.regrade_resolved_at = now
    review.save()
    audit.record(
        course=review.member.course,
        actor=actor,
        action="project.review.grade",
        target=f"review of {review.member.user.email}",
        before=before,
        after=_grade_state(review),
    )
    return review


@transaction.atomic
def release_review(*, review: PaperReview, actor) -> PaperReview:
    review = PaperReview.objects.select_for_update().get(pk=review.pk)
    if not review.graded:
        raise ValidationError("Grade the review before releasing it.")
    if review.released:
        return review
    review.released_at = timezone.now()
    review.save(update_fields=["released_at"])
    audit.record(
        course=review.member.course,
        actor=actor,
        action="project.review.release",
        target=f"review of {review.member.user.email}",
        after={"passed": review.passed},
    )
    return review


@transaction.atomic
def request_regrade(*, review: PaperReview, member: Membership, reason: str) -> PaperReview:
    """A student may ask once, after the grade is released, for her review to be graded again."""
    if review.member_id != member.pk:
        raise ValidationError("This is not your review.")
    review = PaperReview.objects.select_for_update().get(pk=review.pk)
    if not review.released:
        raise ValidationError("You can ask for a regrade once your grade has been released.")
    if review.regrade_requested_at is not None:
        raise ValidationError(
            "You already asked for a regrade on "
            f"{format_course_time(review.regrade_requested_at, member.course)}; a review can be regraded once."
        )
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say what you think was graded wrongly, so the TA knows what to look at.")
    if len(reason) > REGRADE_REASON_MAX:
        raise ValidationError(f"Keep the reason under {REGRADE_REASON_MAX} characters; yours has {len(reason)}.")
    review.regrade_reason = reason
    review.regrade_requested_at = timezone.now()
    review.save(update_fields=["regrade_reason", "regrade_requested_at"])
    return review
