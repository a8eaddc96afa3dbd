"""The optional LLM judge of Lab 3's style score, called after the sandbox returned (the sandbox has no network)."""

import logging
import os
import statistics

from django.db import transaction

from grader.labs.llm import FLUENCY_GATES_KEY
from grader.labs.llm.judge import JudgeError, judge_style
from labs import lifecycle
from labs.models import Evaluation, EvaluationStatus

log = logging.getLogger(__name__)


class LlmJudgeUnavailable(RuntimeError):
    """The judge endpoint failed after its retries; the task retries later, the GPU work is never redone."""


def score_style_with_llm(evaluation_id: int) -> str:
    evaluation = Evaluation.objects.select_related("submission__lab").get(pk=evaluation_id)
    lab = evaluation.submission.lab
    options = lab.evaluator_options or {}
    if evaluation.status != EvaluationStatus.SUCCEEDED or not options.get("judge_url") or not evaluation.judge_inputs:
        return "nothing-to-judge"
    scores: dict[str, list[float]] = {}
    gates = evaluation.judge_inputs.get(FLUENCY_GATES_KEY) or {}
    try:
        for split in ("public", "private"):
            answers = evaluation.judge_inputs.get(split)
            if answers is None:
                continue
            scores[split] = judge_style(
                answers,
                gates=gates.get(split),
                base_url=options["judge_url"],
                api_key=os.environ.get(options.get("judge_key_env", "LLM_JUDGE_API_KEY"), ""),
                model=options.get("judge_model", "judge"),
                timeout=float(options.get("judge_timeout", 30)),
                max_retries=int(options.get("judge_retries", 3)),
            )
    except JudgeError as exc:
        raise LlmJudgeUnavailable(str(exc)) from exc
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().get(pk=evaluation_id)
        metrics = evaluation.metrics or {}
        for split, values in scores.items():
            if values:
                metrics.setdefault(split, {})["style_score"] = round(statistics.fmean(values), 4)
        details = evaluation.details or {}
        details["style_judge"] = "llm"
        details["style_scores"] = {"public": scores.get("public", [])}
        evaluation.metrics, evaluation.details = metrics, details
        columns = lifecycle.score_columns(lab, metrics)
        for name, value in columns.items():
            setattr(evaluation, name, value)
        evaluation.save(update_fields=["metrics", "details", *columns])
    return "judged"
