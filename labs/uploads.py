"""The one upload pipeline: the web form and the token API both call it, and get one refusal type back.

``open_upload`` runs before the body is read (may she submit now, by the stamp of arrival; her upload rate; the
size- and time-bounded handler); ``accept_upload`` runs once it is read (the intake's checks, then storing and
queueing). Either raises ``UploadRefused`` with a message for her, a code and an HTTP status.
"""

from labs import intake, services
from labs.intake import BoundedUploadHandler, UploadRefused
from labs.models import Lab, Submission

MAX_DESCRIPTION = 4000

__all__ = ["UploadRefused", "accept_upload", "open_upload"]


def open_upload(request, *, lab: Lab, member) -> BoundedUploadHandler:
    check = services.may_submit(lab=lab, member=member, at=request.received_at)
    if not check.allowed:
        raise UploadRefused(check.message, code=check.code, status=check.status)
    intake.admit(member=member)
    return intake.install_handler(request, max_bytes=lab.max_artifact_bytes)


def accept_upload(request, *, lab: Lab, member, handler: BoundedUploadHandler, via_api: bool) -> Submission:
    artifact = intake.collect(
        kind=lab.kind,
        uploads=dict(request.FILES.items()),
        max_bytes=lab.max_artifact_bytes,
        handler=handler,
        options=lab.check_options(),
    )
    return services.submit_artifact(
        lab=lab,
        member=member,
        artifact=artifact,
        received_at=request.received_at,
        description=request.POST.get("description", "")[:MAX_DESCRIPTION],
        via_api=via_api,
    )
