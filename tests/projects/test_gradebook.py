"""The staff's record of each student and the scores export: read from the one ranking and the one completion rule."""

import csv
import io
from datetime import timedelta

from django.urls import reverse

from courses.models import Deadline
from courses.services import grant_extension
from labs.entries.models import LabEntry
from labs.selectors import leaderboard_for
from projects import gradebook, services
from tests.conftest import make_member
from tests.factories import make_music_lab
from tests.labs.test_leaderboard import graded
from tests.projects.conftest import pdf_upload


def passed_review(member, ta):
    review = services.submit_review(
        member=member, paper_title="T", paper_authors="A", paper_link="1706.03762", upload=pdf_upload(1)
    )
    services.grade_review(review=review, actor=ta.user, clarity=4, technical=4, passed=True, feedback="", release=True)
    return review


def test_the_scores_export_has_each_students_board_entry_per_lab_and_split_her_project_and_grade(
    deadlines, course, student, student2, ta
):
    lab = make_music_lab(course)
    graded(lab, student, public=2.0, private=2.5)
    graded(lab, student, public=1.5, private=3.0)  # her best public score: the board counts this one
    graded(lab, student2, public=1.8, private=1.0)
    passed_review(student, ta)

    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(gradebook.scores_csv(course=course, viewer=ta)))}
    assert sorted(rows) == [student.user.email, student2.user.email]
    ada, alan = rows[student.user.email], rows[student2.user.email]
    columns = ["lab1-music:public:bpc", "lab1-music:public:rank", "lab1-music:private:bpc", "lab1-music:private:rank"]
    assert [ada[c] for c in columns] == ["1.5", "1", "3.0", "2"]
    assert [alan[c] for c in columns] == ["1.8", "2", "1.0", "1"]
    assert (ada["lab1-music:submission"], ada["lab1-music:completed"]) == ("#2", "yes")
    assert (ada["display_name"], ada["name"]) == (student.display_name, student.user.get_full_name())
    assert (ada["project_option"], ada["project_state"], ada["grade"]) == ("review", "review passed", "pass")
    assert (alan["project_option"], alan["project_done"], alan["grade"]) == ("none", "no", "fail")
    # The same numbers the staff's leaderboard shows: the export reads the one ranking.
    board = leaderboard_for(lab=lab, split="private", viewer=ta)
    assert [(r.email, r.score) for r in board.rows] == [(student2.user.email, 1.0), (student.user.email, 3.0)]


def test_only_staff_download_the_scores_export(login, deadlines, course, student, ta):
    url = reverse("projects:staff_scores_csv", args=[course.slug])
    response = login(ta).get(url)
    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment;")
    assert response.content.decode().startswith("email,name,display_name,registered_for_credit")
    assert login(student).get(url).status_code == 403
    page = login(ta).get(reverse("projects:staff_completion", args=[course.slug])).content.decode()
    assert f'href="{url}"' in page
    assert f'href="{reverse("projects:staff_student", args=[course.slug, student.pk])}"' in page


def test_a_students_record_shows_her_submissions_entries_extensions_project_and_grade(
    login, deadlines, course, student, student2, ta
):
    lab = make_music_lab(course)
    first = graded(lab, student, public=2.0, private=2.5)
    best = graded(lab, student, public=1.5, private=3.0)
    graded(lab, student2, public=1.2, private=1.0)
    entry = LabEntry.objects.create(lab=lab, member=student, submission=best, title="My best reel")
    deadline = Deadline.objects.get(course=course, key="lab1")
    grant_extension(
        deadline=deadline, member=student, until=deadline.due_at + timedelta(days=2), reason="Flu", actor=ta.user
    )
    review = passed_review(student, ta)

    page = login(ta).get(reverse("projects:staff_student", args=[course.slug, student.pk])).content.decode()
    for submission in (first, best):
        assert (
            f'href="{reverse("labs:submission", args=[course.slug, lab.slug, submission.pk])}">#{submission.number}'
            in page
        )
    assert '<td class="num">1.5000</td><td class="num">2</td>' in page  # public score and rank
    assert '<td class="num">3.0000</td><td class="num">2</td>' in page  # private score and rank
    assert f'href="{reverse("labs:staff_entry", args=[course.slug, lab.slug, entry.pk])}">Lab 1: My best reel' in page
    assert "Lab 1: Music Generation: until" in page and "Flu" in page
    assert "Suggested grade: <strong>pass</strong>" in page
    assert reverse("projects:staff_review", args=[course.slug, review.pk]) in page
    assert student2.user.email not in page


def test_a_students_record_is_for_staff_and_only_of_students_of_the_course(
    login, deadlines, course, other_course, student, student2, ta
):
    url = reverse("projects:staff_student", args=[course.slug, student.pk])
    assert login(student).get(url).status_code == 403
    assert login(student2).get(url).status_code == 403
    assert login(ta).get(reverse("projects:staff_student", args=[course.slug, ta.pk])).status_code == 404
    stranger = make_member(other_course, "someone.else@example.edu")
    assert login(ta).get(reverse("projects:staff_student", args=[course.slug, stranger.pk])).status_code == 404
    assert login(ta).get(url).status_code == 200
