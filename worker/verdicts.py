"""What a box's run means: succeeded, failed (the student's fault) or error (the platform's), and whether to retry.

The box's output is untrusted: its result is read through the sandbox's reader, validated against the schema and
against the ranges the lab declares; its words are never echoed into a message without cause, and whose fault a run
out of time or memory is follows the lab's bounds and the node's health.
"""

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from grader.errors import EXIT_OK, EXIT_REJECTED, HIDDEN_DATA_REASONS, REJECTION_CODES
from grader.labs.llm import FLUENCY_GATES_KEY
from grader.registry import get_lab, out_of_range
from grader.result import parse_result
from labs import lifecycle
from labs.models import Evaluation, EvaluationStatus, Lab
from worker.health import node_health
from worker.sandbox import Outcome
from worker.sandbox.output import UntrustedFileError, read_capped

log = logging.getLogger(__name__)

# Where the job lives inside the box; host paths in its logs are shown as this.
JOB = "/job"
RESULT_MAX_BYTES = 2 * 1024 * 1024
# What the worker takes out of a box's output; anything else the box left there is deleted with it.
OUTPUT_FILES = ("result.json", "judge_answers.json")
STUDENT_LOG_BYTES = 4000
STAFF_LOG_BYTES = 60_000


@dataclass
class Verdict:
    status: str
    fields: dict
    retry: bool = False


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def sanitise(text: str, limit: int, *, job_dir: Path | None = None) -> str:
    if job_dir is not None:
        text = text.replace(str(job_dir), JOB)
    text = _CONTROL.sub("", text)
    return text[-limit:]


# The keys of the summary line the grader prints last on stdout (grader/cli.py: her status and public numbers).
SUMMARY_KEYS = frozenset({"status", "result", "public", "error"})


def _public_summary(line: str, declared: set[str]) -> dict | None:
    """The grader's summary line of a successful run, rebuilt from its numbers; None for any other line.

    Its metric names must be among ``declared`` (those of the validated result's public table), so that not even a
    key can carry text of the box's choosing.
    """
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("status") != "ok" or not set(data) <= SUMMARY_KEYS:
        return None
    public = data.get("public")
    if not isinstance(public, dict) or not all(
        key in declared
        and (
            value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
        )
        for key, value in public.items()
    ):
        return None
    return {"status": "ok", "public": public}


def _measured(outcome: Outcome, result: dict, done: str) -> list[str]:
    """What the worker measured of a run and the grader's version, device and timings (numbers only)."""
    timings = result.get("timings") or {}

    def seconds(key: str) -> str:
        value = timings.get(key)
        return "n/a" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.2f} s"

    return [
        f"{done} in {outcome.duration_s:.1f} s in the sandbox (exit code {outcome.exit_code}).",
        f"Grader {str(result.get('grader_version', ''))[:40]} on {str(result.get('device_class', ''))[:120]}: "
        f"artifact checked in {seconds('check_s')}, evaluated in {seconds('evaluate_s')}, "
        f"{seconds('total_s')} in all.",
    ]


def _output_lines(outcome: Outcome) -> list[str]:
    return [
        line
        for line in (outcome.stdout_tail + "\n" + outcome.stderr_tail).splitlines()
        if line.strip() and line.strip() != "ready"
    ]


def _not_shown(count: int) -> list[str]:
    if not count:
        return []
    return [
        f"Not shown: {count} line{'s' if count != 1 else ''} of the grader's output, kept for the staff only "
        "(diagnostics may quote the hidden data)."
    ]


def student_log(outcome: Outcome, result: dict) -> str:
    """The log of a successful run that its student sees: what the worker measured and the grader's summary.

    Only lines the worker can vouch for reach her. The box's other output (the grader's diagnostics, warnings of
    the libraries it calls) is read while the hidden data is loaded, and any line of it might quote a hidden tune,
    image name or answer: it stays in the staff's log, and she is told how much of it there is.
    """
    lines = _measured(outcome, result, "Graded")
    other = 0
    for line in _output_lines(outcome):
        summary = _public_summary(line, set((result.get("metrics") or {}).get("public") or {}))
        if summary is None:
            other += 1
        else:
            lines.append("Summary: " + json.dumps(summary, sort_keys=True, allow_nan=False))
    return sanitise("\n".join(lines + _not_shown(other)), STUDENT_LOG_BYTES)


