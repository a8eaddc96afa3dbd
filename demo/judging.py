"""The demo course's judging: a presentation round two judges scored, a prize confirmed, a lab prize waiting."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from demo.course import member
from prizes import services
from prizes.models import JudgeAssignment, Prize, Round


@transaction.atomic
def seed_judging(course) -> None:
    if Round.objects.filter(course=course).exists():
        return
    ta = member(course, "ta@demo.edu")
    judges = [member(course, "judge1@demo.com"), member(course, "judge2@demo.com")]
    now = timezone.now()
    round = Round.objects.create(
        course=course,
        title="Proposal presentations",
        kind=Round.Kind.PRESENTATION,
        scale_min=1,
        scale_max=5,
        opens_at=now - timedelta(hours=2),
        closes_at=now + timedelta(days=7),
        instructions="Score each proposal on the rubric; three minutes per talk, strictly.",
    )
    criteria = [
        services.add_criterion(round=round, name="Novelty", weight=0.4),
        services.add_criterion(round=round, name="Technical soundness", weight=0.4),
        services.add_criterion(round=round, name="Presentation", weight=0.2),
    ]
    for judge in judges:
        services.assign_judge(round=round, judge=judge, actor=ta.user)
    entries = services.add_group_entries(round=round, actor=ta.user)
    for assignment in JudgeAssignment.objects.filter(round=round):
        services.declare_conflicts(assignment=assignment, entry_ids=set())
    marks = {0: ([5, 4, 4], [4, 4, 5]), 1: ([3, 4, 3], [3, 3, 4])}
    for index, entry in enumerate(entries):
        services.set_current(round=round, entry=entry, actor=ta.user)
        services.start_talk(round=round, actor=ta.user, at=now - timedelta(minutes=30 - 5 * index))
        services.stop_talk(round=round, actor=ta.user, at=now - timedelta(minutes=27 - 5 * index))
        for judge, values in zip(judges, marks.get(index % 2), strict=True):
            services.save_scores(
                judge=judge, entry=entry, values={c.pk: v for c, v in zip(criteria, values, strict=True)}
            )
    # The round closes once every talk was scored; the winners are then confirmed for the public page.
    round.closes_at = timezone.now()
    round.save(update_fields=["closes_at"])
    best = Prize.objects.create(
        course=course,
        title="Best proposal",
        sponsor="Demo Sponsor",
        places=1,
        category=Prize.Category.ROUND,
        round=round,
        description="For the most promising proposal of a novel deep-learning idea.",
    )
    services.confirm_awards(
        prize=best,
        actor=ta.user,
        note="Confirmed after the panel's scores were in.",
        at=timezone.now() + timedelta(seconds=1),
    )
    music = course.labs.filter(kind="music").first()
    if music:
        Prize.objects.create(
            course=course,
            title="Best song model",
            places=3,
            category=Prize.Category.LAB,
            lab=music,
            description="Lowest bits per character on the private split, after the deadline.",
        )
