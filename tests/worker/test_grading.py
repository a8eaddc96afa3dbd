"""Grading an evaluation in the real bubblewrap sandbox, and what the worker does with what comes back."""

import json
import uuid

import pytest
from django.core import mail

from labs import lifecycle
from labs.models import Evaluation
from tests.factories import save_lstm, submit_folder
from worker import grading, verdicts
from worker.sandbox import Outcome


@pytest.fixture
def submission(graded_lab, student, tmp_path):
    return submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))


def test_reference_like_artifact_is_graded_in_the_sandbox_and_stored(submission, settings, tmp_path):
    settings.WORKER_CACHE_DIR = tmp_path / "cache"
    evaluation = submission.evaluations.get()
    assert grading.grade(evaluation.pk) == "succeeded"
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded"
    assert evaluation.attempt == 1
    assert evaluation.public_score > 0 and evaluation.private_score > 0
    assert set(evaluation.metrics) == {"public", "private"}
    assert evaluation.dataset_hash == submission.lab.dataset.manifest_hash
    assert all(sample["split"] == "public" for sample in evaluation.samples)
    assert evaluation.claim_token is not None and evaluation.lease_expires_at is None
    assert mail.outbox and "succeeded" in mail.outbox[0].subject


def test_a_second_delivery_of_the_same_message_does_not_grade_again(submission, settings, tmp_path):
    settings.WORKER_CACHE_DIR = tmp_path / "cache"
    evaluation = submission.evaluations.get()
    assert grading.grade(evaluation.pk) == "succeeded"
    first = Evaluation.objects.get(pk=evaluation.pk)
    assert grading.grade(evaluation.pk) == "not-claimed"
    again = Evaluation.objects.get(pk=evaluation.pk)
    assert (again.finished_at, again.attempt, again.public_score) == (
        first.finished_at,
        first.attempt,
        first.public_score,
    )


def test_nan_weights_end_failed_with_the_students_message(graded_lab, student, tmp_path, settings):
    settings.WORKER_CACHE_DIR = tmp_path / "cache"

    def poison(state):
        state["fc.bias"][0] = float("nan")

    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "nan", mutate=poison))
    evaluation = submission.evaluations.get()
    assert grading.grade(evaluation.pk) == "failed"
    evaluation.refresh_from_db()
    assert evaluation.error_code == "non_finite_weights"
    assert "fc.bias" in evaluation.error_message
    assert evaluation.public_score is None


def test_only_the_current_claim_token_may_write(submission):
    evaluation = submission.evaluations.get()
    token = lifecycle.claim(evaluation.pk, worker="test")
    assert token is not None
    assert lifecycle.claim(evaluation.pk, worker="test") is None
    assert not lifecycle.finish(evaluation.pk, uuid.uuid4(), "succeeded", public_score=0.0)
    assert lifecycle.finish(evaluation.pk, token, "failed", error_code="x")
    assert Evaluation.objects.get(pk=evaluation.pk).status == "failed"


def _outcome(exit_code=0, **kw):
    return Outcome(
        exit_code=exit_code,
        timed_out=kw.get("timed_out", False),
        oom_killed=kw.get("oom", False),
        stdout_tail=kw.get("stdout", ""),
        stderr_tail=kw.get("stderr", ""),
        duration_s=1.0,
    )


def _write(out, text):
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(text)


def _valid_result(lab, **changes):
    result = {
        "schema": 1,
        "lab": "music",
        "grader_version": "1.0.0",
        "dataset": {"name": "tiny", "hash": lab.dataset.manifest_hash},
        "device_class": "cpu",
        "seed": 0,
        "status": "ok",
        "error": None,
        "metrics": {"public": {"bpc": 3.0}, "private": {"bpc": 3.1}},
        "primary": {"metric": "bpc", "direction": "min"},
        "tiebreak": {"metric": "validity", "direction": "max"},
        "groups": None,
        "samples": [],
        "details": {},
        "artifact": {},
        "timings": {"check_s": 0.1, "evaluate_s": 0.8, "total_s": 1.0},
    }
    result.update(changes)
    return result


