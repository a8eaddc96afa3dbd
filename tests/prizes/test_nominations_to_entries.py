"""The data migrations that turn lab-round sample nominations into lab entries and link the rounds to them."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from labs.entries.models import LabEntry
from prizes.models import Entry, Round
from tests.factories import make_music_lab
from tests.labs.entries.conftest import graded

pytestmark = pytest.mark.django_db

migration = importlib.import_module("prizes.migrations.0003_nominations_to_lab_entries")
linking = importlib.import_module("prizes.migrations.0005_link_round_entries_to_lab_entries")


@pytest.fixture(autouse=True)
def nominations_allowed():
    """The database as it was before 0006: a lab-round entry may be a bare nomination (rolled back with the test)."""
    constraint = next(c for c in Entry._meta.constraints if c.name == "entry_is_group_or_lab_entry")
    with connection.schema_editor() as editor:
        editor.remove_constraint(Entry, constraint)


def _round(course, lab, title):
    now = timezone.now()
    return Round.objects.create(
        course=course, title=title, kind=Round.Kind.LAB, lab=lab, opens_at=now, closes_at=now + timedelta(days=1)
    )


def test_each_students_latest_nomination_of_a_lab_becomes_her_entry(course, student, student2):
    lab = make_music_lab(course)
    first, second = graded(lab, student), graded(lab, student)
    theirs = graded(lab, student2)
    early, late = _round(course, lab, "Best song"), _round(course, lab, "Best song, finals")
    Entry.objects.create(round=early, member=student, submission=first, sample_index=0, title="Jig")
    Entry.objects.create(round=late, member=student, submission=second, sample_index=1, title="Reel")
    Entry.objects.create(round=early, member=student2, submission=theirs, sample_index=0, title="Air")

    migration.nominations_to_entries(apps, None)
    migration.nominations_to_entries(apps, None)  # running it again adds nothing

    entries = {(e.member, e.submission, e.title) for e in LabEntry.objects.filter(lab=lab)}
    assert entries == {(student, second, "Reel"), (student2, theirs, "Air")}


def test_each_nomination_of_a_lab_round_then_points_at_her_lab_entry(course, student, student2, judge):
    from prizes.models import Criterion, JudgeAssignment, Score

    lab = make_music_lab(course)
    other_lab = make_music_lab(course, slug="lab-other", number=9)
    mine, elsewhere = graded(lab, student), graded(other_lab, student2)
    early, late = _round(course, lab, "Best song"), _round(course, lab, "Best song, finals")
    first = Entry.objects.create(round=early, member=student, submission=mine, sample_index=0, title="Jig")
    again = Entry.objects.create(round=late, member=student, submission=mine, sample_index=1, title="Reel")
    # A nomination of a submission to another lab: 0003 made no lab entry for it.
    stray = Entry.objects.create(round=early, member=student2, submission=elsewhere, sample_index=0, title="Air")
    criterion = Criterion.objects.create(round=early, name="Song", weight=1.0)
    JudgeAssignment.objects.create(round=early, judge=judge)
    Score.objects.create(judge=judge, entry=first, criterion=criterion, value=4, updated_at=timezone.now())

    migration.nominations_to_entries(apps, None)
    linking.link_round_entries(apps, None)
    linking.link_round_entries(apps, None)  # running it again changes nothing

    hers = LabEntry.objects.get(lab=lab, member=student)
    first.refresh_from_db(), again.refresh_from_db(), stray.refresh_from_db()
    assert first.lab_entry == hers and again.lab_entry == hers
    assert stray.lab_entry.lab == lab and stray.lab_entry.submission is None  # incomplete until she picks one
    assert LabEntry.objects.filter(lab=lab).count() == 2
    assert first.scores.get().value == 4  # the judges' marks stay with the entry
