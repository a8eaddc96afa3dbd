"""Assembling a lab entry: her submission, her texts and files, each change checked against her entry deadline."""

import hashlib
import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from courses import pdfcheck
from courses.deadlines import Timing, arrival_timing
from courses.models import Deadline, Membership
from labs.entries.filetypes import WHAT, detect
from labs.entries.models import FILE_PARTS, TEXT_PARTS, EntryFile, EntryKit, LabEntry, Part
from labs.entries.notebook import render_notebook
from labs.models import Evaluation, EvaluationStatus, Lab, Submission

logger = logging.getLogger(__name__)

HEAD_BYTES = 4096


def kit_for(lab: Lab) -> EntryKit:
    """The lab's entry kit; a lab without one asks for nothing but a submission and is due with the lab."""
    return EntryKit.objects.filter(lab=lab).select_related("deadline").first() or EntryKit(lab=lab)


def entry_deadline(lab: Lab) -> Deadline:
    kit = kit_for(lab)
    return kit.deadline if kit.deadline_id else lab.deadline


def entry_timing(*, lab: Lab, member: Membership, at) -> Timing:
    """The one deadline rule, applied to her entry deadline (with her extension of it)."""
    return arrival_timing(deadline=entry_deadline(lab), member=member, at=at)


def _open_entry(*, lab: Lab, member: Membership, at) -> LabEntry:
    timing = entry_timing(lab=lab, member=member, at=at)
    if not timing.allowed:
        raise ValidationError(timing.message)
    entry, _ = LabEntry.objects.select_for_update().get_or_create(lab=lab, member=member)
    if timing.late:
        entry.late = True
    return entry


@transaction.atomic
def choose_submission(*, lab: Lab, member: Membership, submission_id: int, at) -> LabEntry:
    submission = Submission.objects.filter(pk=submission_id, lab=lab, member=member).first()
    if submission is None or not submission.evaluations.filter(status=EvaluationStatus.SUCCEEDED).exists():
        raise ValidationError("Pick one of your own submissions to this lab that was graded successfully.")
    entry = _open_entry(lab=lab, member=member, at=at)
    entry.submission = submission
    entry.save()
    return entry


@transaction.atomic
def set_texts(*, lab: Lab, member: Membership, texts: dict[str, str], at, title: str | None = None) -> LabEntry:
    kit = kit_for(lab)
    for part, text in texts.items():
        if part not in TEXT_PARTS:
            raise ValidationError(f"An entry has no text part called {part!r}.")
        if len(text) > kit.max_text_chars:
            raise ValidationError(
                f"The {Part(part).label.lower()} is {len(text)} characters long; at most {kit.max_text_chars} are "
                "accepted."
            )
    entry = _open_entry(lab=lab, member=member, at=at)
    for part, text in texts.items():
        setattr(entry, part, text.strip())
    if title is not None:
        entry.title = title.strip()[:200]
    entry.save()
    return entry


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_upload(*, kit: EntryKit, part: str, path: Path, size: int) -> str:
    if part not in FILE_PARTS:
        raise ValidationError(f"An entry has no file part called {part!r}.")
    label = Part(part).label
    if part not in kit.parts:
        raise ValidationError(f"This lab's entry does not ask for the {label.lower()}.")
    limit = kit.max_bytes(part)
    if size > limit:
        raise ValidationError(f"The {label.lower()} is {size / 2**20:.1f} MB; at most {limit / 2**20:.0f} MB.")
    with open(path, "rb") as handle:
        kind = detect(part, handle.read(HEAD_BYTES))
    allowed = kit.types(part)
    if kind is None or (allowed and kind not in allowed):
        accepted = f" ({', '.join(allowed)})" if allowed else ""
        raise ValidationError(
            f"That file is not {WHAT[part]}{accepted}; its contents say otherwise. Upload the right file."
        )
    if part == Part.REPORT:
        # Judges and sponsors open it: the one PDF rule of the platform (parsed in a limited child).
        problem = pdfcheck.refusal(pdfcheck.check_pdf(path))
        if problem:
            raise ValidationError(problem)
    return kind


def attach_file(*, lab: Lab, member: Membership, part: str, upload, at, actor=None) -> EntryFile:
    """Check her file (size, real type; a notebook is validated, masked and rendered) and make it the entry's part.

    The work happens before the transaction; a refusal leaves her entry and storage as they were.
    """
    timing = entry_timing(lab=lab, member=member, at=at)
    if not timing.allowed:
        raise ValidationError(timing.message)
    kit = kit_for(lab)
    work = Path(tempfile.mkdtemp(prefix="entry-"))
    stored: list[str] = []
    try:
        source = work / "upload"
        with open(source, "wb") as target:
            for chunk in upload.chunks():
                target.write(chunk)
        extension = _check_upload(kit=kit, part=part, path=source, size=source.stat().st_size)
        keep, findings, rendered, render = source, [], None, None
        if part == Part.NOTEBOOK:
            out = work / "out"
            out.mkdir()
            render = render_notebook(source, out, max_bytes=kit.max_bytes(part))
            if not render.ok:
                raise ValidationError(render.error)
            # Only the masked copy is kept: nobody downloads a key she pasted into her notebook.
            keep, findings, rendered = out / "masked.ipynb", render.findings, out / "rendered.html"
        prefix = f"entries/{lab.course.slug}/{lab.slug}/{uuid.uuid4().hex}"
        with open(keep, "rb") as handle:
            stored.append(default_storage.save(f"{prefix}/{part}.{extension}", File(handle)))
        if rendered is not None:
            with open(rendered, "rb") as handle:
                stored.append(default_storage.save(f"{prefix}/rendered.html", File(handle)))
        with transaction.atomic():
            entry = _open_entry(lab=lab, member=member, at=at)
            entry.save()
            old = EntryFile.objects.filter(entry=entry, part=part).first()
            if old is not None:
                old.delete()
                stale = [key for key in (old.key, old.rendered_key) if key]
                transaction.on_commit(lambda: [default_storage.delete(key) for key in stale])
            item = EntryFile.objects.create(
                entry=entry,
                part=part,
                key=stored[0],
                rendered_key=stored[1] if len(stored) > 1 else "",
                name=str(getattr(upload, "name", "") or part)[:200],
                extension=extension,
                size=keep.stat().st_size,
                sha256=_sha256(keep),
                findings=findings,
                last_cell=render.last_cell if render else None,
                reported_loglikelihood=render.reported if render else None,
                uploaded_by=actor,
            )
        stored = []
        return item
    finally:
        for key in stored:  # refused or failed after storing: leave nothing behind
            default_storage.delete(key)
        shutil.rmtree(work, ignore_errors=True)


