"""Scoring rules a judge meets: the scale, the closing time, her panel, her conflicts, concurrent saves, the clock."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from prizes import services
from prizes.access import judge_may_see_group
from prizes.models import Conflict, Entry, JudgeAssignment, Score
from prizes.selectors import talk_clock
from tests.prizes.conftest import make_group, make_round, rubric


def marks(criteria, *values):
    return {c.pk: v for c, v in zip(criteria, values, strict=True)}


def test_a_judge_saves_and_revises_her_scores_until_the_round_closes(panel, judge):
    entry = panel["entries"][0]
    services.save_scores(judge=judge, entry=entry, values=marks(panel["criteria"], 4, 2))
    services.save_scores(judge=judge, entry=entry, values=marks(panel["criteria"], 5, ""))
    assert dict(Score.objects.filter(judge=judge, entry=entry).values_list("criterion__position", "value")) == {
        0: 5,
        1: 2,
    }


def test_a_score_outside_the_scale_is_refused_with_the_scale_in_the_message(panel, judge):
    with pytest.raises(ValidationError) as exc:
        services.save_scores(judge=judge, entry=panel["entries"][0], values=marks(panel["criteria"], 6, 3))
    assert exc.value.messages == ["criterion 0: 6 is outside the scale; use 1 to 5."]
    assert not Score.objects.exists()


def test_scoring_after_the_round_closed_is_refused(panel, judge):
    round = panel["round"]
    round.closes_at = timezone.now() - timedelta(minutes=1)
    round.save()
    with pytest.raises(ValidationError, match="closed"):
        services.save_scores(judge=judge, entry=panel["entries"][0], values=marks(panel["criteria"], 3, 3))
    assert not Score.objects.exists()


def test_a_judge_cannot_score_an_entry_of_a_round_she_is_not_on(course, panel, judge):
    other = make_round(course, title="Other round")
    rubric(other, 1.0)
    entry = Entry.objects.create(round=other, group=make_group(course, "Gamma"), position=1)
    with pytest.raises(ValidationError, match="not on the panel"):
        services.save_scores(judge=judge, entry=entry, values={other.criteria.get().pk: 3})
    assert not judge_may_see_group(judge.user, entry.group)


def test_a_conflicted_judge_cannot_score_and_cannot_see_the_group(panel, judge):
    entry = panel["entries"][0]
    services.save_scores(judge=judge, entry=entry, values=marks(panel["criteria"], 3, 3))
    assignment = JudgeAssignment.objects.get(round=panel["round"], judge=judge)
    services.declare_conflicts(assignment=assignment, entry_ids={entry.pk})
    assert not Score.objects.filter(judge=judge, entry=entry).exists()
    with pytest.raises(ValidationError, match="conflict of interest"):
        services.save_scores(judge=judge, entry=entry, values=marks(panel["criteria"], 3, 3))
    assert not judge_may_see_group(judge.user, panel["groups"][0])
    assert judge_may_see_group(judge.user, panel["groups"][1])


def test_before_declaring_conflicts_a_judge_sees_no_materials_and_cannot_score(panel, judge):
    JudgeAssignment.objects.filter(judge=judge).update(conflicts_declared_at=None)
    assert not judge_may_see_group(judge.user, panel["groups"][0])
    with pytest.raises(ValidationError, match="declare your conflicts"):
        services.save_scores(judge=judge, entry=panel["entries"][0], values=marks(panel["criteria"], 3, 3))


def test_a_student_cannot_be_put_on_a_panel(panel, student, ta):
    with pytest.raises(ValidationError, match="students cannot judge"):
        services.assign_judge(round=panel["round"], judge=student, actor=ta.user)


@pytest.mark.django_db(transaction=True)
def test_two_judges_saving_at_the_same_moment_lose_nothing(panel, judge, judge2):
    entry = panel["entries"][0]
    barrier = threading.Barrier(2)
    errors = []

    def save(member, values):
        try:
            barrier.wait(timeout=5)
            services.save_scores(judge=member, entry=entry, values=values)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=save, args=(judge, marks(panel["criteria"], 5, 1))),
        threading.Thread(target=save, args=(judge2, marks(panel["criteria"], 2, 4))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    saved = sorted(Score.objects.filter(entry=entry).values_list("judge_id", "criterion__position", "value"))
    assert saved == sorted([(judge.pk, 0, 5), (judge.pk, 1, 1), (judge2.pk, 0, 2), (judge2.pk, 1, 4)])


@pytest.mark.django_db(transaction=True)
def test_one_judge_saving_from_two_tabs_at_once_keeps_one_row_per_criterion(panel, judge):
    entry = panel["entries"][0]
    barrier = threading.Barrier(2)
    errors = []

    def save(value):
        try:
            barrier.wait(timeout=5)
            services.save_scores(judge=judge, entry=entry, values={panel["criteria"][0].pk: value})
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=save, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(Score.objects.filter(entry=entry).values_list("value", flat=True)) in ([2], [3])


def test_the_talk_clock_counts_from_the_server_start_and_records_the_overrun(panel, ta):
    round = panel["round"]
    start = timezone.now()
    services.present_next(round=round, actor=ta.user)
    services.start_talk(round=round, actor=ta.user, at=start)
    round.refresh_from_db()
    clock = talk_clock(round=round, at=start + timedelta(seconds=50))
    assert (clock.running, clock.remaining, clock.display, clock.over) == (True, 130, "2:10", False)
    clock = talk_clock(round=round, at=start + timedelta(seconds=185))
    assert (clock.remaining, clock.display, clock.over) == (-5, "-0:05", True)
    with pytest.raises(ValidationError, match="Stop the current talk"):
        services.present_next(round=round, actor=ta.user)
    talk = services.stop_talk(round=round, actor=ta.user, at=start + timedelta(seconds=187))
    assert talk.overrun_seconds == 7
    panel["groups"][0].refresh_from_db()
    assert panel["groups"][0].presented_at == start
    assert services.present_next(round=round, actor=ta.user) == panel["entries"][1]


def test_the_talk_time_is_the_course_setting(course, panel, ta):
    course.talk_seconds = 120
    course.save()
    round = panel["round"]
    services.present_next(round=round, actor=ta.user)
    start = timezone.now()
    services.start_talk(round=round, actor=ta.user, at=start)
    round.refresh_from_db()
    assert talk_clock(round=round, at=start + timedelta(seconds=20)).remaining == 100


def test_declared_conflicts_are_audited(panel, judge):
    assignment = JudgeAssignment.objects.get(round=panel["round"], judge=judge)
    services.declare_conflicts(assignment=assignment, entry_ids={panel["entries"][1].pk})
    assert Conflict.objects.filter(judge=judge).count() == 1
    entry = panel["round"].course.audit_entries.get(action="prizes.conflict.declared")
    assert entry.after == {"entries": [panel["entries"][1].pk]}
