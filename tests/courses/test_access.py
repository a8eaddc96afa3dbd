import pytest
from django.urls import reverse

STAFF_PAGES = ["courses:roster", "courses:deadlines", "courses:extensions", "courses:audit"]


@pytest.mark.parametrize("name", ["courses:dashboard", "courses:profile", *STAFF_PAGES])
def test_anonymous_visitors_are_sent_to_sign_in(client, course, name):
    response = client.get(reverse(name, args=[course.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_a_student_gets_403_on_ta_pages(login, student, name):
    assert login(student).get(reverse(name, args=[student.course.slug])).status_code == 403


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_a_judge_sees_nothing_of_students_data(login, judge, student, name):
    response = login(judge).get(reverse(name, args=[judge.course.slug]))
    assert response.status_code == 403
    assert student.user.email not in response.content.decode()


def test_a_member_of_another_course_gets_403(login, outsider, course):
    assert login(outsider).get(reverse("courses:dashboard", args=[course.slug])).status_code == 403


def test_staff_post_without_csrf_token_is_refused(client, ta, course):
    client = client.__class__(enforce_csrf_checks=True)
    client.force_login(ta.user)
    response = client.post(reverse("courses:join_code", args=[course.slug]), {"action": "rotate"})
    assert response.status_code == 403
    course.refresh_from_db()
    assert course.join_code == ""


@pytest.mark.parametrize("who", ["student", "ta", "judge"])
def test_the_dashboard_renders_for_each_role(request, login, course, who):
    member = request.getfixturevalue(who)
    response = login(member).get(reverse("courses:dashboard", args=[course.slug]))
    assert response.status_code == 200
    body = response.content.decode()
    assert ("Lab 1: Music Generation" in body) == (who != "judge")  # a judge has no student deadlines
    assert ("Roster and import" in body) == (who == "ta")


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_ta_pages_render(login, ta, student, name):
    response = login(ta).get(reverse(name, args=[ta.course.slug]))
    assert response.status_code == 200


def test_student_dashboard_shows_extended_deadline_with_original_struck_through(login, student, course):
    from datetime import timedelta

    lab1 = course.deadlines.get(key="lab1")
    lab1.extended_until = lab1.due_at + timedelta(days=1)
    lab1.save()
    body = login(student).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "extended deadline!" in body
    assert "<del>" in body
    assert " ET</time>" in body


def test_responses_carry_a_strict_content_security_policy(login, student, course):
    response = login(student).get(reverse("courses:dashboard", args=[course.slug]))
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"


def test_a_deadline_reads_the_same_on_the_dashboard_the_labs_list_and_the_lab_page(login, course, student, ta):
    from datetime import timedelta

    from courses.deadlines import format_course_time
    from courses.models import Extension
    from tests.factories import make_music_lab

    lab = make_music_lab(course)
    deadline = lab.deadline
    deadline.extended_until = deadline.due_at + timedelta(days=1)
    deadline.save()
    mine = Extension.objects.create(
        deadline=deadline, member=student, until=deadline.due_at + timedelta(days=2), reason="ill", granted_by=ta.user
    )

    def shown(moment):
        return f'<time datetime="{moment.isoformat()}" class="course-time">{format_course_time(moment, course)}</time>'

    everyone = (
        f'<strong class="extended">extended deadline!</strong> {shown(deadline.extended_until)}<br>'
        f'<span class="muted">was <del>{shown(deadline.due_at)}</del></span>'
    )
    hers = f'<br><strong class="extended">Your extension:</strong> {shown(mine.until)}'
    client = login(student)
    for page in (
        reverse("courses:dashboard", args=[course.slug]),
        reverse("labs:index", args=[course.slug]),
        reverse("labs:lab", args=[course.slug, lab.slug]),
    ):
        body = client.get(page).content.decode()
        assert everyone in body, page
        assert hers in body, page
        assert f'<span class="countdown" data-until="{mine.until.isoformat()}">' in body, page
    # Staff see the course-wide extension the same way, and no student's own.
    staff_lab_page = login(ta).get(reverse("labs:lab", args=[course.slug, lab.slug])).content.decode()
    assert everyone in staff_lab_page and "Your extension" not in staff_lab_page


def test_a_judge_dashboard_shows_no_student_deadlines(login, course, judge):
    from datetime import timedelta

    lab1 = course.deadlines.get(key="lab1")
    lab1.extended_until = lab1.due_at + timedelta(days=1)
    lab1.save()
    body = login(judge).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "extended deadline!" not in body
    assert "Lab 1: Music Generation" not in body
    assert "<h2>Deadlines</h2>" not in body
    assert "The rounds you judge appear here once the course's staff put you on a panel." in body
