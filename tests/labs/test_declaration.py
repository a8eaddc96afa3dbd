"""A lab is declared once, in the grader's lab class: the site's rows, columns and queues follow it."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from grader.registry import get_lab, lab_names, metric_spec
from labs.models import Lab
from labs.selectors import leaderboard_columns
from tests.factories import make_music_lab


def test_queues_and_columns_come_from_the_grader_declaration(course, settings):
    assert settings.GRADING_QUEUES == {name: get_lab(name).queue for name in lab_names()}
    lab = make_music_lab(course)
    assert [key for key, _, _ in leaderboard_columns(lab)] == list(get_lab("music").leaderboard_columns)
    label = dict((k, label) for k, label, _ in leaderboard_columns(lab))["bpc"]
    assert label == metric_spec("music", "bpc").label


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"primary_metric": "bits"}, "not a metric of lab 'music'"),
        ({"primary_direction": "max"}, "declared 'min', not 'max'"),
        ({"tiebreak_metric": "novelty", "tiebreak_direction": "min"}, "declared 'max', not 'min'"),
    ],
)
def test_a_lab_row_that_disagrees_with_its_declaration_fails_the_check_and_its_form(course, fields, problem):
    lab = make_music_lab(course)
    Lab.objects.filter(pk=lab.pk).update(**fields)
    lab.refresh_from_db()
    with pytest.raises(ValidationError, match=problem):
        lab.clean()
    with pytest.raises(SystemCheckError, match=problem):
        call_command("check", databases=["default"])


def test_the_worker_refuses_to_grade_while_a_lab_row_disagrees(course, monkeypatch):
    from worker import grading
    from worker.sandbox import SandboxUnavailable

    lab = make_music_lab(course)
    Lab.objects.filter(pk=lab.pk).update(primary_metric="accuracy")
    monkeypatch.setattr(grading, "_sandbox", None)
    with pytest.raises(SandboxUnavailable, match="accuracy"):
        grading.configured_sandbox()


def test_the_check_passes_for_rows_that_agree(course):
    make_music_lab(course)
    call_command("check", databases=["default"])