def test_a_successful_runs_log_shows_her_only_what_the_worker_vouches_for(graded_lab, submission, tmp_path):
    hidden = "T:The Hidden Reel of the private split"
    _write(tmp_path / "out", json.dumps(_valid_result(graded_lab)))
    stdout = (
        "ready\n"
        f"{hidden}\n"
        '{"public": {"bpc": 3.0}, "result": "/job/out/result.json", "status": "ok"}\n'
        '{"public": {"Hidden Reel": 1.0}, "status": "ok"}\n'
    )
    stderr = f"UserWarning: could not parse {hidden}\nllm: private: 2 answers scored, 2 generated\n"
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(0, stdout=stdout, stderr=stderr), tmp_path / "out", tmp_path
    )
    assert verdict.status == "succeeded"
    assert verdict.fields["log_tail"] == (
        "Graded in 1.0 s in the sandbox (exit code 0).\n"
        "Grader 1.0.0 on cpu: artifact checked in 0.10 s, evaluated in 0.80 s, 1.00 s in all.\n"
        'Summary: {"public": {"bpc": 3.0}, "status": "ok"}\n'
        "Not shown: 4 lines of the grader's output, kept for the staff only (diagnostics may quote the hidden data)."
    )
    assert verdict.fields["staff_log"].count(hidden) == 2


def _rejected(lab, code, message):
    return _valid_result(
        lab, status="rejected", error={"code": code, "message": message}, metrics={}, primary=None, tiebreak=None
    )


def test_a_failed_runs_log_shows_her_only_what_the_worker_measured_and_the_graders_code(
    graded_lab, submission, tmp_path
):
    hidden = "T:The Hidden Reel of the private split"
    _write(tmp_path / "out", json.dumps(_rejected(graded_lab, "non_finite_weights", "fc.bias holds NaN values.")))
    stdout = f"ready\n{hidden}\n" + json.dumps({"status": "rejected", "error": {"code": "x", "message": hidden}})
    stderr = f'Traceback (most recent call last):\n  File "/job/data/x.py", line 1\nValueError: {hidden}\n'
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(3, stdout=stdout, stderr=stderr), tmp_path / "out", tmp_path
    )
    assert verdict.status == "failed" and verdict.fields["error_code"] == "non_finite_weights"
    assert verdict.fields["error_message"] == "fc.bias holds NaN values."
    assert verdict.fields["log_tail"] == (
        "Refused in 1.0 s in the sandbox (exit code 3).\n"
        "Grader 1.0.0 on cpu: artifact checked in 0.10 s, evaluated in 0.80 s, 1.00 s in all.\n"
        "Reason: non_finite_weights (the message above says what to change).\n"
        "Not shown: 5 lines of the grader's output, kept for the staff only (diagnostics may quote the hidden data)."
    )
    assert verdict.fields["staff_log"].count(hidden) == 3 and "fc.bias holds NaN" in verdict.fields["staff_log"]


def test_a_rejections_message_that_quotes_the_hidden_data_is_not_shown(graded_lab, submission, tmp_path):
    from worker.datasets import cached_dataset

    data_dir = cached_dataset(graded_lab.dataset)
    manifest = json.loads((data_dir / "manifest.json").read_text())
    tune = (data_dir / manifest["splits"]["private"]["file"]).read_text().split("K:")[1][:40]
    _write(tmp_path / "out", json.dumps(_rejected(graded_lab, "bad_config", f"cannot read K:{tune}")))
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(3), tmp_path / "out", tmp_path, data_dir=data_dir
    )
    assert verdict.status == "failed" and verdict.fields["error_code"] == "bad_config"
    assert tune not in verdict.fields["error_message"] + verdict.fields["log_tail"]
    assert (
        verdict.fields["error_message"]
        == "The grader rejected your files (bad_config); the staff have its full message."
    )
    assert tune in verdict.fields["staff_log"]
    # The same message about her own files, quoting nothing hidden, is hers to read.
    _write(tmp_path / "out", json.dumps(_rejected(graded_lab, "bad_config", "config.json lacks 'vocab'.")))
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(3), tmp_path / "out", tmp_path, data_dir=data_dir
    )
    assert verdict.fields["error_message"] == "config.json lacks 'vocab'."


def test_a_rejection_on_the_hidden_data_is_told_in_the_graders_fixed_words(graded_lab, submission, tmp_path):
    _write(tmp_path / "out", json.dumps(_rejected(graded_lab, "non_finite_outputs", "NaN on T:Hidden Reel")))
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(3), tmp_path / "out", tmp_path
    )
    assert verdict.status == "failed"
    assert verdict.fields["error_message"] == verdicts.HIDDEN_DATA_REASONS["non_finite_outputs"]
    assert "Hidden Reel" in verdict.fields["staff_log"]