@transaction.atomic
def confirm_findings(*, lab: Lab, member: Membership, at) -> int:
    """She confirms the keys found in her notebook are revoked; the entry counts from then on."""
    entry = _open_entry(lab=lab, member=member, at=at)
    return entry.files.filter(part=Part.NOTEBOOK, findings_confirmed_at__isnull=True).update(
        findings_confirmed_at=timezone.now()
    )


@dataclass(frozen=True)
class Completeness:
    missing: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def completeness(entry: LabEntry | None, kit: EntryKit) -> Completeness:
    """What her entry still lacks before it counts (empty: complete)."""
    if entry is None:
        return Completeness(["a graded submission", *(Part(p).label.lower() for p in kit.parts)])
    missing = [] if entry.submission_id else ["a graded submission"]
    files = {item.part: item for item in entry.files.all()}
    for part in kit.parts:
        if part in TEXT_PARTS:
            if not getattr(entry, part):
                missing.append(Part(part).label.lower())
        elif part not in files:
            missing.append(Part(part).label.lower())
    notebook = files.get(Part.NOTEBOOK)
    if notebook is not None and entry.lab.kind == "llm" and notebook.reported_loglikelihood is None:
        # The course's rule: an entry without the result of the notebook's last cell is disqualified.
        missing.append("the output of the notebook's last cell (its Yoda test loglikelihood)")
    if notebook is not None and notebook.awaiting_confirmation:
        missing.append("confirmation that the keys found in the notebook are revoked")
    return Completeness(missing)


# Her notebook's number and the platform's are the same statistic on the same public text; a larger gap than this
# (beyond device and precision) is worth a judge's question.
LOGLIKELIHOOD_TOLERANCE = 0.05


@dataclass(frozen=True)
class LoglikelihoodCheck:
    reported: float | None  # what her notebook's last cell printed
    computed: float | None  # what the platform computed under her adapter
    device: str
    dtype: str

    @property
    def difference(self) -> float | None:
        if self.reported is None or self.computed is None:
            return None
        return abs(self.reported - self.computed)

    @property
    def flagged(self) -> bool:
        return self.difference is not None and self.difference > LOGLIKELIHOOD_TOLERANCE


def entered_evaluation(entry: LabEntry) -> Evaluation | None:
    """The result of her entered submission: its newest succeeded evaluation (None without a submission)."""
    if entry.submission_id is None:
        return None
    return (
        entry.submission.evaluations.filter(status=EvaluationStatus.SUCCEEDED).order_by("-finished_at", "-pk").first()
    )


def ranked_scores(*, lab: Lab, entries: list[LabEntry], split: str, include_late: bool) -> dict[int, float | None]:
    """Each entry's primary score on ``split`` as the leaderboard counts it (``labs.ranking``), by entry id.

    The entered submission, not the board's pick of her submissions, is scored: the entry is her choice of the model
    whose write-up the judges read, so its metric describes that model (the board's rule 4 picks among her
    submissions; an entry has already picked). Every other rule of the board applies: its result is the newest
    evaluation finished by the freeze, on the lab's base model, of the ranked device class; late work counts only
    when ``include_late``. An entry whose submission has no such result has no score (None).
    """
    from labs import ranking

    counted = ranking.counted_results(
        lab=lab, submission_ids=[e.submission_id for e in entries if e.submission_id], include_late=include_late
    )
    field = "private_score" if split == "private" else "public_score"
    scores = dict(Evaluation.objects.filter(pk__in=counted.values()).values_list("pk", field))
    return {entry.pk: scores.get(counted.get(entry.submission_id)) for entry in entries}


def loglikelihood_check(entry: LabEntry, notebook: EntryFile | None) -> LoglikelihoodCheck | None:
    """Lab 3: her notebook's "Yoda test loglikelihood" beside the one computed on her entered submission."""
    if entry.lab.kind != "llm" or entry.submission_id is None:
        return None
    evaluation = entered_evaluation(entry)
    computed = ((evaluation.metrics or {}).get("public") or {}).get("test_loglikelihood") if evaluation else None
    about = ((evaluation.details or {}).get("test_loglikelihood") or {}) if evaluation else {}
    return LoglikelihoodCheck(
        reported=notebook.reported_loglikelihood if notebook is not None else None,
        computed=float(computed) if isinstance(computed, (int, float)) else None,
        device=str(about.get("device") or ""),
        dtype=str(about.get("dtype") or ""),
    )
