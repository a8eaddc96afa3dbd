"""Winners: eligibility, places, the private lab leaderboard, confirmation, and changes after confirmation."""

import uuid
from datetime import timedelta

from django.utils import timezone

from labs.models import Evaluation, EvaluationStatus, Submission
from prizes import services
from prizes.models import Award, Prize, Score
from prizes.selectors import award_changes, compute_winners, latest_decision
from tests.conftest import make_member
from tests.factories import make_music_lab
from tests.prizes.conftest import make_group


def close(round):
    round.opens_at = timezone.now() - timedelta(hours=3)
    round.closes_at = timezone.now() - timedelta(minutes=1)
    round.save()


def score_all(panel, judge, first, second):
    """Judge marks entry 1 with ``first`` and entry 2 with ``second`` on both criteria."""
    a, b = panel["criteria"]
    e1, e2 = panel["entries"]
    Score.objects.bulk_create(
        [
            Score(judge=judge, entry=e1, criterion=a, value=first, updated_at=timezone.now()),
            Score(judge=judge, entry=e1, criterion=b, value=first, updated_at=timezone.now()),
            Score(judge=judge, entry=e2, criterion=a, value=second, updated_at=timezone.now()),
            Score(judge=judge, entry=e2, criterion=b, value=second, updated_at=timezone.now()),
        ]
    )


def project_prize(panel, places=1, **fields):
    return Prize.objects.create(
        course=panel["round"].course,
        title="Best proposal",
        places=places,
        category="round",
        round=panel["round"],
        **fields,
    )


def test_no_winners_before_the_round_closes(panel, judge):
    score_all(panel, judge, 5, 1)
    computation = compute_winners(prize=project_prize(panel))
    assert not computation.available
    assert "not closed" in computation.reason


def test_an_ineligible_group_is_skipped_with_the_reason_and_the_next_one_wins(course, panel, judge, judge2):
    listener = make_member(course, "listener.only@example.edu", registered=False)
    alpha = panel["groups"][0]
    alpha.members.all().delete()
    alpha.members.create(member=listener)
    score_all(panel, judge, 5, 2)
    score_all(panel, judge2, 4, 1)
    close(panel["round"])
    computation = compute_winners(prize=project_prize(panel))
    assert [(c.name, c.rank, c.eligible) for c in computation.candidates] == [("Alpha", 1, False), ("Beta", 2, True)]
    assert "registered for credit" in computation.candidates[0].reasons[0]
    assert [w.name for w in computation.winners] == ["Beta"]


def test_more_places_than_eligible_entries_leaves_places_empty_and_says_so(panel, judge, judge2):
    score_all(panel, judge, 5, 2)
    score_all(panel, judge2, 4, 1)
    close(panel["round"])
    computation = compute_winners(prize=project_prize(panel, places=3))
    assert [w.name for w in computation.winners] == ["Alpha", "Beta"]
    assert computation.shortfall == "This prize has 3 places but only 2 eligible entries: 1 place will stay empty."


def test_confirming_stores_awards_with_the_ranking_and_a_later_change_is_shown_not_applied(panel, judge, judge2, ta):
    score_all(panel, judge, 5, 2)
    score_all(panel, judge2, 4, 1)
    close(panel["round"])
    prize = project_prize(panel)
    decision = services.confirm_awards(prize=prize, actor=ta.user)
    assert [(a.place, a.public_name) for a in decision.awards.all()] == [(1, "Alpha")]
    assert [c["name"] for c in decision.snapshot["candidates"]] == ["Alpha", "Beta"]
    audit = prize.course.audit_entries.get(action="prizes.awards.confirmed")
    assert audit.after == [f"group:{panel['groups'][0].pk}"] and audit.actor == ta.user
    # A corrected score after confirmation flips the outcome.
    Score.objects.filter(entry=panel["entries"][0]).update(value=1)
    Score.objects.filter(entry=panel["entries"][1]).update(value=5)
    changes = award_changes(decision=latest_decision(prize), computation=compute_winners(prize=prize))
    assert changes == [{"place": 1, "confirmed": "Alpha", "now": "Beta"}]
    assert [a.public_name for a in latest_decision(prize).awards.all()] == ["Alpha"]
    services.confirm_awards(prize=prize, actor=ta.user, note="score correction")
    assert [a.public_name for a in latest_decision(prize).awards.all()] == ["Beta"]
    assert Award.objects.count() == 2
    assert award_changes(decision=latest_decision(prize), computation=compute_winners(prize=prize)) == []


def _graded(lab, member, *, private, public=1.0):
    submission = Submission.objects.create(
        lab=lab,
        member=member,
        storage_prefix=f"artifacts/test/{uuid.uuid4().hex}",
        files=[],
        sha256=uuid.uuid4().hex,
        size=1,
        received_at=timezone.now(),
    )
    Evaluation.objects.create(
        submission=submission,
        status=EvaluationStatus.SUCCEEDED,
        public_score=public,
        private_score=private,
        public_tiebreak=0.5,
        private_tiebreak=0.5,
        metrics={},
        samples=[{"kind": "abc", "title": "Reel", "text": "X:1\nT:Reel\nK:D\nABcd|"}],
    )
    return submission


def test_a_lab_prize_comes_from_the_private_leaderboard_only_after_release(course, student, student2):
    listener = make_member(course, "listener.only@example.edu", registered=False, display_name="tunesmith")
    lab = make_music_lab(course)
    _graded(lab, student, private=2.5)
    _graded(lab, student2, private=2.1)
    _graded(lab, listener, private=1.9)
    prize = Prize.objects.create(course=course, title="Best music model", places=2, category="lab", lab=lab)
    assert not compute_winners(prize=prize).available
    lab.private_released_at = timezone.now()
    lab.save()
    # bits per character: lower is better; listeners may win a lab prize by default.
    assert [w.name for w in compute_winners(prize=prize).winners] == ["tunesmith", "alan.turing"]
    prize.registered_only = True
    prize.save()
    computation = compute_winners(prize=prize)
    assert [w.name for w in computation.winners] == ["alan.turing", "ada.lovelace"]
    assert computation.candidates[0].reasons == [
        "Not registered for credit: this prize is for registered students only."
    ]


def test_a_group_registered_after_the_deadline_cannot_win(course, panel, judge, judge2):
    from courses.models import Deadline

    Deadline.objects.create(
        course=course, key="project-groups", title="Groups", due_at=timezone.now() - timedelta(days=2)
    )
    late = make_group(course, "Late", make_member(course, "late.student@example.edu"))
    assert late.created_at > timezone.now() - timedelta(days=1)
    score_all(panel, judge, 5, 2)
    close(panel["round"])
    computation = compute_winners(prize=project_prize(panel, places=2))
    assert all(
        not c.eligible and "after the group-registration deadline" in c.reasons[0] for c in computation.candidates
    )
    assert computation.winners == []
