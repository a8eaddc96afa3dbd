"""Lab rounds over competition entries: which entries a round takes, the judge's entry page, and prizes that rank
by the judges, by the lab's metric or by a stated weighting of both."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from courses.models import Role
from labs.entries import services as entry_services
from labs.entries.models import EntryKit
from labs.models import Evaluation, EvaluationStatus, Submission
from prizes import services
from prizes.models import Conflict, Entry, JudgeAssignment, Prize, Score
from prizes.selectors import compute_winners
from tests.conftest import make_member
from tests.factories import make_music_lab
from tests.labs.entries.conftest import PDF, PNG, WAV, code, html_output, notebook_bytes, upload
from tests.prizes.conftest import make_round, rubric

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert('write-up')</script>"


def _graded(lab, member, *, public, private):
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
        finished_at=timezone.now(),
        public_score=public,
        private_score=private,
        metrics={"public": {"bpc": public}, "private": {"bpc": private}},
        samples=[{"kind": "abc", "title": "Reel of the judges", "text": "X:1\nT:Reel\nK:D\nABcd|", "valid": True}],
    )
    return submission


def _entry(lab, member, *, public=1.5, private=1.6, notebook=False, description="Dropout 0.3, 40 epochs."):
    now = timezone.now()
    submission = _graded(lab, member, public=public, private=private)
    entry_services.choose_submission(lab=lab, member=member, submission_id=submission.pk, at=now)
    entry_services.set_texts(lab=lab, member=member, texts={"description": description}, title="My reel", at=now)
    if notebook:
        nb = notebook_bytes(code("print('done')", [html_output("<b>trained</b><script>alert(1)</script>")]))
        entry_services.attach_file(lab=lab, member=member, part="notebook", upload=upload("n.ipynb", nb), at=now)
    return submission


@pytest.fixture
def lab(course):
    lab = make_music_lab(course)
    EntryKit.objects.create(lab=lab, parts=["description"])
    return lab


@pytest.fixture
def lab_round(course, lab, judge, student, student2):
    """A lab round not yet open, the two students' complete entries added, the judge on the panel (declared)."""
    _entry(lab, student, public=1.2345, private=2.3456)
    _entry(lab, student2, public=1.9, private=1.4)
    round = make_round(course, title="Best song", kind="lab", lab=lab, opens=1, closes=5)
    services.add_lab_entries(round=round, actor=None)
    criteria = rubric(round, 1.0, 1.0)
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=timezone.now())
    round.opens_at = timezone.now() - timedelta(hours=1)
    round.save()
    return round, criteria


def page(client, course, round, entry, name="judge_entry", *more):
    return client.get(reverse(f"prizes:{name}", args=[course.slug, round.pk, entry.pk, *more]))


# ---------------------------------------------------------------- which entries a lab round judges


def test_a_lab_round_takes_the_labs_complete_entries_by_students_only_and_before_it_opens(
    course, lab, student, student2, ta
):
    _entry(lab, student)
    entry_services.set_texts(lab=lab, member=student2, texts={"description": "half done"}, at=timezone.now())
    staff_entry = make_member(course, "staff.entrant@example.edu", Role.TA)
    _entry(lab, staff_entry)
    round = make_round(course, title="Best song", kind="lab", lab=lab, opens=1, closes=5)

    added, incomplete = services.add_lab_entries(round=round, actor=ta.user)
    assert [(e.member, e.lab_entry.member, e.title) for e in added] == [(student, student, "My reel")]
    assert incomplete == 1  # her classmate has no graded submission yet
    assert services.add_lab_entries(round=round, actor=ta.user) == ([], 1)  # again: nothing added twice

    round.opens_at = timezone.now() - timedelta(minutes=1)
    round.save()
    with pytest.raises(ValidationError, match="before the round opens"):
        services.add_lab_entries(round=round, actor=ta.user)
    presentations = make_round(course, opens=1, closes=5)
    with pytest.raises(ValidationError, match="Only a lab round"):
        services.add_lab_entries(round=presentations, actor=ta.user)
    assert round.entries.count() == 1


