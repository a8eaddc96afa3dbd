from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from courses import services
from courses.deadlines import arrival_timing, effective_deadline, format_course_time
from courses.models import Deadline
from tests.conftest import utc


@pytest.fixture
def lab1(course):
    return course.deadlines.get(key="lab1")


def test_effective_deadline_is_the_original_without_extensions(lab1, student):
    assert effective_deadline(deadline=lab1, member=student) == lab1.due_at


def test_course_wide_extension_moves_everyones_deadline(lab1, student, ta):
    later = lab1.due_at + timedelta(days=1)
    services.update_deadline(
        deadline=lab1,
        actor=ta.user,
        due_at=lab1.due_at,
        extended_until=later,
        late_policy="refuse",
        grace_minutes=0,
    )
    assert effective_deadline(deadline=lab1, member=student) == later
    entry = lab1.course.audit_entries.get(action="deadline.update")
    assert entry.actor == ta.user
    assert entry.before["extended_until"] is None
    assert entry.after["extended_until"] == later.isoformat()


def test_personal_extension_beyond_course_wide_one_wins_for_her_only(lab1, student, student2, ta):
    lab1.extended_until = lab1.due_at + timedelta(hours=12)
    lab1.save()
    mine = lab1.due_at + timedelta(days=2)
    services.grant_extension(deadline=lab1, member=student, until=mine, reason="illness", actor=ta.user)
    assert effective_deadline(deadline=lab1, member=student) == mine
    assert effective_deadline(deadline=lab1, member=student2) == lab1.extended_until


def test_revoked_extension_no_longer_counts(lab1, student, ta):
    extension = services.grant_extension(
        deadline=lab1, member=student, until=lab1.due_at + timedelta(days=1), reason="", actor=ta.user
    )
    services.revoke_extension(extension=extension, actor=ta.user)
    assert effective_deadline(deadline=lab1, member=student) == lab1.due_at
    actions = list(lab1.course.audit_entries.values_list("action", flat=True))
    assert actions == ["extension.revoke", "extension.grant"]


def test_a_second_extension_replaces_the_first(lab1, student, ta):
    services.grant_extension(
        deadline=lab1, member=student, until=lab1.due_at + timedelta(days=1), reason="", actor=ta.user
    )
    second = lab1.due_at + timedelta(days=4)
    services.grant_extension(deadline=lab1, member=student, until=second, reason="", actor=ta.user)
    assert lab1.extensions.filter(revoked_at__isnull=True).count() == 1
    assert effective_deadline(deadline=lab1, member=student) == second


def test_grace_minutes_accept_a_just_late_upload_as_on_time(lab1, student):
    lab1.grace_minutes = 10
    lab1.save()
    timing = arrival_timing(deadline=lab1, member=student, at=lab1.due_at + timedelta(minutes=9))
    assert (timing.allowed, timing.late) == (True, False)
    timing = arrival_timing(deadline=lab1, member=student, at=lab1.due_at + timedelta(minutes=11))
    assert (timing.allowed, timing.late) == (False, True)


def test_refused_late_upload_message_gives_her_deadline_in_et(course, student):
    deadline = Deadline.objects.create(course=course, key="lab2", title="Lab 2", due_at=utc(2025, 1, 24, 6, 0))
    timing = arrival_timing(deadline=deadline, member=student, at=utc(2025, 1, 24, 6, 1))
    assert not timing.allowed
    assert "Fri 24 Jan 2025, 1:00 am ET" in timing.message


def test_flag_policy_accepts_late_work_and_flags_it(lab1, student):
    lab1.late_policy = Deadline.LatePolicy.FLAG
    lab1.save()
    timing = arrival_timing(deadline=lab1, member=student, at=lab1.due_at + timedelta(hours=1))
    assert (timing.allowed, timing.late) == (True, True)


def test_course_time_is_correct_across_the_daylight_saving_change(course):
    # 9 March 2025: New York moves from EST (UTC-5) to EDT (UTC-4) at 2:00 am.
    assert format_course_time(utc(2025, 3, 9, 6, 59), course) == "Sun 09 Mar 2025, 1:59 am ET"
    assert format_course_time(utc(2025, 3, 9, 7, 0), course) == "Sun 09 Mar 2025, 3:00 am ET"
    assert format_course_time(utc(2025, 11, 2, 5, 30), course) == "Sun 02 Nov 2025, 1:30 am ET"
    assert format_course_time(utc(2025, 11, 2, 6, 30), course) == "Sun 02 Nov 2025, 1:30 am ET"


def test_times_typed_in_course_time_map_to_the_right_instant_on_both_sides_of_the_change(course):
    from courses.forms import CourseDateTimeField

    field = CourseDateTimeField(tz=course.tz)
    # US daylight saving starts on Sun 11 Mar 2035: 1:00 am is EST (UTC-5) the day before, EDT (UTC-4) after.
    assert field.clean("2035-03-10T01:00") == utc(2035, 3, 10, 6, 0)
    assert field.clean("2035-03-12T01:00") == utc(2035, 3, 12, 5, 0)
    assert format_course_time(utc(2035, 3, 12, 5, 0), course) == "Mon 12 Mar 2035, 1:00 am ET"


def test_extension_for_someone_not_in_the_course_is_refused(lab1, outsider, ta):
    with pytest.raises(ValidationError, match="not a member"):
        services.grant_extension(
            deadline=lab1, member=outsider, until=lab1.due_at + timedelta(days=1), reason="", actor=ta.user
        )
    assert lab1.extensions.count() == 0


def test_extension_in_the_past_is_refused(lab1, student, ta):
    with pytest.raises(ValidationError, match="future"):
        services.grant_extension(
            deadline=lab1, member=student, until=timezone.now() - timedelta(hours=1), reason="", actor=ta.user
        )
    assert lab1.extensions.count() == 0
    assert not lab1.course.audit_entries.exists()


def test_course_wide_extension_earlier_than_original_is_refused(lab1, ta):
    original = lab1.due_at
    with pytest.raises(ValidationError, match="later than the original"):
        services.update_deadline(
            deadline=lab1,
            actor=ta.user,
            due_at=original,
            extended_until=original - timedelta(hours=1),
            late_policy="refuse",
            grace_minutes=0,
        )
    lab1.refresh_from_db()
    assert lab1.extended_until is None
    assert not lab1.course.audit_entries.exists()
