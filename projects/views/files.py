"""Downloads of the projects app's PDFs (slides, paper reviews), each only to whom may see it."""

from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from courses.permissions import course_view
from projects.access import may_see_group, may_see_review
from projects.models import PaperReview, SlidesVersion

FILE_CSP = "default-src 'none'; sandbox"


def _pdf_response(field_file, filename: str) -> FileResponse:
    response = FileResponse(
        field_file.open("rb"), as_attachment=True, filename=filename, content_type="application/pdf"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    response["Cache-Control"] = "private, no-store"
    return response


@course_view()
@require_GET
def slides_file(request, pk: int):
    version = get_object_or_404(SlidesVersion.objects.select_related("group"), pk=pk, group__course=request.course)
    if not may_see_group(member=request.member, group=version.group):
        raise PermissionDenied("These slides belong to another group.")
    stamp = timezone.localtime(version.uploaded_at, request.course.tz).strftime("%Y%m%d-%H%M")
    return _pdf_response(version.file, f"{slugify(version.group.name) or 'group'}-slides-{stamp}.pdf")


@course_view()
@require_GET
def review_file(request, pk: int):
    item = get_object_or_404(PaperReview.objects.select_related("member__user"), pk=pk, member__course=request.course)
    if not may_see_review(member=request.member, review=item):
        raise PermissionDenied("This review belongs to another student.")
    # Named after its author, so a TA's downloads folder says whose review each file is.
    user = item.member.user
    author = slugify(user.get_full_name() or user.email.split("@")[0]) or f"student-{item.member_id}"
    return _pdf_response(item.file, f"paper-review-{author}.pdf")
