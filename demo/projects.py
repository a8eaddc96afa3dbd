"""The demo course's final projects: two groups (one with an invitation accepted), slides, a graded paper review."""

import io
from datetime import timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pypdf import PdfWriter

from demo.course import member
from projects import services
from projects.models import Group, GroupMember, Invitation, PaperReview, SlidesVersion


def pdf(pages: int, name: str) -> SimpleUploadedFile:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    buffer = io.BytesIO()
    writer.write(buffer)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/pdf")


# The groups registered, invited and uploaded their slides this long before the demo's presentation day (today), so
# that every page lists a group's states in the order they happened: registered, then presented.
SETTLED_BEFORE = timedelta(days=2)


def _happened_earlier(course, delta: timedelta) -> None:
    """Move the groups' whole trail (registration, members, invitations, slides) back by ``delta``, keeping its order."""
    groups = Group.objects.filter(course=course)
    groups.update(created_at=F("created_at") - delta)
    GroupMember.objects.filter(group__in=groups).update(joined_at=F("joined_at") - delta)
    Invitation.objects.filter(group__in=groups).update(created_at=F("created_at") - delta)
    Invitation.objects.filter(group__in=groups, responded_at__isnull=False).update(
        responded_at=F("responded_at") - delta
    )
    SlidesVersion.objects.filter(group__in=groups).update(uploaded_at=F("uploaded_at") - delta)


@transaction.atomic
def seed_projects(course) -> None:
    if Group.objects.filter(course=course).exists():
        return
    now = timezone.now().astimezone(course.tz)
    friday = (now + timedelta(days=(4 - now.weekday()) % 7 or 7)).date()
    services.ensure_project_deadlines(course=course, friday=friday)
    ta = member(course, "ta@demo.edu")
    ada, alan, grace, kurt, emmy = (member(course, f"{n}@demo.edu") for n in ("ada", "alan", "grace", "kurt", "emmy"))
    bards = services.create_group(member=ada, name="Neural Bards")
    services.invite(group=bards, inviter=ada, email=alan.user.email)
    services.accept_invitation(invitation=Invitation.objects.get(group=bards, invitee=alan), member=alan)
    services.update_proposal(
        group=bards,
        member=ada,
        title="Folk tunes that remember their key",
        abstract="An LSTM with a key-aware memory that keeps a tune in its mode across a whole reel.",
    )
    services.upload_slides(group=bards, member=alan, upload=pdf(4, "neural-bards.pdf"))
    faces = services.create_group(member=grace, name="Fair Faces")
    services.invite(group=faces, inviter=grace, email=kurt.user.email)
    services.accept_invitation(invitation=Invitation.objects.get(group=faces, invitee=kurt), member=kurt)
    services.update_proposal(
        group=faces,
        member=grace,
        title="Debiasing without group labels",
        abstract="Learning the latent structure of faces to resample rare ones, in the spirit of the DB-VAE.",
    )
    services.upload_slides(group=faces, member=grace, upload=pdf(3, "fair-faces.pdf"))
    services.generate_schedule(course=course, seed="demo", actor=ta.user)
    _happened_earlier(course, SETTLED_BEFORE)
    services.submit_review(
        member=emmy,
        paper_title="Attention Is All You Need",
        paper_authors="Vaswani et al.",
        paper_link="arXiv:1706.03762",
        upload=pdf(1, "review.pdf"),
    )
    review = PaperReview.objects.get(member=emmy)
    services.grade_review(
        review=review,
        actor=ta.user,
        clarity=4,
        technical=5,
        passed=True,
        feedback="Clear and precise; the figure on multi-head attention helps.",
        release=True,
    )
