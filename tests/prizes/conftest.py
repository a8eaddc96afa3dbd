"""Builders for judging tests: rounds with a rubric, project groups, panels."""

from datetime import timedelta

import pytest
from django.utils import timezone

from prizes.models import Criterion, Entry, JudgeAssignment, Round
from projects.models import Group, GroupMember
from tests.conftest import make_member


def make_round(course, *, title="Proposal presentations", opens=-1, closes=1, **fields) -> Round:
    now = timezone.now()
    return Round.objects.create(
        course=course,
        title=title,
        opens_at=now + timedelta(hours=opens),
        closes_at=now + timedelta(hours=closes),
        **fields,
    )


def make_group(course, name, *members, title="") -> Group:
    group = Group.objects.create(course=course, name=name, title=title or f"{name} idea")
    for member in members:
        GroupMember.objects.create(group=group, member=member)
    return group


def rubric(round, *weights):
    return [
        Criterion.objects.create(round=round, name=f"criterion {i}", weight=w, position=i)
        for i, w in enumerate(weights)
    ]


@pytest.fixture
def judge2(course):
    from courses.models import Role

    return make_member(course, "second.judge@example.com", Role.JUDGE, registered=False)


@pytest.fixture
def panel(course, judge, judge2, student, student2):
    """An open presentation round, rubric (x2, x1) on 1..5, two groups, two judges who declared no conflicts."""
    round = make_round(course)
    criteria = rubric(round, 2.0, 1.0)
    g1 = make_group(course, "Alpha", student)
    g2 = make_group(course, "Beta", student2)
    e1 = Entry.objects.create(round=round, group=g1, position=1)
    e2 = Entry.objects.create(round=round, group=g2, position=2)
    now = timezone.now()
    for j in (judge, judge2):
        JudgeAssignment.objects.create(round=round, judge=j, conflicts_declared_at=now)
    return {"round": round, "criteria": criteria, "entries": [e1, e2], "groups": [g1, g2]}