def failed_log(outcome: Outcome, result: dict, code: str) -> str:
    """The log of a run that failed by her fault, as she sees it: what the worker measured and the grader's code.

    The box's stdout and stderr are never shown to her: the grader writes them with the hidden data open (a
    traceback's lines, a library's warning or an exception's message may quote it), and no lab runs code of hers in
    the box, so no line of it is hers to read. They stay in the staff's log; she is told how many lines there are.
    """
    lines = _measured(outcome, result, "Refused")
    lines.append(f"Reason: {code} (the message above says what to change).")
    return sanitise("\n".join(lines + _not_shown(len(_output_lines(outcome)))), STUDENT_LOG_BYTES)


# A message of the box is not shown to the student when any run of this many characters of it is in a hidden file.
QUOTE_WINDOW = 16
HIDDEN_TEXT_MAX_BYTES = 32 * 1024 * 1024


def hidden_texts(data_dir: Path) -> list[str]:
    """The text of the dataset's hidden split files (those its manifest's splits name), as far as it is text."""
    from grader.dataset import load_manifest

    manifest = load_manifest(data_dir, verify=False)
    names: set[str] = set()

    def collect(value) -> None:
        if isinstance(value, str) and value in manifest.files:
            names.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect(manifest.splits)
    texts, budget = [], HIDDEN_TEXT_MAX_BYTES
    for name in sorted(names):
        raw = manifest.file(name).read_bytes()[:budget]
        budget -= len(raw)
        texts.append(raw.decode("utf-8", "replace"))
        if budget <= 0:
            break
    return texts


def quotes_hidden(text: str, data_dir: Path | None) -> bool:
    """Whether ``text`` quotes the hidden splits of the dataset in ``data_dir`` (QUOTE_WINDOW characters of them)."""
    if data_dir is None or len(text) < QUOTE_WINDOW:
        return False
    corpus = hidden_texts(data_dir)
    windows = {text[i : i + QUOTE_WINDOW] for i in range(len(text) - QUOTE_WINDOW + 1)}
    return any(window.strip() and window in hidden for window in windows for hidden in corpus)


def rejection_fields(error: dict, staff_log: str, *, job_dir: Path, data_dir: Path | None) -> dict:
    """What a rejection shows her: the grader's declared code and its message, or fixed words in its place.

    A rejection raised while her model ran on the hidden data is told in the grader's fixed words for its code; the
    message of any other is shown unless it quotes a hidden file. The staff's log keeps the message as written.
    """
    code = str(error.get("code"))
    written = str(error.get("message") or "")
    message = sanitise(written, 2000, job_dir=job_dir).strip()
    if code in HIDDEN_DATA_REASONS:
        message = HIDDEN_DATA_REASONS[code]
    elif not message or quotes_hidden(message, data_dir):
        message = f"The grader rejected your files ({code}); the staff have its full message."
    return {
        "error_code": code,
        "error_message": message,
        "staff_log": sanitise(f"{staff_log}\n--- the grader's message ---\n{written[:4000]}", STAFF_LOG_BYTES),
    }


