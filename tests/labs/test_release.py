"""Private scores are released only once nobody can change the ranking, and nothing reopens a released lab."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from courses.deadlines import arrival_timing, last_on_time
from courses.models import Deadline
from courses.services import grant_extension, update_deadline
from labs import services
from labs.selectors import leaderboard_for
from prizes.models import Prize
from prizes.selectors import _lab_candidates
from tests.factories import make_music_lab
from tests.labs.test_leaderboard import graded


@pytest.fixture
def lab(course):
    return make_music_lab(course)


def set_deadline(lab, *, minutes_ago: int, grace: int = 0, late_policy=Deadline.LatePolicy.REFUSE):
    Deadline.objects.filter(pk=lab.deadline_id).update(
        due_at=timezone.now() - timedelta(minutes=minutes_ago),
        extended_until=None,
        grace_minutes=grace,
        late_policy=late_policy,
    )
    lab.refresh_from_db()
    lab.deadline.refresh_from_db()


def released(lab, ta):
    return services.release_private(lab=lab, actor=ta.user)


def test_release_is_refused_while_grace_minutes_still_let_her_submit_on_time(lab, student, ta):
    set_deadline(lab, minutes_ago=1, grace=30)
    now = timezone.now()
    assert arrival_timing(deadline=lab.deadline, member=student, at=now).allowed
    assert not arrival_timing(deadline=lab.deadline, member=student, at=now).late

    with pytest.raises(ValidationError, match="can still submit on time until"):
        released(lab, ta)
    lab.refresh_from_db()
    assert lab.private_released_at is None
    assert last_on_time(lab.deadline) == lab.deadline.due_at + timedelta(minutes=30)


def test_release_waits_for_a_frozen_board_when_late_work_is_still_accepted(lab, ta):
    set_deadline(lab, minutes_ago=120, late_policy=Deadline.LatePolicy.FLAG)
    with pytest.raises(ValidationError, match="freeze the leaderboard first"):
        released(lab, ta)
    services.set_frozen(lab=lab, actor=ta.user, frozen=True)
    lab.refresh_from_db()
    assert released(lab, ta).private_released_at is not None
    with pytest.raises(ValidationError, match="unfreezing would change the released ranking"):
        services.set_frozen(lab=lab, actor=ta.user, frozen=False)


def test_an_extension_after_the_release_is_refused_until_the_release_is_withdrawn(lab, student, ta):
    set_deadline(lab, minutes_ago=120)
    lab = released(lab, ta)
    until = timezone.now() + timedelta(days=1)
    with pytest.raises(ValidationError, match="withdraw the release first"):
        grant_extension(deadline=lab.deadline, member=student, until=until, reason="illness", actor=ta.user)
    assert not lab.deadline.extensions.exists()

    with pytest.raises(ValidationError, match="Say why"):
        services.withdraw_release(lab=lab, actor=ta.user, reason=" ")
    services.withdraw_release(lab=lab, actor=ta.user, reason="late accommodation for one student")
    grant_extension(deadline=lab.deadline, member=student, until=until, reason="illness", actor=ta.user)
    entry = lab.course.audit_entries.get(action="leaderboard.withdraw_release")
    assert entry.reason == "late accommodation for one student" and entry.actor == ta.user
    with pytest.raises(ValidationError, match="can still submit on time"):
        released(lab, ta)


@pytest.mark.parametrize(
    "change, allowed",
    [
        ({"extended_until": timezone.now() + timedelta(hours=3)}, False),  # a course-wide extension
        ({"due_at": timezone.now() + timedelta(hours=1)}, False),  # the deadline moved into the future
        ({"grace_minutes": 24 * 60}, False),  # grace that reaches past now
        ({"late_policy": Deadline.LatePolicy.FLAG}, False),  # late work accepted on an unfrozen board
        ({"grace_minutes": 10}, True),  # still in the past: nothing reopens
        ({"title": "Lab 1 (renamed)"}, True),
    ],
)
def test_a_deadline_edit_that_would_reopen_a_released_lab_is_refused(lab, ta, change, allowed):
    set_deadline(lab, minutes_ago=120)
    lab = released(lab, ta)
    deadline = lab.deadline
    values = {
        "due_at": deadline.due_at,
        "extended_until": deadline.extended_until,
        "late_policy": deadline.late_policy,
        "grace_minutes": deadline.grace_minutes,
        **change,
    }
    if allowed:
        update_deadline(deadline=deadline, actor=ta.user, **values)
        return
    with pytest.raises(ValidationError, match="withdraw the release first"):
        update_deadline(deadline=deadline, actor=ta.user, **values)
    deadline.refresh_from_db()
    assert deadline.due_at == lab.deadline.due_at and deadline.grace_minutes == 0
    assert deadline.late_policy == Deadline.LatePolicy.REFUSE and deadline.extended_until is None


def test_prize_rankings_leave_late_work_out_unless_the_prize_says_so(lab, course, student, student2, ta):
    set_deadline(lab, minutes_ago=120, late_policy=Deadline.LatePolicy.FLAG)
    graded(lab, student, public=2.0, private=2.0)
    late = graded(lab, student2, public=1.0, private=1.0)
    late.late = True
    late.save(update_fields=["late"])
    board = leaderboard_for(lab=lab, split="private", viewer=ta)
    assert [row.member_id for row in board.rows] == [student2.pk, student.pk], "the page still shows late work"

    prize = Prize.objects.create(course=course, title="Best model", category=Prize.Category.LAB, lab=lab)
    assert [c.key for c in _lab_candidates(prize)] == [f"member:{student.pk}"]
    prize.counts_late_work = True
    prize.save()
    assert [c.key for c in _lab_candidates(prize)] == [f"member:{student2.pk}", f"member:{student.pk}"]


@pytest.mark.parametrize(
    "who, allowed",
    [("student", False), ("ta", True), ("instructor", True), ("other_ta", False), ("judge", False)],
)
def test_release_freeze_and_withdraw_answer_each_role_as_staff_only_and_change_nothing_when_refused(
    request, lab, client, who, allowed
):
    from django.urls import reverse

    set_deadline(lab, minutes_ago=120)
    member = request.getfixturevalue(who)
    client.force_login(member.user)
    kwargs = {"course_slug": lab.course.slug, "lab_slug": lab.slug}

    def state():
        lab.refresh_from_db()
        return (lab.private_released_at is not None, lab.frozen_at is not None)

    for name, data, after in (
        ("labs:freeze", {"frozen": "1"}, (False, True)),
        ("labs:release", {}, (True, True)),
        ("labs:withdraw_release", {"reason": "a late accommodation"}, (False, True)),
    ):
        before = state()
        response = client.post(reverse(name, kwargs=kwargs), data)
        if allowed:
            assert response.status_code == 302, (name, response.status_code)
            assert state() == after, name
        else:
            assert response.status_code in (403, 404), (name, response.status_code)
            assert state() == before, name
    if not allowed:
        assert not lab.course.audit_entries.filter(action__startswith="leaderboard.").exists()


def test_the_release_button_is_shown_disabled_with_the_reason_while_students_can_still_submit(login, course, ta):
    from django.urls import reverse

    from courses.deadlines import format_course_time
    from tests.factories import make_music_lab

    lab = make_music_lab(course)
    body = login(ta).get(reverse("labs:leaderboard", args=[course.slug, lab.slug])).content.decode()
    last = format_course_time(lab.deadline.course_due_at + timedelta(minutes=lab.deadline.grace_minutes), course)
    assert (
        '<p id="release-blocked">Private scores cannot be released yet: students can still submit on time until '
        f"{last} (extensions and grace minutes included).</p>"
    ) in body
    assert '<button type="button" disabled aria-describedby="release-blocked">Release private scores</button>' in body
    assert reverse("labs:release", args=[course.slug, lab.slug]) not in body