def test_a_rejection_under_a_code_the_grader_does_not_declare_is_a_refused_result(graded_lab, submission, tmp_path):
    _write(tmp_path / "out", json.dumps(_rejected(graded_lab, "made_up", "T:Hidden Reel")))
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(3), tmp_path / "out", tmp_path
    )
    assert verdict.status == "error" and verdict.retry and verdict.fields["error_code"] == "bad_result"
    assert "Hidden Reel" not in verdict.fields["error_message"] and "log_tail" not in verdict.fields
    assert "'made_up'" in verdict.fields["staff_log"] and "Hidden Reel" in verdict.fields["staff_log"]


@pytest.mark.parametrize(
    "payload, reason",
    [
        ("x" * (grading.RESULT_MAX_BYTES + 10), "larger than"),
        ("{not json", "Expecting property name"),
        (json.dumps({"schema": 1, "lab": "music"}), "schema"),
        ("NaN-marker", "non-finite"),
    ],
)
def test_a_bad_result_json_is_a_platform_error_never_a_score(graded_lab, submission, tmp_path, payload, reason):
    if payload == "NaN-marker":
        payload = json.dumps(_valid_result(graded_lab)).replace("3.1", "NaN")
    _write(tmp_path / "out", payload)
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(0), tmp_path / "out", tmp_path
    )
    assert verdict.status == "error" and verdict.retry
    assert verdict.fields["error_code"] == "bad_result"
    # The reason is for the staff; what the box wrote is never echoed into the message anyone sees first.
    assert reason in verdict.fields["staff_log"]
    assert verdict.fields["error_message"] == "The grader's result was refused (the staff have the details)."
    assert "public_score" not in verdict.fields


def test_a_result_for_another_dataset_is_refused(graded_lab, submission, tmp_path):
    _write(tmp_path / "out", json.dumps(_valid_result(graded_lab, dataset={"name": "x", "hash": "0" * 64})))
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(0), tmp_path / "out", tmp_path
    )
    assert verdict.status == "error" and "another dataset" in verdict.fields["staff_log"]


@pytest.mark.parametrize(
    "metrics, problem",
    [
        ({"public": {"bpc": -1.0, "validity": 0.5, "novelty": 0.5}, "private": {"bpc": 3.1}}, "public.bpc"),
        ({"public": {"bpc": 3.0, "validity": 7.0}, "private": {"bpc": 3.1}}, "public.validity"),
        ({"public": {"bpc": 3.0, "leaked": 0.5}, "private": {"bpc": 3.1}}, "leaked"),
    ],
)
def test_a_metric_outside_its_declared_range_is_a_grader_fault_never_a_score(
    graded_lab, submission, tmp_path, metrics, problem
):
    _write(tmp_path / "out", json.dumps(_valid_result(graded_lab, metrics=metrics)))
    verdict = grading.classify_outcome(
        graded_lab, submission.evaluations.get(), _outcome(0), tmp_path / "out", tmp_path
    )
    assert (verdict.status, verdict.retry, verdict.fields["error_code"]) == ("error", True, "bad_metrics")
    assert problem in verdict.fields["staff_log"]
    assert "public_score" not in verdict.fields


def test_a_bounded_artifact_past_the_labs_time_or_memory_is_the_labs_fault_and_the_staff_are_told(
    graded_lab, submission, tmp_path, course, ta
):
    from django.core.cache import cache

    cache.clear()
    evaluation = submission.evaluations.get()
    for outcome, code in ((_outcome(None, timed_out=True), "timeout"), (_outcome(137, oom=True), "out_of_memory")):
        evaluation.attempt = 1
        verdict = grading.classify_outcome(graded_lab, evaluation, outcome, tmp_path / "out", tmp_path)
        assert (verdict.status, verdict.retry, verdict.fields["error_code"]) == ("error", True, code)
        assert "does not count against your submissions" in verdict.fields["error_message"]
        evaluation.attempt = 2  # the confirming retry ran out too: final, still not hers
        verdict = grading.classify_outcome(graded_lab, evaluation, outcome, tmp_path / "out", tmp_path)
        assert (verdict.status, verdict.retry) == ("error", False)
    alerts = [m for m in mail.outbox if "ran out of" in m.subject]
    assert len(alerts) == 1, "one alert per lab an hour, however many evaluations"
    assert ta.user.email in alerts[0].to
    cache.clear()


