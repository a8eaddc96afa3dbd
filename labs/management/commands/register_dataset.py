"""Register a hidden dataset folder (with its manifest.json) and optionally make it a lab's active set."""

import tempfile
from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from grader.dataset import load_manifest, pack_dataset
from grader.errors import GraderFault
from labs.models import EvaluationDataset, Lab


def register_dataset(directory: Path, *, user=None) -> EvaluationDataset:
    try:
        manifest = load_manifest(directory)
    except GraderFault as exc:
        raise CommandError(f"{directory}: {exc.message}")
    existing = EvaluationDataset.objects.filter(manifest_hash=manifest.hash).first()
    if existing:
        return existing
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / f"{manifest.lab}-{manifest.hash[:16]}.tar.gz"
        pack_dataset(directory, archive)
        dataset = EvaluationDataset(
            kind=manifest.lab,
            name=manifest.name,
            manifest_hash=manifest.hash,
            demo_only=manifest.demo_only,
            description=getattr(manifest, "description", "") or "",
            registered_by=user,
        )
        with archive.open("rb") as handle:
            dataset.archive.save(archive.name, File(handle), save=False)
        dataset.save()
    return dataset


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--course", help="course slug, with --lab")
        parser.add_argument("--lab", help="lab slug whose active hidden set this becomes")

    def handle(self, *args, directory, course, lab, **options):
        dataset = register_dataset(directory)
        self.stdout.write(f"registered {dataset}")
        if lab:
            try:
                lab_obj = Lab.objects.get(course__slug=course, slug=lab)
            except Lab.DoesNotExist:
                raise CommandError(f"no lab {lab!r} in course {course!r}")
            if lab_obj.kind != dataset.kind:
                raise CommandError(f"dataset is for {dataset.kind}, lab {lab} is {lab_obj.kind}")
            lab_obj.dataset = dataset
            lab_obj.save(update_fields=["dataset"])
            self.stdout.write(f"{lab_obj} now grades on it")
