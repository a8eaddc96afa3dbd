import pytest
from django.urls import URLPattern, reverse

from courses import features
from projects import services
from projects.urls import urlpatterns
from tests.conftest import make_member
from tests.projects.conftest import pdf_upload

STAFF_PAGES = [
    "projects:staff_home",
    "projects:staff_schedule",
    "projects:staff_reviews",
    "projects:staff_completion",
    "projects:staff_completion_csv",
]


@pytest.fixture
def slides(deadlines, student):
    group = services.create_group(member=student, name="Owners")
    return services.upload_slides(group=group, member=student, upload=pdf_upload(2))


@pytest.fixture
def paper(deadlines, student2):
    return services.submit_review(
        member=student2, paper_title="T", paper_authors="A", paper_link="1706.03762", upload=pdf_upload(1)
    )


def slides_url(version):
    return reverse("projects:slides_file", args=[version.group.course.slug, version.pk])


def judge_hook(monkeypatch, decide):
    """Replace the judging app's registered check with ``decide`` (none at all when it is None)."""
    monkeypatch.setattr(features, "_group_viewers", [decide] if decide is not None else [])


def test_every_project_view_declares_its_access_rule():
    for pattern in urlpatterns:
        assert isinstance(pattern, URLPattern)
        assert pattern.callback.access_rule[0] in {"course", "public"}, pattern.name


@pytest.mark.parametrize("name", ["projects:home", "projects:review", *STAFF_PAGES])
def test_anonymous_visitors_are_sent_to_sign_in(client, course, name):
    response = client.get(reverse(name, args=[course.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


def test_anonymous_visitors_asking_for_slides_are_sent_to_sign_in(client, slides):
    response = client.get(slides_url(slides))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_a_student_gets_403_on_ta_pages(login, course, student, name):
    assert login(student).get(reverse(name, args=[course.slug])).status_code == 403


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_a_judge_gets_403_on_ta_pages(login, course, judge, name):
    assert login(judge).get(reverse(name, args=[course.slug])).status_code == 403


def test_a_group_member_downloads_the_slides_as_a_pdf_attachment(login, slides, student):
    response = login(student).get(slides_url(slides))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith('attachment; filename="owners-slides-')
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert b"".join(response.streaming_content).startswith(b"%PDF-")


def test_a_student_of_another_group_gets_403_on_the_slides(login, course, slides, student2):
    services.create_group(member=student2, name="Others")
    assert login(student2).get(slides_url(slides)).status_code == 403


def test_a_member_of_another_course_gets_403(login, slides, outsider):
    assert login(outsider).get(slides_url(slides)).status_code == 403


def test_a_ta_sees_every_groups_slides(login, slides, ta):
    assert login(ta).get(slides_url(slides)).status_code == 200


def test_a_judge_sees_nothing_without_the_judging_apps_hook(login, slides, judge, monkeypatch):
    judge_hook(monkeypatch, None)
    assert login(judge).get(slides_url(slides)).status_code == 403


def test_a_judge_sees_only_the_groups_assigned_to_her(login, course, slides, judge, monkeypatch):
    other = services.create_group(member=make_member(course, "x@example.edu"), name="Unassigned")
    other_slides = services.upload_slides(group=other, member=other.members.get().member, upload=pdf_upload(1))
    judge_hook(monkeypatch, lambda user, group: user == judge.user and group.name == "Owners")
    client = login(judge)
    assert client.get(slides_url(slides)).status_code == 200
    assert client.get(slides_url(other_slides)).status_code == 403


def test_a_review_is_seen_by_its_author_and_the_staff_only(login, course, paper, student, student2, ta, judge):
    url = reverse("projects:review_file", args=[course.slug, paper.pk])
    assert login(student2).get(url).status_code == 200
    assert login(ta).get(url).status_code == 200
    assert login(student).get(url).status_code == 403
    assert login(judge).get(url).status_code == 403


def test_a_student_cannot_act_on_another_groups_page(login, course, slides, student2):
    group = slides.group
    client = login(student2)
    assert client.post(reverse("projects:invite", args=[course.slug, group.pk]), {"email": "a@b.c"}).status_code == 403
    assert client.post(reverse("projects:leave", args=[course.slug, group.pk])).status_code == 403


def test_the_completion_export_is_a_csv_attachment(login, course, ta):
    response = login(ta).get(reverse("projects:staff_completion_csv", args=[course.slug]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="dl-completion.csv"'
