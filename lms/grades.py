"""Grades to the LMS (Assignment and Grade Services): one line item per lab and one for the final project in each
linked section, created once, and each student's score sent once it is final and again, with a new timestamp,
whenever it changes. Completion is read from the one completion selector (``projects.completion``), so the LMS
never disagrees with the staff's completion page and export.

Scores, each a fraction of its line item's ``scoreMaximum`` (1 unless the LMS's column says otherwise):
- a lab, once its private scores are released: all of it when she completed the lab (an on-time success), none
  when she did not; nothing before the release;
- the final project, pass/fail, once its outcome is shown to her: 1 (pass) or 0 (fail), explicitly;
each with ``activityProgress`` Completed and ``gradingProgress`` FullyGraded. A score sent before that is no longer
final (a release or a presentation undone) is withdrawn: 0 with ``gradingProgress`` Pending.
"""

import logging
from dataclasses import dataclass, field

import requests
from django.db import transaction
from django.utils import timezone
from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.exception import LtiException
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem as LtiLineItem

from courses import audit
from lms.models import GradeSent, LineItem, LmsIdentity, Section
from lms.tool import every_page, service_connector
from projects.completion import FAIL, PASS, completion_rows

LOGGER = logging.getLogger(__name__)
PROJECT_KEY = "project"
SCORE_MAXIMUM = 1
LINEITEM_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitem+json"


@dataclass
class GradeSyncResult:
    sent: int = 0
    unchanged: int = 0
    refused: list[str] = field(default_factory=list)
    without_lms_account: list[str] = field(default_factory=list)


def lab_key(slug: str) -> str:
    return f"lab:{slug}"


def grade_columns(course) -> dict[str, str]:
    """The LMS grade columns of a course, key to label: one per lab, in order, and the final project's. Deep linking
    places the same columns, so a link placed in a module and the grade sync share one line item."""
    columns = {lab_key(lab.slug): f"Lab {lab.number}: {lab.title}" for lab in course.labs.order_by("number")}
    columns[PROJECT_KEY] = "Final project"
    return columns


def column_line_item(key: str, label: str) -> LtiLineItem:
    """The LMS line item of a column: tagged with its key, by which the sync finds it again."""
    return LtiLineItem().set_tag(key).set_resource_id(key).set_label(label).set_score_maximum(SCORE_MAXIMUM)


class GradeService(AssignmentsGradesService):
    """pylti1p3's grade service, with a plain create: the sync reads the LMS's line items once, every page of them,
    and makes only the ones missing (pylti1p3's find-or-create reads them all again for each)."""

    def create_lineitem(self, line_item: LtiLineItem) -> LtiLineItem:
        if not self.can_create_lineitem():
            raise LtiException("Can't create lineitem: Missing required scope")
        answer = self._service_connector.make_service_request(
            self._service_data["scope"],
            self._service_data["lineitems"],
            is_post=True,
            data=line_item.get_value(),
            content_type=LINEITEM_MEDIA_TYPE,
            accept=LINEITEM_MEDIA_TYPE,
        )
        if not isinstance(answer["body"], dict):
            raise LtiException("The LMS answered the new line item with something else than a line item.")
        return LtiLineItem(answer["body"])


def _service(section: Section) -> GradeService:
    connector = service_connector(section.deployment.registration)
    return GradeService(connector, {"scope": section.ags_scopes, "lineitems": section.lineitems_url})


def line_items(*, section: Section, service: GradeService) -> dict[str, LineItem]:
    """The section's line item per key, made in the LMS only when neither we nor the LMS have it: the LMS's are found
    by their tag on any page of its list, so a sync that was cut off after the LMS made one does not make a second."""
    wanted = grade_columns(section.course)
    found = {item.key: item for item in section.line_items.all()}
    missing = {key: label for key, label in wanted.items() if key not in found}
    if not missing:
        return found
    listed: dict[str, LtiLineItem] = {}
    for item in every_page(service.get_lineitems_page, section.lineitems_url):
        if item.get("tag") in missing:
            listed.setdefault(item["tag"], LtiLineItem(item))
    for key, label in missing.items():
        remote = listed.get(key) or service.create_lineitem(column_line_item(key, label))
        found[key], _ = LineItem.objects.get_or_create(
            section=section,
            key=key,
            defaults={"url": remote.get_id(), "label": label, "score_maximum": remote.get_score_maximum() or 1},
        )
    return found


@dataclass(frozen=True)
class Wanted:
    fraction: float  # of the line item's scoreMaximum
    comment: str
    activity_progress: str = "Completed"
    grading_progress: str = "FullyGraded"


WITHDRAWN = Wanted(0.0, "withdrawn", activity_progress="InProgress", grading_progress="Pending")