def read_judge_inputs(out_dir: Path) -> dict | None:
    """The generated answers the LLM judge scores later (Lab 3); untrusted, size-capped, strings only."""
    try:
        data = json.loads(read_capped(out_dir, "judge_answers.json", RESULT_MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    inputs: dict = {
        split: [str(a)[:4000] for a in answers[:200]]
        for split, answers in data.items()
        if split in ("public", "private") and isinstance(answers, list)
    }
    gates = data.get(FLUENCY_GATES_KEY)
    if isinstance(gates, dict):
        # Numbers in [0, 1], one per kept answer, or none: the judge then measures the answers itself.
        kept = {
            split: [min(1.0, max(0.0, float(g))) for g in values]
            for split, values in gates.items()
            if split in inputs
            and isinstance(values, list)
            and len(values) == len(inputs[split])
            and all(isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) for g in values)
        }
        if kept:
            inputs[FLUENCY_GATES_KEY] = kept
    return inputs


def resource_verdict(lab: Lab, evaluation: Evaluation, base: dict, *, kind: str) -> Verdict:
    """A run past the lab's time or memory: whose fault it is, and whether it counts against her quota.

    Within the lab's bounds a healthy node always has enough, so running out means the lab's limits are wrong: an
    error, the staff told, one confirming retry, never charged. Where no bound fixes the cost (an ONNX graph), a run
    out of time or memory confirmed on a second, fresh box of a healthy node is hers, and counts.
    """
    limit = f"time limit of {lab.time_limit_s} s" if kind == "timeout" else f"memory limit of {lab.memory_limit_mb} MB"
    names = {item["name"] for item in evaluation.submission.files}
    if get_lab(lab.kind).cost_is_bounded(names):
        log.error("evaluation %s: an artifact within lab %s's bounds ran out of its %s", evaluation.pk, lab.slug, limit)
        from labs.notifications import lab_limits_exceeded

        lab_limits_exceeded(evaluation, kind=kind)
        return Verdict(
            EvaluationStatus.ERROR,
            {
                **base,
                "error_code": kind,
                "error_message": (
                    f"The evaluation ran past the lab's {limit}. Your files are within the lab's bounds, so this is "
                    "the platform's fault: it does not count against your submissions, and the staff have been told."
                ),
            },
            retry=evaluation.attempt < 2,
        )
    confirmed = evaluation.attempt >= 2 and evaluation.error_code == kind
    health = node_health()
    if confirmed and health.healthy:
        return Verdict(
            EvaluationStatus.FAILED,
            {
                **base,
                "error_code": "time_limit" if kind == "timeout" else "memory_limit",
                "error_message": (
                    f"Your model exceeded the lab's {limit}, on two fresh runs. Make it smaller or faster and submit "
                    "again; this submission counts towards today's limit."
                ),
                "log_tail": "",
            },
        )
    if confirmed:
        log.warning("evaluation %s: confirmed %s on an unhealthy node: %s", evaluation.pk, kind, health.reason)
    return Verdict(
        EvaluationStatus.ERROR,
        {
            **base,
            "error_code": kind,
            "error_message": f"The evaluation ran past the lab's {limit}; it runs once more in a fresh sandbox.",
        },
        retry=True,
    )


def base_model_sha256(result: dict) -> str:
    """The config hash of the base model a result says it was graded on ("" for labs without one)."""
    base = (result.get("details") or {}).get("base_model")
    digest = base.get("config_sha256") if isinstance(base, dict) else None
    return digest[:64] if isinstance(digest, str) else ""


def classify_outcome(
    lab: Lab, evaluation: Evaluation, outcome: Outcome, out_dir: Path, job_dir: Path, *, data_dir: Path | None = None
) -> Verdict:
    """Classify per the design: succeeded, failed (the student's fault) or error (the platform's, retried).

    ``data_dir``: the hidden dataset the box was given, against which a rejection's message is screened.
    """
    refused = {
        name: reason
        for report in (outcome.details.get("output") or {}).values()
        if isinstance(report, dict)
        for name, reason in report.get("refused", {}).items()
    }
    not_taken = "".join(
        f"\nnot taken out of the box: {name}: {reason}" for name, reason in sorted(refused.items())[:20]
    )
    staff_log = sanitise(
        f"exit={outcome.exit_code} timed_out={outcome.timed_out} oom={outcome.oom_killed} "
        f"duration={outcome.duration_s:.1f}s{not_taken}\n--- stdout ---\n{outcome.stdout_tail}\n"
        f"--- stderr ---\n{outcome.stderr_tail}",
        STAFF_LOG_BYTES,
        job_dir=job_dir,
    )
    base = {"staff_log": staff_log, "duration_s": round(outcome.duration_s, 3)}
    if outcome.timed_out:
        return resource_verdict(lab, evaluation, base, kind="timeout")
    if outcome.oom_killed:
        return resource_verdict(lab, evaluation, base, kind="out_of_memory")
    try:
        result = parse_result(read_capped(out_dir, "result.json", RESULT_MAX_BYTES))
        if result["lab"] != lab.kind:
            raise ValueError(f"result is for lab {result['lab']!r}, not {lab.kind!r}")
        if result["dataset"]["hash"] != lab.dataset.manifest_hash:
            raise ValueError("result names another dataset")
        graded_on = base_model_sha256(result)
        if lab.base_model_id and result["status"] == "ok" and graded_on != lab.base_model.config_sha256:
            raise ValueError("result names another base model than the lab's")
        rejection = result.get("error") or {}
        if result["status"] == "rejected" and rejection.get("code") not in REJECTION_CODES:
            raise ValueError(
                f"a rejection under a code the grader does not declare: {str(rejection.get('code'))[:64]!r}; "
                f"its message: {str(rejection.get('message'))[:2000]!r}"
            )
    except FileNotFoundError:
        return Verdict(
            EvaluationStatus.ERROR,
            {**base, "error_code": "no_result", "error_message": "The grader wrote no result."},
            retry=True,
        )
    except (UntrustedFileError, ValueError, KeyError, TypeError, OSError) as exc:
        # What the box wrote is never echoed back: the reason is a fixed kind, the details go to the staff log.
        log.warning("evaluation %s: result refused: %s", evaluation.pk, str(exc)[:300])
        return Verdict(
            EvaluationStatus.ERROR,
            {
                **base,
                "staff_log": sanitise(f"{staff_log}\n--- result refused ---\n{str(exc)[:2400]}", STAFF_LOG_BYTES),
                "error_code": "bad_result",
                "error_message": "The grader's result was refused (the staff have the details).",
            },
            retry=True,
        )
    common = {
        **base,
        "grader_version": result["grader_version"][:40],
        "dataset_hash": result["dataset"]["hash"],
        "device_class": str(result.get("device_class", ""))[:120],
        "base_model_sha256": graded_on,
    }
    if outcome.exit_code == EXIT_OK and result["status"] == "ok":
        metrics = result["metrics"]
        problems = out_of_range(lab.kind, metrics, result.get("groups"))
        if problems:
            # A value outside what the lab declares is the grader's fault (or a box lying): never a leaderboard entry.
            log.error("evaluation %s: metrics out of range: %s", evaluation.pk, problems[:5])
            return Verdict(
                EvaluationStatus.ERROR,
                {
                    **base,
                    "staff_log": sanitise(
                        f"{staff_log}\n--- metrics refused ---\n" + "\n".join(problems[:20]), STAFF_LOG_BYTES
                    ),
                    "error_code": "bad_metrics",
                    "error_message": "The grader reported metrics outside their declared ranges (the staff have the details).",
                },
                retry=True,
            )

        return Verdict(
            EvaluationStatus.SUCCEEDED,
            {
                **common,
                "judge_inputs": read_judge_inputs(out_dir),
                "metrics": metrics,
                "groups": result.get("groups"),
                "details": result.get("details") or {},
                "samples": [s for s in result.get("samples", []) if s.get("split") == "public"],
                **lifecycle.score_columns(lab, metrics),
                "error_code": "",
                "error_message": "",
                "log_tail": student_log(outcome, result),
            },
        )
    if outcome.exit_code == EXIT_REJECTED and result["status"] == "rejected":
        fields = rejection_fields(result["error"], staff_log, job_dir=job_dir, data_dir=data_dir)
        return Verdict(
            EvaluationStatus.FAILED,
            {**common, **fields, "log_tail": failed_log(outcome, result, fields["error_code"])},
        )
    error = result.get("error") or {}
    return Verdict(
        EvaluationStatus.ERROR,
        {
            **common,
            "error_code": "grader_fault",
            "error_message": str(error.get("message", "The grader failed."))[:2000],
        },
        retry=True,
    )
