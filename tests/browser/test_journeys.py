"""What students, TAs and judges do in a real browser, end to end, at desktop and phone sizes."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from courses.deadlines import format_course_time
from courses.models import Deadline, Extension
from labs.models import Evaluation, Submission
from prizes.models import Criterion, Entry, JudgeAssignment, Prize, Round, Score
from projects.models import Group, GroupMember, Invitation
from tests.factories import make_music_lab, music_dataset, save_lstm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def lab_url(lab, name="lab", *args):
    return reverse(f"labs:{name}", args=[lab.course.slug, lab.slug, *args])


def upload_artifact(page, directory):
    for name in ("model.safetensors", "config.json"):
        page.get_by_label(name, exact=True).set_input_files(str(directory / name))
    page.get_by_role("button", name="Upload and grade").click()
    page.wait_for_load_state("load")


@pytest.fixture
def graded_lab(course, tmp_path):
    from labs.management.commands.register_dataset import register_dataset

    dataset = register_dataset(music_dataset(tmp_path / "hidden"))
    return make_music_lab(course, dataset=dataset, evaluator_options={"songs": "5", "song_length": "600"})


def briefly_trained_lstm(data_dir, out_dir):
    """A small LSTM trained for a few seconds on the tiny tunes: enough that some of its songs are valid ABC."""
    from grader.labs.music import Lab

    options = {"embedding_dim": "16", "hidden_size": "64", "steps": "600"}
    Lab().train_reference(data_dir, out_dir, variant="reference", seed=0, options=options)
    return out_dir


@pytest.mark.e2e
@pytest.mark.slow
def test_student_uploads_watches_her_grading_live_sees_her_songs_and_finds_herself_on_the_leaderboard(
    browsers, graded_lab, student, start_worker, tmp_path
):
    lab = graded_lab
    ada = browsers("desktop")
    page = ada.page
    ada.sign_in(student)
    ada.shot("1-dashboard")
    ada.goto(lab_url(lab))
    upload_artifact(page, briefly_trained_lstm(tmp_path / "hidden", tmp_path / "artifact"))
    submission = Submission.objects.get(member=student, lab=lab)
    expect(page.get_by_role("status")).to_contain_text(f"Submission #{submission.number} accepted")
    status = page.locator("#my-submissions .status")
    # No worker yet: the page shows the evaluation waiting in the queue.
    expect(status).to_have_attribute("data-status", "queued")
    ada.shot("2-queued")
    page.evaluate("() => { window.notReloaded = true; }")

    start_worker()
    expect(status).to_have_attribute("data-status", re.compile("running|succeeded"), timeout=120_000)
    expect(status).to_have_attribute("data-status", "succeeded", timeout=180_000)
    assert page.evaluate("() => window.notReloaded === true"), "the page reloaded instead of updating in place"
    evaluation = Evaluation.objects.get(submission=submission)
    assert evaluation.status == "succeeded"
    expect(page.locator("#my-submissions td.num")).to_have_text(f"{evaluation.public_score:.4f}")
    # Nothing on the page still says it is waiting.
    expect(page.locator("main")).not_to_contain_text("queued")
    ada.shot("3-succeeded")

    page.get_by_role("link", name="Details").click()
    page.wait_for_load_state("load")
    valid = [song for song in evaluation.samples if song["valid"]]
    assert len(evaluation.samples) == 5 and valid, evaluation.samples
    # Valid tunes are drawn as sheet music with a play button; the others are shown as the text they are.
    expect(page.locator(".abc-notation svg")).to_have_count(len(valid))
    expect(page.locator(".abc-notation svg").first).to_have_attribute("aria-label", re.compile("^Sheet Music"))
    expect(page.get_by_role("button", name="Click to play/pause.")).to_have_count(len(valid))
    expect(page.locator("pre.abc-text")).to_have_count(5 - len(valid))
    ada.assert_sheet_music_is_readable()
    ada.shot("4-sheet-music")
    # Her run's log and her result.json: what the worker vouches for, of the public split only.
    page.get_by_text("Log tail", exact=True).click()
    expect(page.locator("details", has_text="Log tail").locator("pre")).to_contain_text("Summary: ")
    with page.expect_download() as fetched:
        page.get_by_role("link", name="Download result.json").click()
    result = json.loads(Path(fetched.value.path()).read_text())
    assert result["metrics"] == {"public": evaluation.metrics["public"]}

    ada.goto(lab_url(lab, "leaderboard"))
    mine = page.locator("tbody tr.me")
    expect(mine).to_have_count(1)
    expect(mine.locator("td").first).to_have_text("1")
    expect(mine).to_contain_text(student.display_name)
    expect(mine).to_contain_text("you")
    ada.shot("5-leaderboard")
    ada.assert_clean()


def test_late_upload_is_refused_with_the_deadline_in_eastern_time(browsers, viewport, course, student, tmp_path):
    lab = make_music_lab(course)
    ada = browsers(viewport)
    ada.sign_in(student)
    ada.goto(lab_url(lab))
    expect(ada.page.get_by_role("button", name="Upload and grade")).to_be_visible()
    # The deadline passes while her page is open: the upload arrives late.
    due = timezone.now() - timedelta(minutes=5)
    Deadline.objects.filter(pk=lab.deadline_id).update(due_at=due)
    upload_artifact(ada.page, save_lstm(tmp_path / "late"))
    when = format_course_time(due, course)
    assert when.endswith(" ET")
    message = f"The deadline for Lab 1: Music Generation was {when}; ask a TA for an extension if you need one."
    expect(ada.page.locator("ul.messages")).to_have_text(message)
    expect(ada.page.get_by_role("button", name="Upload and grade")).to_have_count(0)
    ada.shot("refused")
    ada.assert_fits_the_screen()
    assert Submission.objects.count() == 0
    ada.assert_clean()


def test_ta_grants_an_extension_and_the_student_can_then_submit(browsers, viewport, course, student, ta, tmp_path):
    lab = make_music_lab(course)
    Deadline.objects.filter(pk=lab.deadline_id).update(due_at=timezone.now() - timedelta(hours=2))
    ada = browsers(viewport)
    ada.sign_in(student)
    ada.goto(lab_url(lab))
    expect(ada.page.locator("section.card p.error")).to_contain_text("The deadline for Lab 1: Music Generation was")
    ada.shot("1-student-refused")

    grace = browsers(viewport)
    grace.sign_in(ta)
    grace.goto(reverse("courses:extensions", args=[course.slug]))
    until = timezone.localtime(timezone.now() + timedelta(days=1), course.tz).replace(second=0, microsecond=0)
    page = grace.page
    page.get_by_label("Deadline").select_option(label=lab.deadline.title)
    page.get_by_label("Student").select_option(label=f"Ada Lovelace <{student.user.email}>")
    page.get_by_label("Until").fill(until.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Reason").fill("Ill on the due date")
    page.get_by_role("button", name="Grant").click()
    page.wait_for_load_state("load")
    expect(page.locator("ul.messages")).to_have_text(f"Extension granted to {student.user.email}.")
    expect(page.locator("tbody")).to_contain_text(format_course_time(until, course))
    grace.shot("2-ta-granted")
    grace.assert_fits_the_screen()
    assert Extension.objects.get().until == until

    ada.goto(lab_url(lab))
    expect(ada.page.get_by_text("Your deadline:")).to_contain_text(
        f"Your extension: {format_course_time(until, course)}"
    )
    upload_artifact(ada.page, save_lstm(tmp_path / "extended"))
    submission = Submission.objects.get()
    expect(ada.page.locator("ul.messages")).to_have_text(
        f"Submission #{submission.number} accepted. Its grading shows below."
    )
    assert submission.late is False
    ada.shot("3-student-submitted")
    ada.assert_fits_the_screen()
    ada.assert_clean()
    grace.assert_clean()


def test_student_registers_a_group_and_invites_a_classmate_who_accepts(browsers, viewport, course, student, student2):
    project = reverse("projects:home", args=[course.slug])
    ada = browsers(viewport)
    ada.sign_in(student)
    ada.goto(project)
    ada.page.get_by_label("Group name").fill("Protein Diffusers")
    ada.page.get_by_role("button", name="Register group").click()
    ada.page.wait_for_load_state("load")
    expect(ada.page.locator("ul.messages")).to_contain_text("Group “Protein Diffusers” registered.")
    ada.page.get_by_label("Classmate's e-mail").fill(student2.user.email)
    ada.page.get_by_role("button", name="Invite", exact=True).click()
    ada.page.wait_for_load_state("load")
    expect(ada.page.locator("ul.messages")).to_have_text(f"Invitation sent to {student2.user.email}.")
    ada.shot("1-invited")
    ada.assert_fits_the_screen()

    alan = browsers(viewport)
    alan.sign_in(student2)
    alan.goto(project)
    invitation = alan.page.locator("section", has=alan.page.get_by_role("heading", name="Invitations"))
    expect(invitation).to_contain_text("Ada Lovelace invites you to Protein Diffusers.")
    invitation.get_by_role("button", name="Accept").click()
    alan.page.wait_for_load_state("load")
    expect(alan.page.locator("ul.messages")).to_have_text("You joined Protein Diffusers.")
    expect(alan.page.get_by_role("heading", name="Group: Protein Diffusers")).to_be_visible()
    alan.shot("2-accepted")
    alan.assert_fits_the_screen()

    ada.goto(project)
    expect(ada.page.locator("#group-title + p ~ ul").first).to_contain_text(student2.user.email)
    group = Group.objects.get()
    assert sorted(GroupMember.objects.filter(group=group).values_list("member_id", flat=True)) == sorted(
        [student.pk, student2.pk]
    )
    assert Invitation.objects.get().status == Invitation.Status.ACCEPTED
    ada.assert_clean()
    alan.assert_clean()


def presentation_round(course, *groups, **fields) -> Round:
    now = timezone.now()
    round = Round.objects.create(
        course=course,
        title="Proposal presentations",
        opens_at=now - timedelta(hours=1),
        closes_at=now + timedelta(hours=1),
        **fields,
    )
    Criterion.objects.create(round=round, name="Novelty", weight=2, position=0)
    for position, group in enumerate(groups, start=1):
        Entry.objects.create(round=round, group=group, position=position)
    return round


def group_of(course, name, title, *members) -> Group:
    group = Group.objects.create(course=course, name=name, title=title)
    for member in members:
        GroupMember.objects.create(group=group, member=member)
    return group


def test_judge_scores_a_presentation_while_the_talk_clock_runs(
    browsers, viewport, course, ta, judge, student, student2
):
    alpha = group_of(course, "Alpha", "Diffusion for proteins", student)
    group_of(course, "Beta", "A tiny LLM tutor", student2)
    round = presentation_round(course, *Group.objects.order_by("pk"))
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=timezone.now())
    first = Entry.objects.get(group=alpha)

    grace = browsers(viewport)
    grace.sign_in(ta)
    grace.goto(reverse("prizes:round_setup", args=[course.slug, round.pk]))
    expect(grace.page.get_by_role("button", name="remove")).to_be_visible()  # the judge, on the panel
    grace.goto(reverse("prizes:control", args=[course.slug, round.pk]))
    grace.page.get_by_role("button", name="Next").click()
    grace.page.wait_for_load_state("load")
    grace.page.get_by_role("button", name="Start talk").click()
    grace.page.wait_for_load_state("load")
    expect(grace.page.locator("#now-presenting")).to_contain_text("Diffusion for proteins")
    grace.shot("1-ta-started")
    grace.assert_fits_the_screen()

    sponsor = browsers(viewport)
    sponsor.sign_in(judge)
    sponsor.goto(reverse("prizes:judge_round", args=[course.slug, round.pk]))
    clock = sponsor.page.locator("#now-presenting .clock")
    expect(sponsor.page.locator("#now-presenting")).to_contain_text("Diffusion for proteins")
    expect(clock).to_have_attribute("data-running", "1")
    # The clock counts down from the 3-minute talk while the judge watches.
    expect(clock).to_have_text(re.compile(r"^2:[0-5]\d$"), timeout=15_000)
    novelty = sponsor.page.locator(f"#score-{first.pk}").get_by_label(re.compile("^Novelty"))
    novelty.fill("4")
    novelty.press("Tab")  # the score saves on change, as when she moves to the next field
    expect(sponsor.page.locator(f"#score-{first.pk} .saved")).to_have_text("Saved.")
    assert list(Score.objects.values_list("entry_id", "judge_id", "value")) == [(first.pk, judge.pk, 4)]
    expect(clock).to_have_attribute("data-running", "1")
    sponsor.shot("2-judge-scored")
    sponsor.assert_fits_the_screen()

    # A score off the 1-5 scale, or not a whole number, is refused at once with the reason; "Saved." goes away.
    sponsor.expect_status(reverse("prizes:score", args=[course.slug, round.pk, first.pk]), 422)
    status = sponsor.page.locator(f"#score-{first.pk} [role=status]")
    for typed, reason in (
        ("7", "Novelty: 7 is outside the scale; use 1 to 5."),
        ("3.5", "Novelty: enter a whole number from 1 to 5."),
    ):
        novelty.fill(typed)
        novelty.press("Tab")
        expect(status.locator(".error")).to_have_text(reason)
        expect(status).not_to_contain_text("Saved.")
        expect(novelty).to_have_value(typed)  # what she typed stays there for her to correct
    assert list(Score.objects.values_list("value", flat=True)) == [4]
    sponsor.shot("3-judge-refused")
    sponsor.goto(reverse("prizes:judge_round", args=[course.slug, round.pk]))
    expect(novelty).to_have_value("4")
    grace.assert_clean()
    sponsor.assert_clean()


def test_ta_confirms_the_winners_and_the_public_page_shows_them(
    browsers, viewport, course, ta, judge, student, student2
):
    alpha = group_of(course, "Alpha", "Diffusion for proteins", student)
    beta = group_of(course, "Beta", "A tiny LLM tutor", student2)
    round = presentation_round(course, alpha, beta, normalisation="mean")
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=timezone.now())
    criterion = round.criteria.get()
    for group, value in ((alpha, 3), (beta, 5)):
        entry = Entry.objects.get(group=group)
        Score.objects.create(judge=judge, entry=entry, criterion=criterion, value=value, updated_at=timezone.now())
    Round.objects.filter(pk=round.pk).update(
        opens_at=timezone.now() - timedelta(hours=3), closes_at=timezone.now() - timedelta(minutes=1)
    )
    prize = Prize.objects.create(course=course, title="Best proposal", places=1, category="round", round=round)
    public = reverse("prizes_winners", args=[course.slug])

    visitor = browsers(viewport)
    visitor.goto(public)
    expect(visitor.page.locator("main")).to_contain_text("No winners have been announced yet.")

    grace = browsers(viewport)
    grace.sign_in(ta)
    grace.goto(reverse("prizes:prize", args=[course.slug, prize.pk]))
    grace.page.get_by_label("Note for the audit log (optional)").fill("Panel of one")
    grace.page.get_by_role("button", name="Confirm and publish the winners").click()
    grace.page.wait_for_load_state("load")
    published = grace.page.locator("section", has=grace.page.get_by_role("heading", name="Published winners"))
    expect(published.locator("ol li")).to_have_text(["Beta"])
    grace.shot("1-ta-confirmed")
    grace.assert_fits_the_screen()

    visitor.goto(public)
    card = visitor.page.locator("section.card", has=visitor.page.get_by_role("heading", name="Best proposal"))
    expect(card.locator("ol li .winner")).to_have_text(["Beta"])
    expect(card.locator("ol li")).to_contain_text("A tiny LLM tutor")
    expect(visitor.page.locator("main")).not_to_contain_text(student2.user.email)
    visitor.shot("2-public-winners")
    visitor.assert_fits_the_screen()
    visitor.assert_clean()
    grace.assert_clean()


def test_student_assembles_her_entry_confirms_the_keys_found_in_her_notebook_and_sees_it_complete(
    browsers, course, student, tmp_path
):
    from labs.entries import services as entry_services
    from labs.entries.models import EntryKit, LabEntry
    from tests.labs.entries.conftest import PNG, WAV, code, graded, notebook_bytes
    from tests.projects.conftest import pdf_bytes

    lab = make_music_lab(course)
    kit = EntryKit.objects.create(lab=lab, parts=["notebook", "report", "description", "song", "plot"])
    submission = graded(lab, student)
    key = "sk-or-v1-" + "a1b2c3d4" * 8
    files = {
        "Notebook (.ipynb)": ("lab1.ipynb", notebook_bytes(code(f'OPENROUTER_API_KEY = "{key}"\ntrain()'))),
        "PDF report": ("report.pdf", pdf_bytes(2)),
        "Audio recording of the song": ("song.wav", WAV),
        "Image of the bar plot": ("plot.png", PNG),
    }
    for name, data in files.values():
        (tmp_path / name).write_bytes(data)

    ada = browsers("desktop")
    page = ada.page
    ada.sign_in(student)
    ada.goto(lab_url(lab))
    page.get_by_role("link", name="Your competition entry").click()
    page.wait_for_load_state("load")
    ada.audit()
    expect(page.locator("main")).to_contain_text("Your entry does not count yet")
    page.get_by_label("One of your graded submissions").select_option(str(submission.pk))
    page.get_by_role("button", name="Use this submission").click()
    page.wait_for_load_state("load")
    page.get_by_label("Title").fill("Two LSTM layers")
    page.get_by_label("Description").fill("Two LSTM layers of 512 units, trained for 3000 steps.")
    page.get_by_role("button", name="Save the write-up").click()
    page.wait_for_load_state("load")
    for label, (name, _) in files.items():
        section = page.locator("section", has=page.get_by_role("heading", name=label, exact=True))
        section.get_by_label(label).set_input_files(str(tmp_path / name))
        section.get_by_role("button", name="Upload").click()
        page.wait_for_load_state("load")
        expect(page.locator(".messages")).to_contain_text(f"{label} saved.")
    ada.audit()

    found = page.get_by_role("alert").filter(has_text="held these credentials")
    expect(found).to_contain_text("cell 1, line 1: value of OPENROUTER_API_KEY (sk-o…)")
    expect(page.locator("main")).to_contain_text("confirmation that the keys found in the notebook are revoked")
    assert key not in page.content()
    ada.shot("1-keys-found-in-her-notebook")
    page.get_by_role("button", name="I have revoked these keys").click()
    page.wait_for_load_state("load")
    expect(page.locator("main")).to_contain_text("Your entry is complete.")
    expect(page.locator("main")).to_contain_text("You confirmed they are revoked.")
    ada.shot("2-her-entry-is-complete")
    ada.assert_fits_the_screen()
    ada.assert_clean()

    entry = LabEntry.objects.get(lab=lab, member=student)
    assert entry.submission == submission and entry.title == "Two LSTM layers"
    assert sorted(entry.files.values_list("part", flat=True)) == ["notebook", "plot", "report", "song"]
    assert entry_services.completeness(entry, kit).complete


def test_judge_reads_a_rendered_notebook_scores_the_entry_and_the_ta_sees_the_rounds_results(
    browsers, viewport, course, ta, judge, student, student2
):
    from labs.entries import services as entry_services
    from labs.entries.models import EntryKit
    from prizes import services as prize_services
    from tests.labs.entries.conftest import code, html_output, notebook_bytes, upload

    lab = make_music_lab(course)
    EntryKit.objects.create(lab=lab, parts=["notebook", "description"])
    now = timezone.now()
    for member, text, score in ((student, "Two LSTM layers", 1.4), (student2, "One GRU layer", 1.9)):
        submission = Submission.objects.create(
            lab=lab, member=member, storage_prefix=f"artifacts/test/{member.pk}", files=[], sha256="c" * 64, size=1,
            received_at=now,
        )  # fmt: skip
        Evaluation.objects.create(
            submission=submission, status="succeeded", finished_at=now, public_score=score, private_score=score,
            metrics={"public": {"bpc": score}}, samples=[{"kind": "abc", "title": "Reel", "text": "X:1\nK:D\nABcd|"}],
        )  # fmt: skip
        entry_services.choose_submission(lab=lab, member=member, submission_id=submission.pk, at=now)
        entry_services.set_texts(lab=lab, member=member, texts={"description": text}, title=text, at=now)
        notebook = notebook_bytes(code("train()", [html_output(f"<p>{text}: loss 1.23</p>")]))
        entry_services.attach_file(lab=lab, member=member, part="notebook", upload=upload("n.ipynb", notebook), at=now)
    round = Round.objects.create(
        course=course, title="Best song", kind="lab", lab=lab, opens_at=now + timedelta(hours=1),
        closes_at=now + timedelta(hours=2),
    )  # fmt: skip
    prize_services.add_lab_entries(round=round, actor=ta.user)
    Criterion.objects.create(round=round, name="Analysis", weight=1, position=0)
    Round.objects.filter(pk=round.pk).update(opens_at=now - timedelta(hours=1))
    JudgeAssignment.objects.create(round=round, judge=judge, conflicts_declared_at=now)
    hers, his = Entry.objects.get(member=student), Entry.objects.get(member=student2)

    sponsor = browsers(viewport)
    sponsor.sign_in(judge)
    sponsor.goto(reverse("prizes:judge_round", args=[course.slug, round.pk]))
    for entry, mark in ((hers, "5"), (his, "3")):
        sponsor.page.locator(f"#entry-{entry.pk}").locator("xpath=..").get_by_role(
            "link", name="Read the entry"
        ).click()
        sponsor.page.wait_for_load_state("load")
        sponsor.audit()
        notebook = sponsor.page.frame_locator("iframe.notebook")
        expect(notebook.locator("body")).to_contain_text(f"{entry.title}: loss 1.23")
        expect(sponsor.page.locator("main")).to_contain_text("Bits per character")
        analysis = sponsor.page.locator(f"#score-{entry.pk}").get_by_label(re.compile("^Analysis"))
        analysis.fill(mark)
        analysis.press("Tab")
        expect(sponsor.page.locator(f"#score-{entry.pk} .saved")).to_have_text("Saved.")
        if entry == hers:
            sponsor.shot("1-judge-reads-the-notebook")
            sponsor.assert_fits_the_screen()
        sponsor.page.go_back()
        sponsor.page.wait_for_load_state("load")
    assert sorted(Score.objects.values_list("entry_id", "value")) == sorted([(hers.pk, 5), (his.pk, 3)])

    grace = browsers(viewport)
    grace.sign_in(ta)
    grace.goto(reverse("prizes:results", args=[course.slug, round.pk]))
    ranking = grace.page.locator("section", has=grace.page.get_by_role("heading", name="Ranking")).locator("table")
    expect(ranking.locator("tbody tr").first).to_contain_text("Two LSTM layers")
    grace.shot("2-ta-sees-the-results")
    grace.assert_fits_the_screen()
    sponsor.assert_clean()
    grace.assert_clean()
