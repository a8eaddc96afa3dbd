"""The demo course: people, deadlines (one extended), the three labs on their demo hidden sets."""

import json
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from courses.models import Course, Deadline, Membership, Role
from grader.registry import get_lab
from labs.models import Lab

User = get_user_model()
PASSWORD = "demo-password-2025"
COURSE_SLUG = "intro-dl"

PEOPLE = [
    # email, name, role, registered for credit, display name
    ("instructor@demo.edu", "Alex Amini", Role.INSTRUCTOR, False, "Instructor"),
    ("ta@demo.edu", "Sadhana Lolla", Role.TA, False, "TA"),
    ("ada@demo.edu", "Ada Lovelace", Role.STUDENT, True, "enchantress"),
    ("alan@demo.edu", "Alan Turing", Role.STUDENT, True, "bombe"),
    ("grace@demo.edu", "Grace Hopper", Role.STUDENT, True, "nanosecond"),
    ("kurt@demo.edu", "Kurt Goedel", Role.STUDENT, False, "incomplete"),
    ("emmy@demo.edu", "Emmy Noether", Role.STUDENT, True, "symmetry"),
    ("late@demo.edu", "Lee Late", Role.STUDENT, True, "last-minute"),
    ("judge1@demo.com", "Jordan Judge", Role.JUDGE, False, "Judge Jordan"),
    ("judge2@demo.com", "Sam Sponsor", Role.JUDGE, False, "Judge Sam"),
]

LABS = [
    # slug, kind, number, title, options, seconds (metrics and their directions: the grader's lab class)
    (
        "lab1-music",
        "music",
        1,
        "Music Generation",
        {"songs": "3", "song_length": "400"},
        20,
    ),
    (
        "lab2-vision",
        "vision",
        2,
        "Computer Vision: Debiasing Facial Detection",
        {},
        30,
    ),
    (
        "lab3-llm",
        "llm",
        3,
        "Large Language Models: Fine-tuning to a Style",
        {},
        60,
    ),
]


@dataclass
class Seeded:
    course: Course
    created: bool


def _at_local(course: Course, day: datetime, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day.date(), time(hour, minute), tzinfo=course.tz)


def next_weekday(after: datetime, weekday: int) -> datetime:
    days = (weekday - after.weekday()) % 7 or 7
    return after + timedelta(days=days)


@transaction.atomic
def seed_course() -> Seeded:
    """Create the demo course once; a second run finds it and changes nothing."""
    existing = Course.objects.filter(slug=COURSE_SLUG).first()
    if existing:
        return Seeded(existing, False)
    course = Course.objects.create(
        name="Introduction to Deep Learning", slug=COURSE_SLUG, term="Demo term", join_code=Course.new_join_code()
    )
    for email, name, role, registered, display in PEOPLE:
        first, _, last = name.partition(" ")
        user = User.objects.filter(email=email).first() or User.objects.create_user(
            username=email, email=email, password=PASSWORD, first_name=first, last_name=last
        )
        Membership.objects.create(
            user=user, course=course, role=role, registered_for_credit=registered, display_name=display
        )
    now = timezone.now().astimezone(course.tz)
    # Lab deadlines at 1:00 am ET on the coming days; Lab 1 was extended for everyone.
    for index, (slug, *_rest) in enumerate(LABS):
        due = _at_local(course, now + timedelta(days=2 + index), 1)
        Deadline.objects.create(
            course=course,
            key=slug,
            title=f"Lab {index + 1}",
            due_at=due,
            extended_until=due + timedelta(days=1) if index == 0 else None,
        )
    return Seeded(course, True)


def create_labs(course: Course, datasets: dict) -> list[Lab]:
    labs = []
    for slug, kind, number, title, options, seconds in LABS:
        declared = get_lab(kind)
        lab, _ = Lab.objects.get_or_create(
            course=course,
            slug=slug,
            defaults=dict(
                kind=kind,
                number=number,
                title=title,
                deadline=course.deadlines.get(key=slug),
                primary_metric=declared.primary_metric,
                primary_direction=declared.primary_direction,
                tiebreak_metric=declared.tiebreak_metric,
                tiebreak_direction=declared.tiebreak_direction,
                evaluator_options=options,
                expected_seconds=seconds,
                daily_quota=10,
                max_in_flight=4,
                dataset=datasets.get(kind),
            ),
        )
        if lab.dataset is None and datasets.get(kind):
            lab.dataset = datasets[kind]
            lab.save(update_fields=["dataset"])
        labs.append(lab)
    return labs


def use_base_model(lab: Lab, base_dir: Path, *, actor) -> bool:
    """Register the tiny base model in ``base_dir`` with Lab 3, as staff register the edition's base model (its
    config.json uploaded; the folder named under BASE_MODELS_DIR). True when the lab's base changed."""
    from grader.labs.llm.adapter import BASE_NAME_FILE
    from grader.labs.llm.modules import config_sha256
    from labs.basemodels import register_base_model

    raw = (base_dir / "config.json").read_bytes()
    if lab.base_model_id and lab.base_model.config_sha256 == config_sha256(raw):
        return False
    name = json.loads((base_dir / BASE_NAME_FILE).read_text())["name"]
    folder = base_dir.name if base_dir.parent == Path(settings.BASE_MODELS_DIR) else str(base_dir)
    register_base_model(lab=lab, actor=actor, name=name, folder=folder, config_bytes=raw)
    return True


def member(course: Course, email: str) -> Membership:
    return Membership.objects.select_related("user").get(course=course, user__email=email)


def reference_dir(root: Path, kind: str, variant: str, family: str | None = None) -> Path:
    """Where a reference model is kept; Lab 3's are per base model family (the default family's keep their place)."""
    from grader.labs.llm.base import DEFAULT_FAMILY

    folder = kind if kind != "llm" or family in (None, DEFAULT_FAMILY) else f"{kind}-{family}"
    return root / folder / variant
