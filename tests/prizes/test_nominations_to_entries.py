"""The data migration that turns lab-round sample nominations into lab entries."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from labs.entries.models import LabEntry
from prizes.models import Entry, Round
from tests.factories import make_music_lab
from tests.labs.entries.conftest import graded

pytestmark = pytest.mark.django_db

migration = importlib.import_module("prizes.migrations.0003_nominations_to_lab_entries")


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
