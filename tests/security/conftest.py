"""Fixtures of the security tests: hostile artifacts, a token client, host snapshots, a fresh rate-limit cache."""

import hashlib
import pickle
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from labs.models import Lab
from lms.keyring import seal
from lms.models import Deployment as LmsDeployment
from lms.models import Registration as LmsRegistration
from lms.models import Section
from lms.tool import new_key_pair
from tests.factories import make_music_lab, token_for
from tests.worker.conftest import graded_lab, music_data_dir  # noqa: F401 - shared fixtures

REPO = Path(__file__).resolve().parents[2]
API = "/api/labs/{}/submissions"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


class MarkerPayload:
    """Unpickling this object opens (and so creates) ``path``: proof of code execution if it ever appears."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickle_payload(marker: Path, protocol: int = 4) -> bytes:
    return pickle.dumps(MarkerPayload(marker), protocol=protocol)


@pytest.fixture
def marker(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("marker") / "pwned"
    assert not path.exists()
    return path


@pytest.fixture
def music_lab(course) -> Lab:
    # Room for the 100,000-tensor header; the other limits are the course's.
    return make_music_lab(course, max_artifact_bytes=16 * 1024 * 1024, daily_quota=100, max_in_flight=100)


@pytest.fixture
def vision_lab(course) -> Lab:
    return Lab.objects.create(
        course=course,
        slug="lab2-vision",
        kind="vision",
        number=2,
        title="Computer Vision",
        deadline=music_lab_deadline(course),
        primary_metric="worst_group_tpr",
        primary_direction="max",
        tiebreak_metric="balanced_accuracy",
        tiebreak_direction="max",
        max_artifact_bytes=16 * 1024 * 1024,
        evaluator_options={"allow_onnx": "1"},
        daily_quota=100,
        max_in_flight=100,
    )


@pytest.fixture
def llm_lab(course) -> Lab:
    from tests.factories import GEMMA_2_2B_IT, GEMMA_2_2B_IT_CONFIG, register_base_model

    lab = Lab.objects.create(
        course=course,
        slug="lab3-llm",
        kind="llm",
        number=3,
        title="Large Language Models",
        deadline=music_lab_deadline(course),
        primary_metric="cross_entropy",
        primary_direction="min",
        tiebreak_metric="style_score",
        tiebreak_direction="max",
        max_artifact_bytes=16 * 1024 * 1024,
        daily_quota=100,
        max_in_flight=100,
    )
    register_base_model(lab, config=GEMMA_2_2B_IT_CONFIG, name=GEMMA_2_2B_IT)
    return lab


def music_lab_deadline(course):
    from courses.models import Deadline

    return Deadline.objects.get(course=course, key="lab1")


@pytest.fixture
def api(client, student):
    key = token_for(student)

    def post(lab, data, **extra):
        return client.post(API.format(lab.slug), data, HTTP_AUTHORIZATION=f"Bearer {key}", **extra)

    post.key = key
    return post


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 and mode of every file under ``roots`` (byte-code caches aside), to prove nothing was changed."""
    state: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            state[str(root)] = "absent"
            continue
        for path in sorted(root.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            if path.is_symlink() or not path.is_file():
                state[str(path)] = f"{'link' if path.is_symlink() else 'dir'}:{oct(path.lstat().st_mode)}"
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path)] = f"{digest}:{oct(path.stat().st_mode)}"
    return state


def stored_root(submission) -> Path:
    return Path(settings.MEDIA_ROOT) / submission.storage_prefix


# ------------------------------------------------------------------------- a course full of hostile text

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{SCRIPT}{ATTRIBUTE}"
RAW_MARKERS = ("<script>alert(1)", "<img src=x onerror")


