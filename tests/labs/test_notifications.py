"""E-mails: an evaluation's end, and the reminder 24 hours before her effective deadline."""

from datetime import timedelta

from django.core import mail
from django.utils import timezone

from courses.services import grant_extension
from labs.notifications import remind_deadlines
from tests.factories import make_music_lab, save_lstm, submit_folder


def test_students_without_a_submission_are_reminded_once_24_hours_before(course, student, student2, ta, tmp_path):
    lab = make_music_lab(course)
    lab.deadline.due_at = timezone.now() + timedelta(hours=20)
    lab.deadline.save()
    submit_folder(lab=lab, member=student2, directory=save_lstm(tmp_path / "a"))
    assert remind_deadlines() == 1
    assert [m.to for m in mail.outbox] == [[student.user.email]]
    assert "You have not submitted" in mail.outbox[0].body and " ET" in mail.outbox[0].subject
    assert remind_deadlines() == 0


def test_the_reminder_follows_her_extension(course, student, ta):
    lab = make_music_lab(course)
    lab.deadline.due_at = timezone.now() + timedelta(hours=20)
    lab.deadline.save()
    grant_extension(
        deadline=lab.deadline, member=student, until=timezone.now() + timedelta(days=3), reason="", actor=ta.user
    )
    assert remind_deadlines() == 0
    assert remind_deadlines(now=timezone.now() + timedelta(days=2, hours=1)) == 1
