"""The project panel of the course dashboard: what a student still has to do, and what waits for the staff."""

from courses.models import Course, Membership, Role
from projects.models import REVIEW_DEADLINE, SLIDES_DEADLINE, PaperReview
from projects.selectors import group_due, group_of, member_due, pending_invitations_for, review_queue


def _student_steps(member: Membership) -> list[dict]:
    group = group_of(member)
    review = PaperReview.objects.filter(member=member).first()
    steps = []
    if group is None and review is None:
        invitations = pending_invitations_for(member)
        if invitations:
            names = ", ".join(inv.group.name for inv in invitations)
            steps.append({"text": f"Answer your group invitation ({names}).", "due": None})
        steps.append(
            {
                "text": "Choose your final project: register or join a group (Option 1), or upload a paper review "
                "(Option 2).",
                "due": member_due(member=member, key=REVIEW_DEADLINE),
            }
        )
    if group is not None:
        if not group.slides.exists():
            steps.append(
                {
                    "text": f"Upload your group's slides ({group.name}).",
                    "due": group_due(group=group, key=SLIDES_DEADLINE),
                }
            )
        if group.presentation_order and not group.presented_at:
            steps.append({"text": f"Present in slot {group.presentation_order}.", "due": None})
        if group.presented_at:
            steps.append({"text": "Your group has presented.", "due": None, "done": True})
    if review is not None:
        if review.released:
            verdict = "passed" if review.passed else "did not pass"
            steps.append(
                {"text": f"Your paper review {verdict}: read the feedback.", "due": None, "done": review.passed}
            )
        else:
            steps.append({"text": "Your paper review is handed in and waiting for its grade.", "due": None})
    return steps


def panel(*, course: Course, member: Membership) -> dict | None:
    if member.role == Role.STUDENT:
        return {"template": "projects/_panel.html", "course": course, "steps": _student_steps(member), "staff": False}
    if member.is_staff_role:
        queue = review_queue(course=course)
        return {
            "template": "projects/_panel.html",
            "course": course,
            "staff": True,
            "open_reviews": queue.count(),
            "regrades": sum(1 for r in queue if r.regrade_pending),
        }
    return None