def test_staff_add_the_entries_from_the_round_setup_page(course, lab, student, student2, ta, login):
    _entry(lab, student)
    round = make_round(course, title="Best song", kind="lab", lab=lab, opens=1, closes=5)
    client = login(ta)
    response = client.post(
        reverse("prizes:round_setup", args=[course.slug, round.pk]), {"action": "lab_entries"}, follow=True
    )
    assert "1 entry added." in response.content.decode()
    assert round.entries.get().lab_entry.member == student


# ---------------------------------------------------------------- the judge's entry page


def test_a_judge_reads_the_entry_with_its_public_metrics_songs_write_up_and_notebook(
    course, lab, judge, student, student2, login
):
    EntryKit.objects.filter(lab=lab).update(parts=["description", "notebook"])
    _entry(lab, student, public=1.2345, private=2.3456, notebook=True, description=HOSTILE)
    _entry(lab, student2, notebook=True)
    round = make_round(course, title="Best song", kind="lab", lab=lab, opens=1, closes=5)
    services.add_lab_entries(round=round, actor=None)
    rubric(round, 1.0)
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=timezone.now())
    entry = round.entries.get(member=student)
    client = login(judge)

    body = page(client, course, round, entry).content.decode()
    assert "1.2345" in body and "2.3456" not in body  # the public split only, until the staff release the private
    assert "Reel of the judges" in body and 'class="abc-source"' in body and "abcjs-basic-min.js" in body
    assert "My reel" in body and HOSTILE not in body and "&lt;script&gt;alert(&#x27;write-up&#x27;)" in body
    frame = body[body.index("<iframe") : body.index("</iframe>")]
    assert " sandbox " in frame and "allow-scripts" not in frame
    assert reverse("prizes:entry_notebook", args=[course.slug, round.pk, entry.pk]) in frame
    assert f'id="score-{entry.pk}"' in body  # the presentations' score sheet
    assert (
        reverse("prizes:judge_entry", args=[course.slug, round.pk, entry.pk])
        in client.get(reverse("prizes:judge_round", args=[course.slug, round.pk])).content.decode()
    )

    notebook = page(client, course, round, entry, "entry_notebook")
    assert notebook["Content-Security-Policy"] == (
        "default-src 'none'; img-src data:; style-src 'none'; frame-ancestors 'self'; sandbox"
    )
    assert notebook["X-Frame-Options"] == "SAMEORIGIN"
    assert "<b>trained</b>" in notebook.content.decode() and "<script" not in notebook.content.decode()
    download = page(client, course, round, entry, "entry_file", "notebook")
    assert download["Content-Disposition"].startswith("attachment;") and download["Content-Security-Policy"]

    lab.private_released_at = timezone.now()
    lab.save()
    assert "2.3456" in page(client, course, round, entry).content.decode()  # released: the private split too


