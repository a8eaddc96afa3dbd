"""The public winners pages: each winner with her project's title, members' display names, prize and date."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from courses.deadlines import format_course_time
from courses.models import Membership
from prizes import services
from prizes.models import Entry, JudgeAssignment, Prize, Round, Score
from tests.prizes.conftest import make_group, make_round, rubric


@pytest.fixture
def published(course, ta, judge, student, student2):
    Membership.objects.filter(pk=student.pk).update(display_name="Ada L.")
    Membership.objects.filter(pk=student2.pk).update(display_name="Turing Fan")
    round = make_round(course, normalisation="mean")
    criterion = rubric(round, 1.0)[0]
    bards = make_group(course, "Neural Bards", student, student2, title="Folk tunes that remember their key")
    entry = Entry.objects.create(round=round, group=bards, position=1)
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=timezone.now())
    Score.objects.create(judge=judge, entry=entry, criterion=criterion, value=5, updated_at=timezone.now())
    Round.objects.filter(pk=round.pk).update(closes_at=timezone.now() - timedelta(minutes=1))
    prize = Prize.objects.create(course=course, title="Best proposal", places=1, category="round", round=round)
    decision = services.confirm_awards(prize=prize, actor=ta.user)
    return decision


def test_a_winner_shows_her_projects_title_members_display_names_prize_and_date(course, published, student, student2):
    body = Client().get(reverse("prizes_winners", args=[course.slug])).content.decode()
    assert '<strong class="winner">Neural Bards</strong>' in body
    assert "“Folk tunes that remember their key”" in body
    assert "Ada L., Turing Fan" in body
    assert "Best proposal" in body
    assert "announced" in body and format_course_time(published.confirmed_at, course) in body
    for member in (student, student2):
        assert member.user.email not in body
        assert member.user.get_full_name() not in body


def test_the_index_lists_each_courses_prizes_and_leads_to_its_page(course, other_course, published):
    Prize.objects.create(
        course=other_course, title="Unpublished", places=1, category="round", round=make_round(other_course)
    )
    body = Client().get(reverse("winners_index")).content.decode()
    assert f'href="{reverse("prizes_winners", args=[course.slug])}"' in body
    assert "Best proposal: Neural Bards" in body
    assert other_course.name not in body and "Unpublished" not in body  # nothing published there yet


def test_the_sign_in_page_links_to_the_winners():
    body = Client().get(reverse("login")).content.decode()
    assert f'<a href="{reverse("winners_index")}">Prize winners</a>' in body


def test_the_index_shows_no_unconfirmed_prize(db, course):
    Prize.objects.create(course=course, title="Best proposal", places=1, category="round", round=make_round(course))
    body = Client().get(reverse("winners_index")).content.decode()
    assert "No winners have been announced yet." in body and "Best proposal" not in body
