"""Fixtures shared by the whole suite: temporary storage, a course with deadlines and one member per role."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from courses.models import Course, Deadline, Membership, Role

# The real Docker Engine the Docker sandbox's tests run against (started once per session, when needed), and an
# S3-compatible server on loopback for private storage in a bucket.
pytest_plugins = ["tests.docker_engine", "tests.object_storage"]

User = get_user_model()
PASSWORD = "correct horse battery staple"


def make_member(course, email, role=Role.STUDENT, *, registered=True, display_name=""):
    user = User.objects.filter(email=email).first()
    if user is None:
        first, _, last = email.split("@")[0].partition(".")
        user = User.objects.create_user(
            username=email, email=email, password=PASSWORD, first_name=first.title(), last_name=last.title()
        )
    return Membership.objects.create(
        user=user,
        course=course,
        role=role,
        registered_for_credit=registered,
        display_name=display_name or email.split("@")[0],
    )


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _temporary_var(settings, tmp_path_factory):
    """Every test writes into a fresh temporary var/, never into the repository's: that one holds the demo's
    uploads, datasets and worker cache, which a test run must neither fill nor read by accident. VAR_DIR moves with
    it, so a real worker started by a test (tests/e2e) reads the same private storage."""
    var = tmp_path_factory.mktemp("var")
    private = var / "private"
    settings.VAR_DIR = var
    settings.MEDIA_ROOT = private
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(private), "base_url": None},
        },
    }
    settings.WORKER_CACHE_DIR = var / "worker-cache"
    settings.DATASETS_DIR = var / "datasets"


@pytest.fixture
def course(db):
    course = Course.objects.create(name="Intro to Deep Learning", slug="dl", term="January 2025")
    now = timezone.now()
    Deadline.objects.create(course=course, key="lab1", title="Lab 1: Music Generation", due_at=now + timedelta(days=3))
    return course


@pytest.fixture
def other_course(db):
    return Course.objects.create(name="Another course", slug="other", term="Spring")


@pytest.fixture
def student(course):
    return make_member(course, "ada.lovelace@example.edu")


@pytest.fixture
def student2(course):
    return make_member(course, "alan.turing@example.edu")


@pytest.fixture
def ta(course):
    return make_member(course, "grace.hopper@example.edu", Role.TA, registered=False)


@pytest.fixture
def judge(course):
    return make_member(course, "sponsor.judge@example.com", Role.JUDGE, registered=False)


@pytest.fixture
def instructor(course):
    return make_member(course, "alexander.amini@example.edu", Role.INSTRUCTOR, registered=False)


@pytest.fixture
def outsider(other_course):
    return make_member(other_course, "eve.outsider@example.edu")


@pytest.fixture
def other_ta(other_course):
    """A TA of another course: staff there, nobody here."""
    return make_member(other_course, "mallory.ta@example.edu", Role.TA, registered=False)


@pytest.fixture
def login(client):
    def do(member_or_user):
        user = getattr(member_or_user, "user", member_or_user)
        client.force_login(user)
        return client

    return do


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)
