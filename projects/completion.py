"""Who has completed the course: her project option and its state, labs where the course requires them, and a
pass/fail suggestion for the staff; also the CSV export of that table. This is the one completion selector: the
staff page, the export and any grade sent elsewhere read it."""

import csv
import io
from dataclasses import dataclass, field

from courses.models import Course, Membership, Role
from labs.selectors import labs_completed
from projects.models import GroupMember, PaperReview

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"


def lab_completion(*, course: Course, members: list[Membership]) -> dict[int, dict[str, bool]]:
    """Per member id, each lab's slug and whether she completed it: the labs' one rule (an on-time success)."""
    return labs_completed(course=course, members=members)


@dataclass
class CompletionRow:
    member: Membership
    option: str  # "proposal", "review" or "" (none chosen)
    state: str
    project_done: bool
    labs: dict[str, bool] | None = field(default=None)
    suggestion: str = FAIL
    # The project's outcome as the student herself sees it: PASS (presented, or a passed review released to her),
    # FAIL (a failed review released to her, and no presentation), or "" while nothing is decided and shown.
    project_outcome: str = ""

    @property
    def labs_done(self) -> bool | None:
        return None if self.labs is None else all(self.labs.values())


def _proposal_state(link: GroupMember) -> tuple[str, bool]:
    group = link.group
    parts = [f"group {group.name}"]
    slides = group.current_slides()
    parts.append("slides uploaded" if slides else "no slides")
    if slides and slides.late:
        parts.append("slides late")
    parts.append("presented" if group.presented_at else "not presented")
    return ", ".join(parts), group.presented_at is not None


def _review_state(review: PaperReview) -> tuple[str, bool]:
    state = f"review {review.state}"
    if review.graded and not review.released:
        state += f" ({'pass' if review.passed else 'fail'})"
    if review.late:
        state += ", late"
    return state, bool(review.graded and review.passed)


def _shown_outcome(link: GroupMember | None, review: PaperReview | None) -> str:
    if link is not None and link.group.presented_at is not None:
        return PASS
    if review is not None and review.graded and review.released and review.passed is not None:
        return PASS if review.passed else FAIL
    return ""


def completion_rows(
    *, course: Course, include_listeners: bool = False, only: Membership | None = None
) -> tuple[list[CompletionRow], list[str]]:
    """One row per student (registered for credit unless ``include_listeners``) and the lab columns; with ``only``,
    that student's row alone (whether or not she is registered)."""
    students = course.memberships.filter(role=Role.STUDENT).select_related("user").order_by("user__email")
    if only is not None:
        students = students.filter(pk=only.pk)
    elif not include_listeners:
        students = students.filter(registered_for_credit=True)
    students = list(students)
    links = {
        gm.member_id: gm
        for gm in GroupMember.objects.filter(member__in=students)
        .select_related("group")
        .prefetch_related("group__slides")
    }
    reviews = {r.member_id: r for r in PaperReview.objects.filter(member__in=students)}
    labs = lab_completion(course=course, members=students)
    lab_slugs = sorted({slug for per_member in (labs or {}).values() for slug in per_member})
    need_labs = course.completion_rule == Course.CompletionRule.PROJECT_AND_LABS
    rows = []
    for member in students:
        states, done, options = [], False, []
        if member.pk in links:
            state, ok = _proposal_state(links[member.pk])
            states.append(state)
            options.append("proposal")
            done = done or ok
        if member.pk in reviews:
            state, ok = _review_state(reviews[member.pk])
            states.append(state)
            options.append("review")
            done = done or ok
        row = CompletionRow(
            member=member,
            option="+".join(options),
            state="; ".join(states) or "no project option chosen",
            project_done=done,
            project_outcome=_shown_outcome(links.get(member.pk), reviews.get(member.pk)),
        )
        if labs is not None:
            row.labs = {slug: bool(labs.get(member.pk, {}).get(slug, False)) for slug in lab_slugs}
        if not need_labs:
            row.suggestion = PASS if done else FAIL
        elif row.labs is None:
            # The rule needs labs but nothing can report them: only a failing project is certain.
            row.suggestion = UNKNOWN if done else FAIL
        else:
            row.suggestion = PASS if done and row.labs_done else FAIL
        rows.append(row)
    return rows, lab_slugs


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def completion_csv(*, course: Course, include_listeners: bool = False) -> str:
    rows, lab_slugs = completion_rows(course=course, include_listeners=include_listeners)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["email", "name", "registered_for_credit", "option", "state", "project_done"]
        + [f"lab:{slug}" for slug in lab_slugs]
        + ["suggestion"]
    )
    for row in rows:
        user = row.member.user
        cells = [
            user.email,
            user.get_full_name(),
            "yes" if row.member.registered_for_credit else "no",
            row.option or "none",
            row.state,
            "yes" if row.project_done else "no",
        ]
        cells += ["yes" if (row.labs or {}).get(slug) else "no" for slug in lab_slugs]
        cells.append(row.suggestion)
        writer.writerow([csv_cell(c) for c in cells])
    return out.getvalue()
