"""How a submission and its evaluation are shown to their owner: over the API and on her pages."""

from django.conf import settings
from django.urls import reverse

from labs import selectors
from labs.charts import audit_chart
from labs.metriclabels import metric_glossary
from labs.models import Submission


def evaluation_json(evaluation, *, private_visible: bool, kind: str) -> dict:
    metrics = evaluation.metrics or {}
    shown = {"public": metrics.get("public", {})}
    if private_visible and "private" in metrics:
        shown["private"] = metrics["private"]
    body = {
        "id": evaluation.pk,
        "status": evaluation.status,
        "attempt": evaluation.attempt,
        "queued_at": evaluation.queued_at.isoformat() if evaluation.queued_at else None,
        "finished_at": evaluation.finished_at.isoformat() if evaluation.finished_at else None,
        "public_score": evaluation.public_score,
        "metrics": shown if evaluation.status == "succeeded" else {},
    }
    # The same words the pages use, so a notebook can print "Bits per character" rather than "bpc".
    body["metric_labels"] = metric_glossary(kind, body["metrics"].get("public", {}))
    if private_visible:
        body["private_score"] = evaluation.private_score
    if evaluation.status in ("succeeded", "failed"):
        # What her submission page shows, bounded and sanitised by the worker.
        body["log_tail"] = evaluation.log_tail
    if evaluation.status == "failed":
        body["error"] = {"code": evaluation.error_code, "message": evaluation.error_message}
    elif evaluation.status == "error":
        body["error"] = {
            "code": "platform_error",
            "message": "The platform could not grade this; it does not count against your quota.",
        }
    return body


def public_only(value):
    """``value`` with every table of the private split taken out, at any depth (metrics, groups, details)."""
    if isinstance(value, dict):
        return {key: public_only(item) for key, item in value.items() if key != "private"}
    if isinstance(value, list):
        return [public_only(item) for item in value]
    return value


def public_result(evaluation) -> dict:
    """Her result.json of a succeeded evaluation: the grader's result as stored, of the public split only.

    The private split decides prizes and stays hidden from her even once its scores are released (they show on the
    pages then): nothing computed from it, and none of the Lab 3 answers kept for the judge, is in the file.
    """
    submission = evaluation.submission
    lab = submission.lab
    return {
        "lab": lab.kind,
        "submission": submission.number,
        "evaluation": evaluation.pk,
        "status": "ok",
        "split": "public",
        "grader_version": evaluation.grader_version,
        "dataset": {"hash": evaluation.dataset_hash},
        "device_class": evaluation.device_class,
        "finished_at": evaluation.finished_at.isoformat() if evaluation.finished_at else None,
        "duration_s": evaluation.duration_s,
        "primary": {"metric": lab.primary_metric, "direction": lab.primary_direction},
        "tiebreak": {"metric": lab.tiebreak_metric, "direction": lab.tiebreak_direction},
        "metrics": {"public": (evaluation.metrics or {}).get("public", {})},
        "metric_labels": metric_glossary(lab.kind, (evaluation.metrics or {}).get("public", {})),
        "groups": public_only(evaluation.groups) if evaluation.groups else None,
        "samples": public_only([s for s in evaluation.samples or [] if s.get("split") == "public"]),
        "details": public_only(evaluation.details or {}),
        "log_tail": evaluation.log_tail,
    }


def submission_page_url(submission: Submission) -> str:
    """The address of the submission's own page, where its owner watches it graded and reads its result."""
    lab = submission.lab
    path = reverse("labs:submission", args=[lab.course.slug, lab.slug, submission.pk])
    return settings.SITE_URL.rstrip("/") + path


def submission_json(submission: Submission, *, detail: bool = False) -> dict:
    lab = submission.lab
    private_visible = lab.private_released_at is not None
    evaluations = sorted(submission.evaluations.all(), key=lambda e: -e.pk)
    body = {
        "id": submission.pk,
        "number": submission.number,
        "lab": lab.slug,
        "sha256": submission.sha256,
        "size": submission.size,
        "received_at": submission.received_at.isoformat(),
        "late": submission.late,
        "is_final": submission.is_final,
        "url": submission_page_url(submission),
        "status": evaluations[0].status if evaluations else "queued",
        "evaluation": evaluation_json(evaluations[0], private_visible=private_visible, kind=lab.kind)
        if evaluations
        else None,
    }
    if detail:
        body["description"] = submission.description
        body["evaluations"] = [evaluation_json(e, private_visible=private_visible, kind=lab.kind) for e in evaluations]
    return body


def result_extras(lab, evaluation) -> dict:
    """What the result partial (labs/_result.html) needs beside the evaluation: the vision lab's reference and chart."""
    if lab.kind != "vision":
        return {}
    reference = selectors.reference_result(lab=lab, label_contains="standard")
    extras = {"reference": reference}
    if evaluation.groups:
        extras["audit_svg"] = audit_chart(evaluation, reference)
    return extras
