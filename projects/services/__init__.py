"""Writes of the projects app: groups and invitations, proposals and slides, the schedule, paper reviews and grading.

Every rule a student can run into (deadlines, group size, one group, one project option, one regrade) is checked
here, so the pages, the admin actions and the tests all go through the same functions. One module per concept; the
names below are re-exported so that ``from projects import services`` keeps reaching every write.
"""

from projects.services.deadlines import ensure_project_deadlines
from projects.services.groups import (
    create_group,
    grant_group_extension,
    leave_group,
    staff_add_member,
    staff_remove_member,
)
from projects.services.invitations import accept_invitation, cancel_invitation, decline_invitation, invite
from projects.services.proposals import update_proposal, upload_slides
from projects.services.reviews import REVIEW_PAGES, grade_review, release_review, request_regrade, submit_review
from projects.services.schedule import clear_presented, generate_schedule, mark_presented, set_schedule
from projects.services.uploads import MAX_PDF_BYTES

__all__ = [
    "MAX_PDF_BYTES",
    "REVIEW_PAGES",
    "accept_invitation",
    "cancel_invitation",
    "clear_presented",
    "create_group",
    "decline_invitation",
    "ensure_project_deadlines",
    "generate_schedule",
    "grade_review",
    "grant_group_extension",
    "invite",
    "leave_group",
    "mark_presented",
    "release_review",
    "request_regrade",
    "set_schedule",
    "staff_add_member",
    "staff_remove_member",
    "submit_review",
    "update_proposal",
    "upload_slides",
]