def test_the_judges_page_plays_the_song_shows_the_bar_plot_and_links_the_report_with_the_staffs_headers(
    course, lab, judge, student, student2, ta, login
):
    EntryKit.objects.filter(lab=lab).update(parts=["description", "song", "plot", "report"])
    now = timezone.now()
    for member in (student, student2):
        _entry(lab, member)
        for part, name, data in (("song", "s.wav", WAV), ("plot", "p.png", PNG), ("report", "r.pdf", PDF)):
            entry_services.attach_file(lab=lab, member=member, part=part, upload=upload(name, data), at=now)
    round = make_round(course, title="Best song", kind="lab", lab=lab, opens=1, closes=5)
    services.add_lab_entries(round=round, actor=None)
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=now)
    entry = round.entries.get(member=student)
    lab_entry = entry.lab_entry
    judges, staff = Client(), Client()
    judges.force_login(judge.user)
    staff.force_login(ta.user)

    def file_url(part, *, judging=True):
        if judging:
            return reverse("prizes:entry_file", args=[course.slug, round.pk, entry.pk, part])
        return reverse("labs:entry_file", args=[course.slug, lab.slug, lab_entry.pk, part])

    body = page(judges, course, round, entry).content.decode()
    assert f'<source src="{file_url("song")}?inline=1" type="audio/wav">' in body
    assert f'<img src="{file_url("plot")}?inline=1" alt="The entry\'s bar plot' in body
    assert f'<a href="{file_url("report")}">download the report</a>' in body
    staff_page = staff.get(reverse("labs:staff_entry", args=[course.slug, lab.slug, lab_entry.pk])).content.decode()
    assert f'<source src="{file_url("song", judging=False)}?inline=1" type="audio/wav">' in staff_page
    assert f'<img src="{file_url("plot", judging=False)}?inline=1"' in staff_page

    for part, content_type, data in (("song", "audio/wav", WAV), ("plot", "image/png", PNG)):
        shown = [judges.get(f"{file_url(part)}?inline=1"), staff.get(f"{file_url(part, judging=False)}?inline=1")]
        for response in shown:
            assert response.status_code == 200 and b"".join(response.streaming_content) == data
            assert response["Content-Type"] == content_type
            assert response["Content-Disposition"].startswith("inline;")
            assert response["X-Content-Type-Options"] == "nosniff"
            assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
            assert response["Cache-Control"] == "private, no-store"
    for response in (judges.get(f"{file_url('report')}?inline=1"), judges.get(f"{file_url('description')}?inline=1")):
        assert response.status_code == 404  # a PDF has no inline form, nor has a text part any file
    report = judges.get(file_url("report"))
    assert report["Content-Type"] == "application/octet-stream" and report["Content-Disposition"].startswith(
        "attachment;"
    )

    Conflict.objects.create(judge=judge, entry=entry)
    assert judges.get(f"{file_url('song')}?inline=1").status_code == 403
    classmate = login(student2)
    assert classmate.get(f"{file_url('plot', judging=False)}?inline=1").status_code == 404
    assert classmate.get(f"{file_url('plot')}?inline=1").status_code == 403