@pytest.fixture
def world(course, student, student2, ta, judge, outsider):
    """One object of every kind the URLs name, in ``course``, carrying hostile text wherever a person or a model
    can write it. Returns the values that fill the URL configuration's path parameters."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from courses.models import Deadline, Extension
    from labs.models import Evaluation, Submission
    from labs.services import create_token

    now = timezone.now()
    for number, member in enumerate((student, student2, ta, judge, outsider)):
        member.display_name = f"{number}{HOSTILE}"
        member.save(update_fields=["display_name"])
    student.user.first_name = f'=HYPERLINK("http://evil"){SCRIPT}'
    student.user.save(update_fields=["first_name"])
    lab = make_music_lab(course)
    from django.core.files.storage import default_storage

    prefix = Submission.new_prefix(lab)
    key = default_storage.save(f"{prefix}/model.safetensors", ContentFile(b"<html><script>alert(1)</script>"))
    submission = Submission.objects.create(
        lab=lab,
        member=student,
        storage_prefix=prefix,
        sha256="a" * 64,
        size=31,
        received_at=now,
        files=[{"name": "model.safetensors", "sha256": "b" * 64, "size": 31, "key": key}],
        description=HOSTILE,
        artifact_summary={"hidden_size": 16, "note": HOSTILE},
    )
    evaluation = Evaluation.objects.create(
        submission=submission,
        status="succeeded",
        attempt=1,
        finished_at=now,
        public_score=2.5,
        private_score=2.6,
        public_tiebreak=0.5,
        private_tiebreak=0.5,
        metrics={"public": {"bpc": 2.5, "validity": 0.5}, "private": {"bpc": 2.6, "validity": 0.5}},
        samples=[
            {
                "kind": "abc",
                "split": "public",
                "title": HOSTILE,
                "valid": False,
                "novelty": 0.5,
                "text": f"X:1\nT:{HOSTILE}\nK:D\n{SCRIPT}",
            }
        ],
        details={"per_song": [{"song": 0, "reason": HOSTILE}]},
        staff_log=HOSTILE,
        log_tail=HOSTILE,
    )
    from labs.entries.models import EntryFile, EntryKit, LabEntry

    EntryKit.objects.create(lab=lab, parts=["notebook", "description", "discussion"])
    lab_entry = LabEntry.objects.create(
        lab=lab, member=student, submission=submission, title=HOSTILE, description=HOSTILE, discussion=HOSTILE
    )
    rendered = default_storage.save(f"{prefix}/rendered.html", ContentFile(b"<p>notebook</p>"))
    notebook = default_storage.save(f"{prefix}/notebook.ipynb", ContentFile(b"{}"))
    EntryFile.objects.create(
        entry=lab_entry,
        part="notebook",
        key=notebook,
        rendered_key=rendered,
        name=HOSTILE[:200],
        extension="ipynb",
        size=2,
        sha256="c" * 64,
        findings=[{"cell": 1, "line": 1, "what": HOSTILE, "hint": HOSTILE}],
    )
    Evaluation.objects.create(
        submission=submission,
        status="failed",
        attempt=1,
        finished_at=now,
        error_code="bad",
        error_message=HOSTILE,
        log_tail=HOSTILE,
        staff_log=HOSTILE,
    )
    token, _ = create_token(member=student, name=HOSTILE[:60])
    deadline = Deadline.objects.get(course=course, key="lab1")
    extension = Extension.objects.create(
        deadline=deadline, member=student, until=now + timedelta(days=5), reason=HOSTILE, granted_by=ta.user
    )
    values = {
        "course_slug": course.slug,
        "lab_slug": lab.slug,
        "key": deadline.key,
        "name": "model.safetensors",
        "uidb64": "MQ",
        "instrument": "acoustic_grand_piano",
        "note": "C4",
        "token": "set-password",
        "labs:token_revoke": token.pk,
        "labs:evaluation": evaluation.pk,
        "labs:rerun": submission.pk,
        "labs:submission": submission.pk,
        "labs:mark_final": submission.pk,
        "labs:artifact_file": submission.pk,
        "labs:result_file": submission.pk,
        "labs:entry_file": lab_entry.pk,
        "labs:entry_notebook": lab_entry.pk,
        "labs:staff_entry": lab_entry.pk,
        "labs:entry_bundle": lab_entry.pk,
        "part": "notebook",
        "api:submission": submission.pk,
        "courses:extension_revoke": extension.pk,
        "courses:roster_member": student.pk,
        "courses:roster_remove": student.pk,
    }
    values.update(_project_world(course, student, student2, ta, judge, now))
    values.update(_lab_round_world(course, lab, lab_entry, judge, now))
    return values


def _lab_round_world(course, lab, lab_entry, judge, now) -> dict:
    """A lab round judging her hostile entry, the judge on its panel: the judge's entry pages name this entry."""
    from datetime import timedelta

    try:
        from prizes.models import Entry, JudgeAssignment, Round
    except ImportError:  # the prizes app is optional in a slimmed-down deployment
        return {}
    round_ = Round.objects.create(
        course=course,
        title=f"Lab round {HOSTILE}"[:150],
        kind=Round.Kind.LAB,
        lab=lab,
        instructions=HOSTILE,
        opens_at=now - timedelta(hours=1),
        closes_at=now + timedelta(hours=5),
    )
    entry = Entry.objects.create(round=round_, member=lab_entry.member, lab_entry=lab_entry, title=HOSTILE)
    JudgeAssignment.objects.create(round=round_, judge=judge, conflicts_declared_at=now)
    values = {name: round_.pk for name in ("prizes:judge_entry", "prizes:entry_notebook", "prizes:entry_file")}
    # The score form posts to the group round with this entry: refused as not its entry, which the matrix allows.
    values["entry_pk"] = entry.pk
    return values


