import csv
import io

import pytest

from courses.models import Course
from projects import completion, services
from projects.completion import csv_cell
from tests.conftest import make_member
from tests.projects.conftest import pdf_upload


@pytest.fixture
def no_labs(monkeypatch):
    monkeypatch.setattr(completion, "lab_completion", lambda **kw: None)


def hand_in(member):
    return services.submit_review(
        member=member, paper_title="T", paper_authors="A", paper_link="1706.03762", upload=pdf_upload(1)
    )


def rows_of(course, **kwargs):
    return list(csv.DictReader(io.StringIO(completion.completion_csv(course=course, **kwargs))))


def test_the_export_lists_each_registered_student_with_her_option_state_and_suggestion(
    deadlines, no_labs, course, student, student2, ta
):
    presenter = make_member(course, "presenter@example.edu")
    make_member(course, "listener@example.edu", registered=False)
    group = services.create_group(member=presenter, name="Presenters")
    services.upload_slides(group=group, member=presenter, upload=pdf_upload(2))
    services.mark_presented(group=group, actor=ta.user)
    services.grade_review(
        review=hand_in(student), actor=ta.user, clarity=4, technical=4, passed=True, feedback="", release=True
    )

    rows = rows_of(course)
    assert list(rows[0]) == ["email", "name", "registered_for_credit", "option", "state", "project_done", "suggestion"]
    by_email = {r["email"]: r for r in rows}
    assert sorted(by_email) == ["ada.lovelace@example.edu", "alan.turing@example.edu", "presenter@example.edu"]
    assert by_email["presenter@example.edu"]["option"] == "proposal"
    assert by_email["presenter@example.edu"]["state"] == "group Presenters, slides uploaded, presented"
    assert by_email["presenter@example.edu"]["suggestion"] == "pass"
    assert by_email["ada.lovelace@example.edu"]["option"] == "review"
    assert by_email["ada.lovelace@example.edu"]["state"] == "review passed"
    assert by_email["ada.lovelace@example.edu"]["suggestion"] == "pass"
    assert by_email["alan.turing@example.edu"]["option"] == "none"
    assert by_email["alan.turing@example.edu"]["suggestion"] == "fail"
    assert "listener@example.edu" in {r["email"] for r in rows_of(course, include_listeners=True)}


def test_a_group_that_has_not_presented_suggests_fail(deadlines, no_labs, course, student):
    services.create_group(member=student, name="Quiet")
    (row,) = rows_of(course)
    assert (row["state"], row["project_done"], row["suggestion"]) == (
        "group Quiet, no slides, not presented",
        "no",
        "fail",
    )


def test_labs_become_columns_and_count_when_the_course_requires_them(deadlines, course, student, student2, monkeypatch):
    course.completion_rule = Course.CompletionRule.PROJECT_AND_LABS
    course.save()
    monkeypatch.setattr(
        completion,
        "lab_completion",
        lambda course, members: {student.pk: {"lab1": True, "lab2": True}, student2.pk: {"lab1": True, "lab2": False}},
    )
    for member in (student, student2):
        services.grade_review(
            review=hand_in(member), actor=None, clarity=3, technical=3, passed=True, feedback="", release=True
        )
    rows = {r["email"]: r for r in rows_of(course)}
    assert rows["ada.lovelace@example.edu"]["lab:lab1"] == "yes"
    assert rows["alan.turing@example.edu"]["lab:lab2"] == "no"
    assert rows["ada.lovelace@example.edu"]["suggestion"] == "pass"
    assert rows["alan.turing@example.edu"]["suggestion"] == "fail"


def test_without_lab_results_a_required_labs_rule_gives_unknown_for_a_done_project(deadlines, no_labs, course, student):
    course.completion_rule = Course.CompletionRule.PROJECT_AND_LABS
    course.save()
    services.grade_review(
        review=hand_in(student), actor=None, clarity=3, technical=3, passed=True, feedback="", release=True
    )
    (row,) = rows_of(course)
    assert row["suggestion"] == "unknown"
    assert not any(key.startswith("lab:") for key in row)


@pytest.mark.parametrize("text", ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_cells_that_a_spreadsheet_would_run_are_quoted(text):
    assert csv_cell(text) == "'" + text


def test_a_formula_in_a_student_name_is_quoted_in_the_export(deadlines, no_labs, course):
    make_member(course, "=cmd.evil@example.edu")
    (row,) = rows_of(course)
    assert row["email"] == "'=cmd.evil@example.edu"
    assert row["name"] == "'=Cmd Evil"