def test_platform_fault_goes_back_to_the_queue_until_attempts_run_out(submission, settings):
    settings.EVALUATION_MAX_ATTEMPTS = 2
    evaluation = submission.evaluations.get()
    verdict = grading.Verdict("error", {"error_code": "timeout", "error_message": "slow"}, retry=True)
    token = lifecycle.claim(evaluation.pk, worker="test")
    assert grading.conclude(Evaluation.objects.get(pk=evaluation.pk), token, verdict) == "retrying"
    assert Evaluation.objects.get(pk=evaluation.pk).status == "queued"
    token = lifecycle.claim(evaluation.pk, worker="test")
    assert grading.conclude(Evaluation.objects.get(pk=evaluation.pk), token, verdict) == "error"
    final = Evaluation.objects.get(pk=evaluation.pk)
    assert (final.status, final.attempt, final.error_code) == ("error", 2, "timeout")


def test_a_confirmed_timeout_of_an_unbounded_artifact_on_an_unhealthy_node_stays_the_platforms(
    graded_lab, submission, tmp_path, monkeypatch
):
    from worker.health import NodeHealth

    # An overloaded node cannot be made on demand here: the measured health is replaced by an unhealthy one.
    monkeypatch.setattr(verdicts, "node_health", lambda: NodeHealth(False, 42.0, "the reference workload took 42 s"))
    monkeypatch.setattr(type(grading.get_lab("music")), "cost_is_bounded", lambda self, names: False)
    evaluation = submission.evaluations.get()
    evaluation.attempt, evaluation.error_code = 2, "timeout"
    verdict = grading.classify_outcome(graded_lab, evaluation, _outcome(None, timed_out=True), tmp_path / "o", tmp_path)
    assert (verdict.status, verdict.retry, verdict.fields["error_code"]) == ("error", True, "timeout")
    monkeypatch.setattr(verdicts, "node_health", lambda: NodeHealth(True, 0.2, "ok"))
    verdict = grading.classify_outcome(graded_lab, evaluation, _outcome(None, timed_out=True), tmp_path / "o", tmp_path)
    assert (verdict.status, verdict.fields["error_code"]) == ("failed", "time_limit")
    assert "time limit of 120 s" in verdict.fields["error_message"]


def test_a_base_model_the_box_cannot_read_is_a_clear_platform_fault_before_any_box_starts(course, tmp_path, settings):
    from tests.factories import make_music_lab, register_base_model
    from tests.grader.test_llm_checks import CONFIG
    from worker.datasets import DatasetUnavailable

    base = tmp_path / "models" / "tiny"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps(CONFIG))
    base.chmod(0o700)  # as a private temporary folder is made
    settings.BASE_MODELS_DIR = tmp_path / "models"
    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    register_base_model(lab, config=CONFIG, name="course/tiny-gemma-2", folder="tiny")
    with pytest.raises(DatasetUnavailable, match="not readable by the sandbox user"):
        grading.mounts_for(lab, tmp_path / "job", tmp_path / "data")
    base.chmod(0o755)
    mounts = grading.mounts_for(lab, tmp_path / "job", tmp_path / "data")
    assert [m.target for m in mounts][-1] == "/job/base-model"


def test_a_node_whose_base_model_config_differs_from_the_labs_refuses_before_any_box_starts(course, tmp_path, settings):
    from tests.factories import make_music_lab, register_base_model
    from tests.grader.test_llm_checks import CONFIG
    from worker.datasets import DatasetUnavailable

    settings.BASE_MODELS_DIR = tmp_path / "models"
    base = tmp_path / "models" / "tiny"
    base.mkdir(parents=True)
    (base / "config.json").write_text(json.dumps({**CONFIG, "num_hidden_layers": 3}))  # another edition's model
    lab = make_music_lab(course, slug="lab3", kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")
    registered = register_base_model(lab, config=CONFIG, name="course/tiny-gemma-2", folder="tiny")
    with pytest.raises(DatasetUnavailable, match="registered course/tiny-gemma-2") as info:
        grading.mounts_for(lab, tmp_path / "job", tmp_path / "data")
    assert registered.config_sha256[:12] in str(info.value)
    (base / "config.json").write_text(json.dumps(CONFIG))
    job = json.loads(grading.job_line(lab))
    assert job["options"]["base_model"] == "/job/base-model"
    assert job["options"]["base_config_sha256"] == registered.config_sha256
    assert job["options"]["base_model_name"] == "course/tiny-gemma-2"
    base.rename(tmp_path / "models" / "elsewhere")
    with pytest.raises(DatasetUnavailable, match="is not on this node"):
        grading.mounts_for(lab, tmp_path / "job", tmp_path / "data")