def _wanted_scores(row, released_labs: set[str]) -> dict[str, Wanted | None]:
    """Per key, the score to send now; None while nothing is final."""
    scores: dict[str, Wanted | None] = {}
    for slug, done in (row.labs or {}).items():
        if slug in released_labs:
            scores[lab_key(slug)] = Wanted(1.0, "completed") if done else Wanted(0.0, "not completed")
        else:
            scores[lab_key(slug)] = None
    outcome = {PASS: Wanted(1.0, "pass"), FAIL: Wanted(0.0, "fail")}
    scores[PROJECT_KEY] = outcome.get(row.project_outcome)
    return scores


def sync_grades(*, section: Section, actor) -> GradeSyncResult:
    """Sends every changed score of the section's course; a score the LMS refuses is kept as refused, shown to the
    staff, and sent again by the next sync."""
    service = _service(section)
    items = line_items(section=section, service=service)
    subjects = dict(
        LmsIdentity.objects.filter(registration=section.deployment.registration).values_list("user_id", "subject")
    )
    rows, _ = completion_rows(course=section.course, include_listeners=True)
    released_labs = set(section.course.labs.filter(private_released_at__isnull=False).values_list("slug", flat=True))
    result = GradeSyncResult()
    for row in rows:
        subject = subjects.get(row.member.user_id)
        if subject is None:
            result.without_lms_account.append(row.member.user.email)
            continue
        for key, wanted in _wanted_scores(row, released_labs).items():
            item = items.get(key)
            if item is None:
                continue
            before = GradeSent.objects.filter(line_item=item, member=row.member).first()
            if wanted is None:
                if before is None or before.comment == WITHDRAWN.comment:
                    continue
                wanted = WITHDRAWN
            score = wanted.fraction * item.score_maximum
            if (
                before
                and before.status == GradeSent.Status.SENT
                and (before.score_given, before.score_maximum, before.comment)
                == (score, item.score_maximum, wanted.comment)
            ):
                result.unchanged += 1
                continue
            if _send(service=service, item=item, member=row.member, subject=subject, score=score, wanted=wanted):
                result.sent += 1
            else:
                result.refused.append(f"{row.member.user.email}: {item.label}")
    audit.record(
        course=section.course,
        actor=actor,
        action="lms.grades.sync",
        target=str(section)[:200],
        after={"sent": result.sent, "unchanged": result.unchanged, "refused": len(result.refused)},
    )
    return result


def _send(*, service, item: LineItem, member, subject: str, score: float, wanted: Wanted) -> bool:
    stamp = timezone.now()
    comment = wanted.comment
    grade = (
        Grade()
        .set_score_given(score)
        .set_score_maximum(item.score_maximum)
        .set_timestamp(stamp.isoformat())
        .set_activity_progress(wanted.activity_progress)
        .set_grading_progress(wanted.grading_progress)
        .set_user_id(subject)
        .set_comment(comment)
    )
    error = ""
    try:
        service.put_grade(grade, LtiLineItem({"id": item.url}))
    except (LtiException, requests.RequestException) as exc:
        error = str(exc)[:2000]
        LOGGER.warning("the LMS refused a score for %s in %s: %s", member.user.email, item.url, error)
    with transaction.atomic():
        record, _ = GradeSent.objects.select_for_update().get_or_create(
            line_item=item,
            member=member,
            defaults={"score_given": score, "score_maximum": item.score_maximum, "status": "", "timestamp": stamp},
        )
        record.score_given, record.score_maximum, record.comment, record.timestamp = (
            score,
            item.score_maximum,
            comment,
            stamp,
        )
        record.status = GradeSent.Status.REFUSED if error else GradeSent.Status.SENT
        record.error = error
        record.attempts += 1
        record.save()
    return not error


def sync_course(*, course_id: int, section_id: int | None = None, actor_id: int | None = None) -> list[str]:
    """The worker's sync: every section of the course that has a grade service (or the one asked for). Returns what
    is left to send: scores the LMS refused and sections it did not answer for; empty when the LMS took everything."""
    from django.contrib.auth import get_user_model

    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    sections = Section.objects.filter(deployment__course_id=course_id).exclude(lineitems_url="")
    if section_id is not None:
        sections = sections.filter(pk=section_id)
    left: list[str] = []
    for section in sections.select_related("deployment__registration", "deployment__course"):
        try:
            result = sync_grades(section=section, actor=actor)
        except (LtiException, requests.RequestException) as exc:
            LOGGER.warning("the LMS of %s did not answer the grade sync: %s", section, exc)
            Section.objects.filter(pk=section.pk).update(
                grade_sync_at=timezone.now(), grade_sync_error=f"The LMS did not answer: {str(exc)[:1000]}"
            )
            audit.record(
                course=section.course,
                actor=actor,
                action="lms.grades.sync",
                target=str(section)[:200],
                after={"error": str(exc)[:500]},
            )
            left.append(f"{section}: {str(exc)[:200]}")
            continue
        refused = f"The LMS refused {len(result.refused)} score(s), listed below." if result.refused else ""
        Section.objects.filter(pk=section.pk).update(grade_sync_at=timezone.now(), grade_sync_error=refused)
        left.extend(f"{section}: {refused}" for refused in result.refused)
    return left
