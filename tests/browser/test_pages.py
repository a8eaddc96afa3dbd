"""The main pages at desktop and phone sizes: no serious accessibility violation, no console error, no sideways scroll."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from labs.models import Evaluation
from prizes import services as prize_services
from prizes.models import JudgeAssignment, Prize, Round, Score
from tests.browser.test_journeys import group_of, presentation_round
from tests.factories import TINY_TUNES, make_music_lab, save_lstm, submit_folder, token_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


LONG_BAR = "X:3\nT:One long bar\nM:none\nL:1/8\nK:C\n" + "cdefgab" * 5 + "c'|]\n"


@pytest.fixture
def populated(course, student, student2, ta, judge, tmp_path):
    """A graded Lab 1 submission with songs, a token, a group, an open round with a talk running, published winners."""
    lab = make_music_lab(course)
    submission = submit_folder(lab=lab, member=student, directory=save_lstm(tmp_path / "a"), description="Wider LSTM")
    Evaluation.objects.filter(submission=submission).update(
        status="succeeded",
        attempt=1,
        finished_at=timezone.now(),
        public_score=2.5,
        public_tiebreak=0.5,
        metrics={"public": {"bpc": 2.5, "validity": 0.5, "novelty": 0.75}},
        samples=[
            {"title": "Tune A", "text": TINY_TUNES[0], "valid": True, "split": "public"},
            {"title": "Song 2", "text": "X|:zq]]", "valid": False, "split": "public"},
            # One measure wider than a phone: it cannot break into staves, so it scrolls in its own box.
            {"title": "One long bar", "text": LONG_BAR, "valid": True, "split": "public"},
        ],
        grader_version="1.0",
        device_class="cpu",
        dataset_hash="0" * 64,
    )
    token_for(student)
    alpha = group_of(course, "Alpha", "Diffusion for proteins", student, student2)
    live = presentation_round(course, alpha)
    JudgeAssignment.objects.create(round=live, judge=judge, conflicts_declared_at=timezone.now())
    prize_services.present_next(round=live, actor=ta.user)
    prize_services.start_talk(round=live, actor=ta.user)

    earlier = presentation_round(course, alpha, normalisation="mean")
    Round.objects.filter(pk=earlier.pk).update(title="Early proposals")
    JudgeAssignment.objects.create(round=earlier, judge=judge, conflicts_declared_at=timezone.now())
    Score.objects.create(
        judge=judge, entry=earlier.entries.get(), criterion=earlier.criteria.get(), value=4, updated_at=timezone.now()
    )
    Round.objects.filter(pk=earlier.pk).update(
        opens_at=timezone.now() - timedelta(days=1), closes_at=timezone.now() - timedelta(hours=1)
    )
    prize = Prize.objects.create(course=course, title="Best proposal", places=1, category="round", round=earlier)
    prize_services.confirm_awards(prize=prize, actor=ta.user)
    return {"lab": lab, "submission": submission, "round": live, "student": student}


def pages(course, populated):
    lab, submission, round = populated["lab"], populated["submission"], populated["round"]
    slug = course.slug
    return [
        # (who, name, path, what must be on it)
        (None, "sign-in", reverse("login"), "Sign in"),
        ("student", "dashboard", reverse("courses:dashboard", args=[slug]), "Deadlines"),
        ("student", "lab", reverse("labs:lab", args=[slug, lab.slug]), "Upload and grade"),
        ("student", "submission", reverse("labs:submission", args=[slug, lab.slug, submission.pk]), "Generated songs"),
        ("student", "leaderboard", reverse("labs:leaderboard", args=[slug, lab.slug]), "Bits per char"),
        ("student", "tokens", reverse("labs:tokens", args=[slug]), "token"),
        ("student", "group", reverse("projects:home", args=[slug]), "Group: Alpha"),
        ("judge", "judge", reverse("prizes:judge_round", args=[slug, round.pk]), "Now presenting"),
        ("ta", "queue", reverse("labs:queue", args=[slug]), "Queue"),
        ("ta", "roster", reverse("courses:roster", args=[slug]), "Roster"),
        (
            "ta",
            "staff leaderboard",
            reverse("labs:leaderboard", args=[slug, lab.slug]),
            populated["student"].user.email,
        ),
        (
            "ta",
            "student record",
            reverse("projects:staff_student", args=[slug, populated["student"].pk]),
            "Suggested grade",
        ),
        (None, "winners", reverse("prizes_winners", args=[slug]), "Best proposal"),
    ]


def test_main_pages_have_no_serious_accessibility_violation_and_fit_the_screen(
    browsers, viewport, course, populated, student, ta, judge
):
    people = {"student": student, "ta": ta, "judge": judge}
    opened = {}
    for who, name, path, marker in pages(course, populated):
        if who not in opened:
            opened[who] = browsers(viewport)
            if who is not None:
                opened[who].sign_in(people[who])
        site = opened[who]
        site.goto(path)
        expect(site.page.locator("main")).to_contain_text(marker, ignore_case=True)
        if name == "submission":
            expect(site.page.locator(".abc-notation svg")).to_have_count(2)
            site.assert_sheet_music_is_readable()
            if viewport == "phone":
                # The long bar is wider than the phone: it scrolls in its box at full size rather than shrinking.
                assert [song["overflows"] for song in site.sheet_music()] == [False, True]
        site.assert_fits_the_screen()
        site.shot(name)  # audits the page again once its scripts have drawn it (the songs' sheet music)
    for browser in opened.values():
        browser.assert_clean()
