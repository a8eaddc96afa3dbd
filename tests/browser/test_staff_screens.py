"""What the course staff checked on screen: the tokens page's copy button, the room screen on a projector, the roster's
edit and removal, and the public winners reached from the sign-in page. Desktop only: one browser per person."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from courses.models import Membership
from prizes import services as prize_services
from prizes.models import JudgeAssignment, Prize, Round, Score
from projects.models import Group
from tests.browser.test_journeys import group_of, presentation_round
from tests.conftest import make_member
from tests.factories import make_music_lab

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_screens_tokens_room_roster_and_public_winners(browsers, course, student, student2, ta, judge):
    lab = make_music_lab(course)
    listener = make_member(course, "listener@example.org", registered=False)
    Membership.objects.filter(pk=student.pk).update(display_name="Ada L.")
    bards = group_of(course, "Neural Bards", "Folk tunes that remember their key", student, student2)
    Group.objects.filter(pk=bards.pk).update(created_at=timezone.now() - timedelta(days=2))
    live = presentation_round(course, bards, normalisation="mean")
    JudgeAssignment.objects.create(round=live, judge=judge, conflicts_declared_at=timezone.now())
    prize_services.present_next(round=live, actor=ta.user)
    prize_services.start_talk(round=live, actor=ta.user, at=timezone.now() - timedelta(minutes=4))
    Score.objects.create(
        judge=judge, entry=live.entries.get(), criterion=live.criteria.get(), value=5, updated_at=timezone.now()
    )

    # The student creates a token and copies it and her lab's example with the buttons.
    ada = browsers("desktop")
    ada.context.grant_permissions(["clipboard-read", "clipboard-write"])
    ada.sign_in(student)
    ada.goto(reverse("labs:tokens", args=[course.slug]))
    ada.page.get_by_label("Name").fill("colab")
    ada.page.get_by_role("button", name="Create token").click()
    ada.page.wait_for_load_state("load")
    key = ada.page.locator("#new-token").inner_text()
    ada.page.get_by_role("button", name="Copy the token").click()
    expect(ada.page.locator("#new-token-copied")).to_have_text("Copied.")
    assert ada.page.evaluate("() => navigator.clipboard.readText()") == key
    ada.page.get_by_role("button", name=f"Copy the {lab.title} example").click()
    copied = ada.page.evaluate("() => navigator.clipboard.readText()")
    assert f"/api/labs/{lab.slug}/submissions" in copied and key in copied
    ada.shot("1-tokens")
    ada.assert_clean()

    # The room screen: no site menu, the clock across most of the projector, "over time" once the talk overran.
    grace = browsers("desktop")
    grace.sign_in(ta)
    grace.goto(reverse("prizes:room", args=[course.slug, live.pk]))
    expect(grace.page.get_by_role("navigation", name="Main")).to_have_count(0)
    expect(grace.page.locator(".clock-state")).to_have_text("over time")
    expect(grace.page.locator(".clock")).to_have_text(re.compile(r"^-\d+:\d\d$"))
    width = grace.page.evaluate("() => document.querySelector('.clock').getBoundingClientRect().width")
    height = grace.page.evaluate("() => document.querySelector('.clock').getBoundingClientRect().height")
    assert width > 1280 * 0.5 and height > 900 * 0.35, (width, height)
    grace.shot("2-room")

    # The roster: the TA edits a student's display name, then removes the other after the confirmation.
    grace.goto(reverse("courses:roster", args=[course.slug]))
    grace.page.get_by_role("link", name=f"Edit or remove {student.user.email}").click()
    grace.page.wait_for_load_state("load")
    grace.page.get_by_label("Display name").fill("Ada the Bard")
    grace.page.get_by_role("button", name="Save").click()
    grace.page.wait_for_load_state("load")
    expect(grace.page.locator("ul.messages")).to_have_text(f"{student.user.email} updated.")
    expect(grace.page.locator("tbody")).to_contain_text("Ada the Bard")
    grace.page.get_by_role("link", name=f"Edit or remove {listener.user.email}").click()
    grace.page.wait_for_load_state("load")
    grace.page.get_by_role("button", name=f"Remove {listener.user.email}…").click()
    grace.page.wait_for_load_state("load")
    expect(grace.page.get_by_role("heading", level=1)).to_have_text(f"Remove {listener.user.email} from {course.name}?")
    grace.shot("3-remove-asked")
    grace.page.get_by_role("button", name=f"Remove {listener.user.email}").click()
    grace.page.wait_for_load_state("load")
    expect(grace.page.locator("ul.messages")).to_have_text(f"{listener.user.email} removed from the course.")
    assert not Membership.objects.filter(pk=listener.pk).exists()

    # The winners, published, reached from the sign-in page by anyone.
    prize_services.stop_talk(round=live, actor=ta.user)
    Round.objects.filter(pk=live.pk).update(closes_at=timezone.now() - timedelta(minutes=1))
    prize = Prize.objects.create(course=course, title="Best proposal", places=1, category="round", round=live)
    prize_services.confirm_awards(prize=prize, actor=ta.user)
    grace.assert_clean()
    visitor = browsers("desktop")
    visitor.goto(reverse("login"))
    visitor.page.get_by_role("link", name="Prize winners").click()
    visitor.page.wait_for_load_state("load")
    visitor.audit()
    visitor.page.get_by_role("link", name=re.compile(course.name)).click()
    visitor.page.wait_for_load_state("load")
    card = visitor.page.locator("section.card", has=visitor.page.get_by_role("heading", name="Best proposal"))
    expect(card.locator("ol li")).to_contain_text("Neural Bards")
    expect(card.locator("ol li")).to_contain_text("“Folk tunes that remember their key”")
    expect(card.locator("ol li")).to_contain_text("Ada the Bard")
    expect(card).to_contain_text("announced")
    expect(visitor.page.locator("main")).not_to_contain_text(student.user.email)
    visitor.shot("4-winners")
    visitor.assert_fits_the_screen()
    visitor.assert_clean()
