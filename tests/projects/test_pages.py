from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from projects import services
from tests.conftest import make_member
from tests.projects.conftest import pdf_upload, set_deadline


def test_a_student_registers_a_group_and_invites_from_the_page(deadlines, login, course, student, student2):
    client = login(student)
    response = client.post(reverse("projects:group_create", args=[course.slug]), {"name": "Page Group"})
    assert response.status_code == 302
    group = student.project_group_member.group
    client.post(reverse("projects:invite", args=[course.slug, group.pk]), {"email": student2.user.email})
    body = login(student2).get(reverse("projects:home", args=[course.slug])).content.decode()
    assert "invites you to <strong>Page Group</strong>" in body
    invitation = student2.project_invitations.get()
    client = login(student2)
    client.post(reverse("projects:invitation_respond", args=[course.slug, invitation.pk]), {"action": "accept"})
    assert group.members.count() == 2


def test_an_error_from_the_rules_is_shown_to_the_student(deadlines, login, course, student, outsider):
    client = login(student)
    client.post(reverse("projects:group_create", args=[course.slug]), {"name": "G"})
    group = student.project_group_member.group
    response = client.post(
        reverse("projects:invite", args=[course.slug, group.pk]), {"email": outsider.user.email}, follow=True
    )
    assert "No student with the e-mail eve.outsider@example.edu is in this course" in response.content.decode()


def test_the_group_page_explains_missing_prize_eligibility(login, course, student):
    set_deadline(course, "project-groups", timezone.now() - timedelta(hours=1))
    services.create_group(member=student, name="Late")
    body = login(student).get(reverse("projects:home", args=[course.slug])).content.decode()
    assert "Not eligible for prizes" in body
    assert "after the group-registration deadline" in body


def test_a_two_page_review_uploaded_on_the_page_shows_the_page_count(deadlines, login, course, student):
    response = login(student).post(
        reverse("projects:review", args=[course.slug]),
        {"paper_title": "T", "paper_authors": "A", "paper_link": "1706.03762", "file": pdf_upload(2)},
    )
    assert response.status_code == 200
    assert "your PDF has 2 pages" in response.content.decode()


def test_the_dashboard_panel_tells_a_student_what_is_left(deadlines, login, course, student):
    body = login(student).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "Choose your final project" in body
    group = services.create_group(member=student, name="Panel")
    body = login(student).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "Upload your group&#x27;s slides (Panel)." in body
    services.upload_slides(group=group, member=student, upload=pdf_upload(1))
    body = login(student).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "Upload your group" not in body


def test_the_dashboard_panel_shows_released_review_feedback(deadlines, login, course, student, ta):
    review = services.submit_review(
        member=student, paper_title="T", paper_authors="A", paper_link="1706.03762", upload=pdf_upload(1)
    )
    services.grade_review(review=review, actor=ta.user, clarity=3, technical=3, passed=True, feedback="", release=True)
    body = login(student).get(reverse("courses:dashboard", args=[course.slug])).content.decode()
    assert "Your paper review passed: read the feedback." in body


@pytest.mark.parametrize(
    "name", ["projects:staff_home", "projects:staff_schedule", "projects:staff_reviews", "projects:staff_completion"]
)
def test_staff_pages_render_with_data(deadlines, login, course, student, student2, ta, name):
    group = services.create_group(member=student, name="<b>Bold</b>")
    services.upload_slides(group=group, member=student, upload=pdf_upload(1))
    services.submit_review(
        member=student2,
        paper_title="<script>x</script>",
        paper_authors="A",
        paper_link="1706.03762",
        upload=pdf_upload(1),
    )
    response = login(ta).get(reverse(name, args=[course.slug]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "<b>Bold</b>" not in body
    assert "<script>x</script>" not in body


def test_the_staff_group_page_grants_an_extension_to_every_member(deadlines, login, course, student, ta):
    group = services.create_group(member=student, name="G")
    partner = make_member(course, "partner@example.edu")
    services.staff_add_member(group=group, member=partner, actor=ta.user, reason="asked by email")
    local = (timezone.now() + timedelta(days=3)).astimezone(course.tz)
    client = login(ta)
    assert client.get(reverse("projects:staff_group", args=[course.slug, group.pk])).status_code == 200
    client.post(
        reverse("projects:staff_extension", args=[course.slug, group.pk]),
        {"until": local.strftime("%Y-%m-%dT%H:%M"), "reason": "illness"},
    )
    assert sorted(e.member.user.email for e in deadlines["slides"].extensions.all()) == [
        "ada.lovelace@example.edu",
        "partner@example.edu",
    ]


def test_a_student_in_a_group_is_told_on_the_review_page_why_she_cannot_upload(deadlines, login, course, student):
    services.create_group(member=student, name="G")
    body = login(student).get(reverse("projects:review", args=[course.slug])).content.decode()
    assert "You are in a project group (Option 1)" in body
    assert 'type="file"' not in body


def test_leave_group_asks_first_and_she_stays_until_she_confirms(deadlines, login, course, student, student2):
    group = services.create_group(member=student, name="Protein Diffusers")
    invitation = services.invite(group=group, inviter=student, email=student2.user.email)
    services.accept_invitation(invitation=invitation, member=student2)
    client = login(student)
    url = reverse("projects:leave", args=[course.slug, group.pk])
    asked = client.post(url).content.decode()
    assert "<h1>Leave Protein Diffusers?</h1>" in asked
    assert "<li>To come back, a member of the group must invite you again.</li>" in asked
    assert f'<a href="{reverse("projects:home", args=[course.slug])}">Cancel</a>' in asked
    assert group.members.filter(member=student).exists()
    body = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "You left Protein Diffusers." in body
    assert list(group.members.values_list("member_id", flat=True)) == [student2.pk]


def test_the_last_member_is_told_leaving_removes_the_group(deadlines, login, course, student):
    group = services.create_group(member=student, name="Solo")
    asked = login(student).post(reverse("projects:leave", args=[course.slug, group.pk])).content.decode()
    assert "<li>You are its last member: the group and its proposal are removed.</li>" in asked
    assert group.members.filter(member=student).exists()