def test_the_judge_scores_the_entry_from_its_page(course, lab_round, judge, student, login):
    round, criteria = lab_round
    entry = round.entries.get(member=student)
    client = login(judge)
    values = {f"c{c.pk}": v for c, v in zip(criteria, (4, 5), strict=True)}
    response = client.post(
        reverse("prizes:score", args=[course.slug, round.pk, entry.pk]), values, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "Saved." in response.content.decode()
    assert sorted(Score.objects.filter(judge=judge, entry=entry).values_list("value", flat=True)) == [4, 5]
    assert 'value="5"' in page(client, course, round, entry).content.decode()


def test_a_judge_of_another_round_a_conflicted_judge_a_judge_yet_to_declare_and_a_student_are_refused(
    course, lab_round, judge, judge2, student, student2, ta, login
):
    round, _ = lab_round
    entry = round.entries.get(member=student)
    other = make_round(course, title="Proposal talks", opens=-1, closes=5)
    JudgeAssignment.objects.create(round=other, judge=judge2, conflicts_declared_at=timezone.now())
    names = (("judge_entry",), ("entry_notebook",), ("entry_file", "description"))

    for name in names:
        assert page(login(judge2), course, round, entry, *name).status_code == 404  # not on this panel
        assert page(login(student), course, round, entry, *name).status_code == 403  # her own entry: not a judge
        assert page(login(student2), course, round, entry, *name).status_code == 403
        assert page(login(ta), course, round, entry, *name).status_code == 404  # staff, but not on the panel

    Conflict.objects.create(judge=judge, entry=entry)
    response = page(login(judge), course, round, entry)
    assert response.status_code == 403 and "My reel" not in response.content.decode()
    assert page(login(judge), course, round, entry, "entry_notebook").status_code == 403
    assert page(login(judge), course, round, round.entries.get(member=student2)).status_code == 200

    JudgeAssignment.objects.create(round=round, judge=judge2)  # on the panel, conflicts not yet declared
    assert page(login(judge2), course, round, entry).status_code == 403
    group_entry_round = make_round(course, title="Talks", opens=-1, closes=5)
    JudgeAssignment.objects.create(round=group_entry_round, judge=judge, conflicts_declared_at=timezone.now())
    assert page(login(judge), course, group_entry_round, entry).status_code == 404  # not an entry of that round


# ---------------------------------------------------------------- prizes of a lab round


def _judge_and_close(round, criteria, judge, judge2, marks):
    """Both judges mark each entry with the same totals; then the round closes."""
    JudgeAssignment.objects.get_or_create(round=round, judge=judge2, defaults={"conflicts_declared_at": timezone.now()})
    now = timezone.now()
    for entry, value in marks.items():
        for member in (judge, judge2):
            for criterion in criteria:
                Score.objects.create(judge=member, entry=entry, criterion=criterion, value=value, updated_at=now)
    round.closes_at = now - timedelta(minutes=1)
    round.opens_at = now - timedelta(hours=2)
    round.save()


def test_a_prize_ranks_by_the_judges_by_the_metric_or_by_the_stated_weighting(
    course, lab, lab_round, judge, judge2, student, student2, ta
):
    round, criteria = lab_round
    hers, his = round.entries.get(member=student), round.entries.get(member=student2)
    # Judges prefer her entry; the metric (bits per character, lower is better, private split) prefers his.
    _judge_and_close(round, criteria, judge, judge2, {hers: 5, his: 2})
    prize = Prize.objects.create(course=course, title="Best song", category="round", round=round, places=1)
    assert [w.member_id for w in compute_winners(prize=prize).winners] == [student.pk]

    prize.ranking = Prize.Ranking.METRIC
    prize.save()
    assert "not released" in compute_winners(prize=prize).reason
    lab.private_released_at = timezone.now()
    lab.save()
    computation = compute_winners(prize=prize)
    assert [w.member_id for w in computation.winners] == [student2.pk]
    assert computation.winners[0].score == pytest.approx(1.4)  # the metric as read, lower being better

    # judges' z: her +1, his -1; metric z (lower better): 2.3456 vs 1.4 -> her -1, his +1.
    prize.ranking, prize.metric_weight = Prize.Ranking.WEIGHTED, 0.4
    prize.save()
    computation = compute_winners(prize=prize)
    assert [w.member_id for w in computation.winners] == [student.pk]
    assert computation.winners[0].score == pytest.approx(0.6 * 1 + 0.4 * -1)
    prize.metric_weight = 0.6
    prize.save()
    assert [w.member_id for w in compute_winners(prize=prize).winners] == [student2.pk]

    decision = services.confirm_awards(prize=prize, actor=ta.user)
    stated = "Ranked by a weighting: 40% the judges' normalised result, 60% the z-score of the lab's metric"
    assert decision.snapshot["ranking"].startswith(stated)


def test_an_entry_without_a_metric_is_left_out_of_a_metric_prize_with_the_reason(
    course, lab, lab_round, judge, judge2, student, student2
):
    round, criteria = lab_round
    hers, his = round.entries.get(member=student), round.entries.get(member=student2)
    _judge_and_close(round, criteria, judge, judge2, {hers: 5, his: 2})
    Evaluation.objects.filter(submission=his.lab_entry.submission).update(private_score=None)
    lab.private_released_at = timezone.now()
    lab.save()
    prize = Prize.objects.create(
        course=course, title="Best song", category="round", round=round, places=2, ranking="weighted", metric_weight=0.5
    )
    computation = compute_winners(prize=prize)
    assert [w.member_id for w in computation.winners] == [student.pk]
    left_out = next(c for c in computation.candidates if c.member_id == student2.pk)
    assert left_out.rank is None and left_out.reasons == ["No metric."]
    assert "only 1 eligible entry" in computation.shortfall


def test_the_winners_page_says_how_each_prize_was_ranked(client, course, lab, lab_round, judge, judge2, student, ta):
    round, criteria = lab_round
    _judge_and_close(round, criteria, judge, judge2, {e: 3 + i for i, e in enumerate(round.entries.all())})
    lab.private_released_at = timezone.now()
    lab.save()
    by_judges = Prize.objects.create(course=course, title="Judges' choice", category="round", round=round)
    by_metric = Prize.objects.create(course=course, title="Lowest bpc", category="round", round=round, ranking="metric")
    for prize in (by_judges, by_metric):
        services.confirm_awards(prize=prize, actor=ta.user)
    body = client.get(reverse("prizes_winners", args=[course.slug])).content.decode()
    assert "Ranked by the judges&#x27; normalised result." in body
    assert "Ranked by the lab&#x27;s metric on the private split." in body


def test_a_prize_form_refuses_a_metric_ranking_that_cannot_hold_and_saves_nothing(course, lab, lab_round, ta, login):
    round, _ = lab_round
    talks = make_round(course, title="Proposal talks", opens=-1, closes=5)
    client = login(ta)
    base = {"title": "Best", "places": 1, "category": "round", "registered_only": "unknown"}
    cases = [
        ({"round": talks.pk, "ranking": "metric"}, "Only a prize of a lab round can rank by the lab"),
        ({"round": round.pk, "ranking": "weighted"}, "State the metric&#x27;s share"),
        ({"round": round.pk, "ranking": "weighted", "metric_weight": "1.5"}, "State the metric&#x27;s share"),
    ]
    for fields, message in cases:
        response = client.post(reverse("prizes:prize_new", args=[course.slug]), {**base, **fields})
        assert response.status_code == 200 and message in response.content.decode()
    round.normalisation = "mean"
    round.save()
    response = client.post(
        reverse("prizes:prize_new", args=[course.slug]),
        {**base, "round": round.pk, "ranking": "weighted", "metric_weight": "0.5"},
    )
    assert "combine its judges as z-scores" in response.content.decode()
    assert not Prize.objects.exists()
    response = client.post(
        reverse("prizes:prize_new", args=[course.slug]), {**base, "round": talks.pk, "metric_weight": "0.5"}
    )
    assert response.status_code == 302
    assert Prize.objects.get().ranking == "judges" and Prize.objects.get().metric_weight is None


def test_a_round_entry_cannot_exist_without_her_lab_entry(course, lab, student):
    from django.db import IntegrityError, transaction

    round = make_round(course, title="Best song", kind="lab", lab=lab, opens=1, closes=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Entry.objects.create(round=round, member=student, submission=_graded(lab, student, public=1, private=1))


def test_a_metric_prize_reads_the_entered_submission_as_the_leaderboard_counts_it_and_says_so(
    course, lab, lab_round, judge, judge2, student, student2, ta, client
):
    round, criteria = lab_round
    hers, his = round.entries.get(member=student), round.entries.get(member=student2)
    _judge_and_close(round, criteria, judge, judge2, {hers: 5, his: 2})
    now = timezone.now()
    lab.private_released_at, lab.frozen_at = now, now
    lab.save()
    # After the freeze her entered submission was graded again, better: the board does not count that result.
    Evaluation.objects.create(
        submission=hers.lab_entry.submission, status=EvaluationStatus.SUCCEEDED, finished_at=now + timedelta(minutes=1),
        public_score=0.5, private_score=0.5,
    )  # fmt: skip
    # Her final choice on the board is another submission; the entry names its own, and that is what is scored.
    final = _graded(lab, student, public=0.1, private=0.1)
    Evaluation.objects.filter(submission=final).update(finished_at=now - timedelta(minutes=1))
    Submission.objects.filter(pk=final.pk).update(is_final=True)
    # His entered submission arrived late.
    Submission.objects.filter(pk=his.lab_entry.submission_id).update(late=True)
    prize = Prize.objects.create(
        course=course, title="Best bits per character", category="round", round=round, places=2, ranking="metric"
    )

    computation = compute_winners(prize=prize)
    assert [(w.member_id, w.score) for w in computation.winners] == [(student.pk, pytest.approx(2.3456))]
    left_out = next(c for c in computation.candidates if c.member_id == student2.pk)
    assert left_out.reasons == ["No metric."]
    assert prize.ranking_statement == (
        "Ranked by the lab's metric on the private split. The metric is the entered submission's result as the "
        "leaderboard counts it (the newest evaluation by the freeze, of the ranked device class; late work left out)."
    )

    prize.counts_late_work = True
    prize.save()
    computation = compute_winners(prize=prize)
    assert [(w.member_id, w.score) for w in computation.winners] == [
        (student2.pk, pytest.approx(1.4)),
        (student.pk, pytest.approx(2.3456)),
    ]
    services.confirm_awards(prize=prize, actor=ta.user)
    page = client.get(reverse("prizes_winners", args=[course.slug])).content.decode()
    assert "the entered submission&#x27;s result as the leaderboard counts it" in page
    assert "late work included" in page