def _project_world(course, student, student2, ta, judge, now) -> dict:
    from datetime import timedelta

    from django.core.files.base import ContentFile

    from projects.models import Group, GroupMember, Invitation, PaperReview, SlidesVersion

    group = Group.objects.create(
        course=course, name=f"G {HOSTILE}", title=HOSTILE, abstract=HOSTILE, created_by=student.user
    )
    GroupMember.objects.create(group=group, member=student)
    invitation = Invitation.objects.create(group=group, invitee=student2, invited_by=student)
    slides = SlidesVersion(group=group, original_name=f"{HOSTILE}.pdf"[:200], size=10, pages=1, uploaded_by=student)
    slides.file.save("slides.pdf", ContentFile(b"%PDF-1.4 <script>alert(1)</script>"), save=False)
    slides.save()
    review = PaperReview(
        member=student,
        paper_title=HOSTILE,
        paper_authors=HOSTILE,
        paper_link=f"javascript:alert(1)//{ATTRIBUTE}",
        original_name="r.pdf",
        size=10,
    )
    review.file.save("review.pdf", ContentFile(b"%PDF-1.4 <script>alert(1)</script>"), save=False)
    review.save()
    values = {
        name: group.pk
        for name in (
            "projects:invite",
            "projects:leave",
            "projects:proposal",
            "projects:slides_upload",
            "projects:staff_group",
            "projects:staff_add_member",
            "projects:staff_remove_member",
            "projects:staff_extension",
            "projects:staff_presented",
        )
    }
    values.update(
        {
            "projects:invitation_respond": invitation.pk,
            "projects:invitation_cancel": invitation.pk,
            "projects:slides_file": slides.pk,
            "projects:review_file": review.pk,
            "projects:staff_review": review.pk,
            "projects:staff_review_release": review.pk,
            "member_pk": student.pk,
        }
    )
    try:
        from prizes.models import Entry, JudgeAssignment, Prize, Round
    except ImportError:  # the prizes app is optional in a slimmed-down deployment
        return values
    round_ = Round.objects.create(
        course=course,
        title=f"Round {HOSTILE}"[:150],
        instructions=HOSTILE,
        opens_at=now - timedelta(hours=1),
        closes_at=now + timedelta(hours=5),
    )
    entry = Entry.objects.create(round=round_, group=group, title=HOSTILE)
    JudgeAssignment.objects.create(round=round_, judge=judge, conflicts_declared_at=now)
    prize = Prize.objects.create(
        course=course,
        title=f"Prize {HOSTILE}"[:150],
        description=HOSTILE,
        sponsor=HOSTILE,
        category=Prize.Category.ROUND,
        round=round_,
    )
    values.update(
        {
            name: round_.pk
            for name in (
                "prizes:judge_round",
                "prizes:declare_conflicts",
                "prizes:score",
                "prizes:now_presenting",
                "prizes:round_edit",
                "prizes:round_setup",
                "prizes:control",
                "prizes:room",
                "prizes:results",
                "prizes:results_csv",
            )
        }
    )
    values.update({"prizes:prize_edit": prize.pk, "prizes:prize": prize.pk, "entry_pk": entry.pk})
    tool_key, tool_kid = new_key_pair()
    lms_registration = LmsRegistration.objects.create(
        issuer="https://lms.example",
        client_id="c1",
        auth_login_url="https://lms.example/auth",
        auth_token_url="https://lms.example/token",
        key_set_url="https://lms.example/jwks",
        frame_origin="https://lms.example",
        tool_private_key=seal(tool_key),
        tool_kid=tool_kid,
    )
    deployment = LmsDeployment.objects.create(registration=lms_registration, deployment_id="d1", course=course)
    section = Section.objects.create(deployment=deployment, context_id="ctx", title=HOSTILE[:255])
    values.update({"lms:sync_roster": section.pk, "lms:sync_grades": section.pk})
    return values


# ------------------------------------------------------------------------------ the URL configuration


def url_patterns():
    """(qualified name, route, view) of every URL outside the admin, from the live URL configuration."""
    from django.urls import URLPattern, URLResolver, get_resolver

    found = []

    def walk(patterns, prefix, namespace):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                if route.startswith("admin/"):
                    continue
                ns = entry.namespace or namespace
                walk(entry.url_patterns, route, ns)
            elif isinstance(entry, URLPattern):
                name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name or route
                found.append((name, route, entry.callback))

    walk(get_resolver().url_patterns, "", None)
    return found


def fill(route: str, name: str, values: dict) -> str:
    import re

    def one(match):
        param = match.group(1)
        if param == "pk":
            if name not in values:
                pytest.fail(f"the security tests do not know which object {name} names; add it to the world fixture")
            return str(values[name])
        if param not in values:
            pytest.fail(f"the security tests cannot fill <{param}> of {name}; add it to the world fixture")
        return str(values[param])

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", one, route)
