"""A group's proposal: its title and abstract, and the versions of its slides."""

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from courses.models import Membership
from projects.models import ABSTRACT_MAX, SLIDES_DEADLINE, TITLE_MAX, Group, SlidesVersion
from projects.selectors import group_timing
from projects.services.checks import require_in_group
from projects.services.uploads import checked_pdf, original_name


@transaction.atomic
def update_proposal(*, group: Group, member: Membership, title: str, abstract: str) -> Group:
    """The group's title and abstract; members edit them until the slides deadline, staff at any time."""
    if not member.is_staff_role:
        require_in_group(group, member)
        timing = group_timing(group=group, key=SLIDES_DEADLINE, at=timezone.now())
        if timing is not None and not timing.allowed:
            raise ValidationError(timing.message)
    title = " ".join(title.split())
    abstract = abstract.strip()
    if len(title) > TITLE_MAX:
        raise ValidationError(f"The title may be at most {TITLE_MAX} characters; yours has {len(title)}.")
    if len(abstract) > ABSTRACT_MAX:
        raise ValidationError(f"The abstract may be at most {ABSTRACT_MAX} characters; yours has {len(abstract)}.")
    group.title = title
    group.abstract = abstract
    group.save(update_fields=["title", "abstract"])
    return group


def upload_slides(*, group: Group, member: Membership, upload: UploadedFile) -> SlidesVersion:
    """A member uploads the group's slides; each upload is a new version, the newest counts."""
    require_in_group(group, member)
    now = timezone.now()
    timing = group_timing(group=group, key=SLIDES_DEADLINE, at=now)
    if timing is not None and not timing.allowed:
        raise ValidationError(timing.message)
    pages = checked_pdf(upload, what="the slides")
    with transaction.atomic():
        return SlidesVersion.objects.create(
            group=group,
            file=upload,
            original_name=original_name(upload),
            size=upload.size,
            pages=pages,
            uploaded_by=member,
            uploaded_at=now,
            late=bool(timing and timing.late),
        )
