"""The judging pages end to end: setup by a TA, conflicts, scoring, presentation day, confirmation, the public page."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse
from django.utils import timezone

from prizes.models import Entry, JudgeAssignment, Prize, Round, Score
from prizes.views.results import csv_cell
from tests.prizes.conftest import make_group, make_round, rubric


def url(name, course, *args):
    return reverse(f"prizes:{name}", args=[course.slug, *args])


def test_every_prizes_view_declares_its_access_rule():
    resolver = get_resolver()
    patterns = [p for p in resolver.url_patterns if getattr(p, "pattern", None) and "prizes" in str(p.pattern)]
    patterns += [p for p in resolver.url_patterns if "winners" in str(p.pattern)]
    views = []
    for include in patterns:
        for p in include.url_patterns:
            assert isinstance(p, URLPattern)
            views.append(p.callback)
    assert len(views) >= 18
    for view in views:
        assert getattr(view, "access_rule", None), view.__name__
    assert dict((v.__name__, v.access_rule) for v in views)["winners"] == ("public", ())


def signed_in(member):
    browser = Client()
    browser.force_login(member.user)
    return browser


def test_the_whole_round_from_assignment_to_published_winners(client, course, ta, judge, student, student2):
    make_group(course, "Alpha", student, title="Diffusion for proteins")
    make_group(course, "Beta", student2, title="Tiny LLM tutor")
    staff = signed_in(ta)
    now = timezone.localtime(timezone.now(), course.tz)
    response = staff.post(
        url("round_new", course),
        {
            "title": "Proposal talks",
            "kind": "presentation",
            "scale_min": 1,
            "scale_max": 5,
            "opens_at": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "closes_at": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "normalisation": "zscore",
        },
    )
    round = Round.objects.get()
    assert response.status_code == 302
    staff.post(
        url("round_setup", course, round.pk),
        {"action": "criterion", "criterion-name": "Novelty", "criterion-weight": "2"},
    )
    staff.post(url("round_setup", course, round.pk), {"action": "judge", "judge-judge": judge.pk})
    staff.post(url("round_setup", course, round.pk), {"action": "groups"})
    alpha, beta = Entry.objects.order_by("position")
    criterion = round.criteria.get()

    panel = signed_in(judge)
    page = panel.get(url("judge_round", course, round.pk)).content.decode()
    assert "Confirm my conflicts" in page and "Ada Lovelace" in page and "Score" not in page
    assert student.user.email not in page
    panel.post(url("declare_conflicts", course, round.pk), {"conflict": [str(beta.pk)]})
    page = panel.get(url("judge_round", course, round.pk)).content.decode()
    assert "You declared a conflict of interest" in page
    assert f'id="score-{alpha.pk}"' in page and f'id="score-{beta.pk}"' not in page

    response = panel.post(url("score", course, round.pk, alpha.pk), {f"c{criterion.pk}": "4"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "Saved." in response.content.decode()
    response = panel.post(url("score", course, round.pk, beta.pk), {f"c{criterion.pk}": "4"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422 and "conflict of interest" in response.content.decode()
    assert list(Score.objects.values_list("entry_id", "value")) == [(alpha.pk, 4)]

    staff.post(url("control", course, round.pk), {"action": "next"})
    staff.post(url("control", course, round.pk), {"action": "start"})
    fragment = panel.get(url("now_presenting", course, round.pk)).content.decode()
    assert "Diffusion for proteins" in fragment and 'data-running="1"' in fragment and "3:00" in fragment
    staff.post(url("control", course, round.pk), {"action": "stop"})
    alpha.group.refresh_from_db()
    assert alpha.group.presented_at is not None

    Round.objects.filter(pk=round.pk).update(
        opens_at=timezone.now() - timedelta(hours=3), closes_at=timezone.now() - timedelta(minutes=1)
    )
    response = panel.post(url("score", course, round.pk, alpha.pk), {f"c{criterion.pk}": "2"}, HTTP_HX_REQUEST="true")
    assert "closed" in response.content.decode() and Score.objects.get().value == 4

    staff.post(
        url("prize_new", course),
        {"title": "Best proposal", "places": 1, "category": "round", "round": round.pk, "registered_only": "unknown"},
    )
    prize = Prize.objects.get()
    page = staff.get(url("prize", course, prize.pk)).content.decode()
    assert "Confirm and publish the winners" in page and "Alpha" in page
    assert "No complete score from a counted judge." in page  # one judge, one entry: left out of z-scores
    # One judge who scored one entry: z-scores leave her out, so nobody is ranked and nothing can win.
    Round.objects.filter(pk=round.pk).update(normalisation="mean")
    staff.post(url("prize", course, prize.pk), {"note": ""})
    public = Client().get(reverse("prizes_winners", args=[course.slug])).content.decode()
    assert "Best proposal" in public and "Alpha" in public
    assert student.user.email not in public and "Lovelace" not in public
    assert course.audit_entries.filter(action="prizes.awards.confirmed").count() == 1


@pytest.fixture
def two_rounds(course, judge, student):
    mine = make_round(course, title="Mine")
    rubric(mine, 1.0)
    theirs = make_round(course, title="Not yours")
    rubric(theirs, 1.0)
    group = make_group(course, "Alpha", student)
    Entry.objects.create(round=mine, group=group, position=1)
    other = Entry.objects.create(round=theirs, group=make_group(course, "Secret"), position=1)
    JudgeAssignment.objects.create(round=mine, judge=judge, conflicts_declared_at=timezone.now())
    return mine, theirs, other


def test_a_judge_never_sees_other_rounds(login, course, judge, two_rounds):
    mine, theirs, other = two_rounds
    panel = login(judge)
    home = panel.get(url("judge_home", course)).content.decode()
    assert "Mine" in home and "Not yours" not in home
    assert panel.get(url("judge_round", course, theirs.pk)).status_code == 404
    assert panel.get(url("now_presenting", course, theirs.pk)).status_code == 404
    assert panel.post(url("score", course, theirs.pk, other.pk), {}).status_code == 404
    for name in ("results", "results_csv", "round_setup", "control", "staff_home"):
        args = [] if name == "staff_home" else [mine.pk]
        assert panel.get(url(name, course, *args)).status_code == 403


def test_students_never_see_scores(login, course, judge, student, two_rounds):
    mine, _, _ = two_rounds
    entry = mine.entries.get()
    Score.objects.create(judge=judge, entry=entry, criterion=mine.criteria.get(), value=5, updated_at=timezone.now())
    browser = login(student)
    for name in ("judge_home", "staff_home"):
        assert browser.get(url(name, course)).status_code == 403
    for name in ("judge_round", "now_presenting", "results", "results_csv", "room", "control"):
        assert browser.get(url(name, course, mine.pk)).status_code == 403
    assert browser.post(url("score", course, mine.pk, entry.pk), {}).status_code == 403


def test_the_dashboard_shows_the_judge_her_open_rounds(login, course, judge, two_rounds):
    body = login(judge).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "Judging" in body and "Mine" in body and "Not yours" not in body


def test_results_page_and_csv_show_the_breakdown_and_neutralise_formulas(login, course, ta, judge, student):
    round = make_round(course, normalisation="mean")
    criterion = rubric(round, 1.0)[0]
    group = make_group(course, "=HYPERLINK(1)", student)
    entry = Entry.objects.create(round=round, group=group, position=1)
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=timezone.now())
    Score.objects.create(judge=judge, entry=entry, criterion=criterion, value=3, updated_at=timezone.now())
    staff = login(ta)
    page = staff.get(url("results", course, round.pk)).content.decode()
    assert "Tie-break:" in page and "1/1" in page
    body = staff.get(url("results_csv", course, round.pk)).content.decode()
    assert "'=HYPERLINK(1)" in body and "3.0000" in body
    assert [csv_cell(v) for v in ("+1", "-2", "@x", "\tx", "\rx", "ok", 1.5)] == [
        "'+1",
        "'-2",
        "'@x",
        "'\tx",
        "'\rx",
        "ok",
        "1.5000",
    ]


@pytest.mark.parametrize(
    "name", ["staff_home", "round_new", "prize_new", "round_setup", "round_edit", "control", "room", "results"]
)
def test_ta_pages_render(login, course, ta, two_rounds, name):
    mine, _, _ = two_rounds
    args = [] if name in ("staff_home", "round_new", "prize_new") else [mine.pk]
    response = login(ta).get(url(name, course, *args))
    assert response.status_code == 200
    assert "<h1>" in response.content.decode()


def test_a_student_sees_on_her_dashboard_which_round_will_judge_her_lab_entry(login, course, student):
    from tests.factories import make_music_lab

    lab = make_music_lab(course)
    make_round(course, title="Best song", kind="lab", lab=lab, opens=2, closes=5)
    dashboard = login(student).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "Best song" in dashboard
    assert reverse("labs:entry", args=[course.slug, lab.slug]) in dashboard


def test_a_judge_declares_conflicts_by_real_names_and_can_revise_them_while_the_round_is_open(
    login, course, judge, student, student2
):
    from django.utils import timezone

    from courses.models import AuditEntry
    from prizes.models import Conflict, JudgeAssignment, Score
    from tests.browser.test_journeys import group_of, presentation_round

    Membership = type(student)
    Membership.objects.filter(pk=student.pk).update(display_name="quiet-heron")
    alpha = group_of(course, "Alpha", "Diffusion for proteins", student)
    beta = group_of(course, "Beta", "A tiny LLM tutor", student2)
    round = presentation_round(course, alpha, beta)
    assignment = JudgeAssignment.objects.create(round=round, judge=judge)
    client = login(judge)
    url = reverse("prizes:judge_round", args=[course.slug, round.pk])
    page = client.get(url).content.decode()
    first, second = round.entries.order_by("position")
    assert (
        f'<label for="conflict-{first.pk}" class="inline-label">Diffusion for proteins — Ada Lovelace</label>' in page
    )
    assert "quiet-heron" not in page

    declare = reverse("prizes:declare_conflicts", args=[course.slug, round.pk])
    client.post(declare, {"conflict": [str(first.pk)]})
    criterion = round.criteria.get()
    Score.objects.create(judge=judge, entry=second, criterion=criterion, value=4, updated_at=timezone.now())

    # She comes back: her conflict is ticked, and she swaps it for the other entry.
    page = client.get(url + "?conflicts").content.decode()
    assert f'value="{first.pk}" id="conflict-{first.pk}" checked>' in page
    assert f'value="{second.pk}" id="conflict-{second.pk}">' in page
    client.post(declare, {"conflict": [str(second.pk)]})
    assert list(Conflict.objects.values_list("entry_id", flat=True)) == [second.pk]
    assert not Score.objects.filter(entry=second).exists()  # a newly conflicted entry loses her marks
    withdrawn = AuditEntry.objects.get(action="prizes.conflict.withdrawn")
    assert withdrawn.actor == judge.user and withdrawn.before == {"entries": [first.pk]}
    assignment.refresh_from_db()
    assert assignment.conflicts_declared_at is not None
