"""The staff's record of each student: her page (submissions, extensions, entries, project and grade) and the scores
CSV of the whole course. Scores come from the labs' one ranking (her counted entry per lab and split, as the boards
show it) and completion from the one completion selector; nothing here recomputes either."""

import csv
import io
from dataclasses import dataclass, field

from courses.models import Course, Membership
from courses.selectors import her_extensions
from labs.entries.models import LabEntry
from labs.models import Lab
from labs.selectors import LeaderboardRow, every_submission_of, latest_evaluation, leaderboard_for
from projects.completion import CompletionRow, completion_rows, csv_cell
from projects.models import GroupMember, PaperReview

SPLITS = ("public", "private")


def standings(*, course: Course, viewer: Membership) -> list[tuple[Lab, dict[str, dict[int, LeaderboardRow]]]]:
    """Per lab, per split, each student's counted entry on the board (staff ``viewer``: both splits are readable)."""
    result = []
    for lab in course.labs.select_related("deadline"):
        per_split = {}
        for split in SPLITS:
            board = leaderboard_for(lab=lab, split=split, viewer=viewer)
            per_split[split] = {row.member_id: row for row in board.rows if not row.baseline}
        result.append((lab, per_split))
    return result


def scores_csv(*, course: Course, viewer: Membership, include_listeners: bool = False) -> str:
    """One line per student: her entry's score per lab and split (with its rank and submission), whether she
    completed each lab, her project option and state, and the pass/fail grade the completion rule suggests."""
    rows, lab_slugs = completion_rows(course=course, include_listeners=include_listeners)
    boards = standings(course=course, viewer=viewer)
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["email", "name", "display_name", "registered_for_credit"]
    for lab, _ in boards:
        for split in SPLITS:
            header += [f"{lab.slug}:{split}:{lab.primary_metric}", f"{lab.slug}:{split}:rank"]
        header += [f"{lab.slug}:submission", f"{lab.slug}:completed"]
    header += ["project_option", "project_state", "project_done", "grade"]
    writer.writerow(header)
    for row in rows:
        member = row.member
        cells = [
            member.user.email,
            member.user.get_full_name(),
            member.display_name,
            "yes" if member.registered_for_credit else "no",
        ]
        for lab, per_split in boards:
            for split in SPLITS:
                entry = per_split[split].get(member.pk)
                cells += [entry.score if entry else "", entry.rank if entry else ""]
            entry = per_split["public"].get(member.pk)
            cells.append(f"#{entry.submission_number}" if entry else "")
            done = (row.labs or {}).get(lab.slug)
            cells.append("" if done is None else ("yes" if done else "no"))
        cells += [row.option or "none", row.state, "yes" if row.project_done else "no", row.suggestion]
        writer.writerow([csv_cell(c) for c in cells])
    return out.getvalue()


@dataclass
class StudentRecord:
    member: Membership
    completion: CompletionRow | None
    submissions: list = field(default_factory=list)  # (submission, its newest evaluation)
    entries: list = field(default_factory=list)  # (lab, her public board row, her private board row)
    lab_entries: list = field(default_factory=list)
    extensions: list = field(default_factory=list)
    group_link: GroupMember | None = None
    review: PaperReview | None = None


def student_record(*, course: Course, member: Membership, viewer: Membership) -> StudentRecord:
    """Everything the staff look up about one student, each part read from its owner's selector."""
    rows, _ = completion_rows(course=course, only=member)
    record = StudentRecord(member=member, completion=rows[0] if rows else None)
    record.submissions = [(s, latest_evaluation(s)) for s in every_submission_of(member=member)]
    for lab, per_split in standings(course=course, viewer=viewer):
        record.entries.append((lab, per_split["public"].get(member.pk), per_split["private"].get(member.pk)))
    record.lab_entries = list(LabEntry.objects.filter(member=member).select_related("lab", "submission"))
    record.extensions = her_extensions(member=member)
    record.group_link = GroupMember.objects.filter(member=member).select_related("group").first()
    record.review = PaperReview.objects.filter(member=member).first()
    return record
