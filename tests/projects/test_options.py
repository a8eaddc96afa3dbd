import pytest
from django.core.exceptions import ValidationError

from projects import services
from projects.models import ProjectSettings
from tests.projects.conftest import pdf_upload


def review(member):
    return services.submit_review(
        member=member, paper_title="T", paper_authors="A", paper_link="1706.03762", upload=pdf_upload(1)
    )


def test_a_student_in_a_group_cannot_also_hand_in_a_review(deadlines, student):
    services.create_group(member=student, name="G")
    with pytest.raises(ValidationError, match="You are in a proposal group \\(Option 1\\); the course allows one"):
        review(student)


def test_a_student_with_a_review_cannot_register_or_join_a_group(deadlines, student, student2):
    review(student)
    with pytest.raises(ValidationError, match="handed in a paper review \\(Option 2\\)"):
        services.create_group(member=student, name="G")
    group = services.create_group(member=student2, name="H")
    invitation = services.invite(group=group, inviter=student2, email=student.user.email)
    with pytest.raises(ValidationError, match="cannot also join a proposal group"):
        services.accept_invitation(invitation=invitation, member=student)


def test_a_course_may_allow_both_options(deadlines, course, student):
    ProjectSettings.objects.create(course=course, allow_both_options=True)
    services.create_group(member=student, name="G")
    assert review(student).member == student
