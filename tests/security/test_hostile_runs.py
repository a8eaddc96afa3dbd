"""Hostile artifacts at grading time, in the real sandbox: each ends in one clear state, and the host is unchanged."""

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labs.models import Evaluation, Lab, Submission
from tests.factories import save_lstm, submit_folder
from tests.security.conftest import REPO, pickle_payload, snapshot, stored_root
from worker import grading


@pytest.fixture
def cache_dir(settings, tmp_path):
    settings.WORKER_CACHE_DIR = tmp_path / "worker-cache"
    return settings.WORKER_CACHE_DIR


def host_paths(submission, data_dir: Path) -> list[Path]:
    return [REPO / "grader", data_dir, stored_root(submission)]


def graded(evaluation: Evaluation) -> Evaluation:
    started = time.monotonic()
    outcome = grading.grade(evaluation.pk)
    evaluation.refresh_from_db()
    evaluation.elapsed = time.monotonic() - started
    assert outcome == evaluation.status
    return evaluation


def replace_stored(submission: Submission, name: str, data: bytes) -> None:
    """Swap a stored file behind the intake's back, as a compromised storage bucket would."""
    item = next(f for f in submission.files if f["name"] == name)
    default_storage.delete(item["key"])
    assert default_storage.save(item["key"], ContentFile(data)) == item["key"]


def test_a_pickle_smuggled_past_the_intake_fails_in_the_sandbox_and_is_never_unpickled(
    graded_lab, student, tmp_path, cache_dir, music_data_dir, marker
):
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    replace_stored(submission, "model.safetensors", pickle_payload(marker))
    before = snapshot(*host_paths(submission, music_data_dir))
    evaluation = graded(submission.evaluations.get())
    assert evaluation.status == "failed"
    assert evaluation.error_code == "pickle_not_allowed"
    assert "pickle" in evaluation.error_message and "save_file" in evaluation.error_message
    assert evaluation.public_score is None
    assert not marker.exists()
    assert snapshot(*host_paths(submission, music_data_dir)) == before


def test_a_model_that_overflows_to_nan_probabilities_is_a_clear_metric_failure(
    graded_lab, student, tmp_path, cache_dir, music_data_dir
):
    def blow_up(state):
        # Finite weights whose logits overflow float32: inf - inf makes the probabilities NaN.
        state["fc.weight"].fill_(3e38)
        state["fc.weight"][::2] = -3e38
        state["fc.bias"].fill_(3e38)

    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "n", mutate=blow_up))
    before = snapshot(*host_paths(submission, music_data_dir))
    evaluation = graded(submission.evaluations.get())
    assert evaluation.status == "failed"
    assert evaluation.error_code == "non_finite_outputs"
    assert "not finite" in evaluation.error_message
    assert evaluation.public_score is None and evaluation.private_score is None
    assert snapshot(*host_paths(submission, music_data_dir)) == before


def test_a_valid_but_slow_model_is_killed_by_the_wall_clock_and_ends_in_error(
    graded_lab, student, tmp_path, cache_dir, settings, music_data_dir
):
    settings.EVALUATION_MAX_ATTEMPTS = 1
    Lab.objects.filter(pk=graded_lab.pk).update(time_limit_s=3, max_artifact_bytes=200 * 1024 * 1024)
    graded_lab.refresh_from_db()
    # The largest hidden_size the lab allows: valid, and far too slow for a 3-second budget.
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "big", h=2048))
    assert submission.artifact_summary["hidden_size"] == 2048
    evaluation = graded(submission.evaluations.get())
    assert evaluation.status == "error"
    assert evaluation.error_code == "timeout"
    assert "3 s" in evaluation.error_message
    assert evaluation.attempt == 1 and evaluation.finished_at is not None
    assert evaluation.elapsed < 60, "the sandbox's wall clock bounds the run"


def test_a_result_json_planted_in_the_submission_cannot_set_the_score(
    graded_lab, student, tmp_path, cache_dir, music_data_dir
):
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    fake = {
        "schema": 1,
        "lab": "music",
        "grader_version": "9.9.9",
        "dataset": {"name": "x", "hash": graded_lab.dataset.manifest_hash},
        "status": "ok",
        "metrics": {"public": {"bpc": 0.0001}, "private": {"bpc": 0.0001}},
    }
    key = default_storage.save(f"{submission.storage_prefix}/result.json", ContentFile(json.dumps(fake).encode()))
    submission.files = [*submission.files, {"name": "result.json", "sha256": "0" * 64, "size": 10, "key": key}]
    submission.save(update_fields=["files"])
    evaluation = graded(submission.evaluations.get())
    assert evaluation.public_score != 0.0001 and evaluation.private_score != 0.0001
    assert evaluation.grader_version != "9.9.9"
    assert evaluation.status in ("succeeded", "failed")


def test_the_worker_prepares_a_fresh_empty_out_folder_for_every_job(graded_lab, student, tmp_path, cache_dir):
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    first = grading.new_job_dir()
    (first / "out" / "result.json").write_text('{"status": "ok"}')  # left behind by an earlier run
    second = grading.new_job_dir()
    assert second != first
    assert list((second / "out").iterdir()) == []
    grading.fill_submission(submission.evaluations.get(), second)
    assert sorted(p.name for p in (second / "submission").iterdir()) == ["config.json", "model.safetensors"]
    assert list((second / "out").iterdir()) == []
    shutil.rmtree(first)
    shutil.rmtree(second)


def test_each_attempt_gets_its_own_job_folder_named_by_a_fresh_claim_token(graded_lab, student, tmp_path, cache_dir):
    submission = submit_folder(lab=graded_lab, member=student, directory=save_lstm(tmp_path / "a"))
    evaluation = submission.evaluations.get()
    planted = Path(cache_dir) / "jobs" / f"{evaluation.pk}-{uuid.uuid4().hex[:12]}" / "out"
    planted.mkdir(parents=True)
    (planted / "result.json").write_text(json.dumps({"schema": 1, "status": "ok", "metrics": {}}))
    evaluation = graded(evaluation)
    assert evaluation.status == "succeeded"
    assert evaluation.public_score is not None and evaluation.public_score > 0.5


def onnx_vision_lab(course, tmp_path, *, time_limit_s: int) -> tuple[Lab, Path]:
    """A vision lab that accepts ONNX models, graded on a small hidden set made here."""
    from labs.management.commands.register_dataset import register_dataset
    from tests.grader.test_vision_onnx import _small_dataset
    from tests.security.conftest import music_lab_deadline

    data_dir = tmp_path / "vision-data"
    data_dir.mkdir()
    _small_dataset(data_dir)
    lab = Lab.objects.create(
        course=course,
        slug="lab2-vision",
        kind="vision",
        number=2,
        title="Computer Vision",
        deadline=music_lab_deadline(course),
        dataset=register_dataset(data_dir),
        primary_metric="worst_group_tpr",
        primary_direction="max",
        tiebreak_metric="balanced_accuracy",
        tiebreak_direction="max",
        evaluator_options={"allow_onnx": "1"},
        time_limit_s=time_limit_s,
        memory_limit_mb=2048,
    )
    return lab, data_dir


def test_an_onnx_artifact_with_a_custom_domain_fails_in_the_sandbox_without_running(
    course, student, tmp_path, cache_dir
):
    from tests.grader.test_vision_onnx import save, tiny_graph

    lab, data_dir = onnx_vision_lab(course, tmp_path, time_limit_s=120)
    onnx_file = save(tiny_graph(domain="com.example.evil"), tmp_path / "onnx") / "model.onnx"
    prefix = Submission.new_prefix(lab)
    key = default_storage.save(f"{prefix}/model.onnx", ContentFile(onnx_file.read_bytes()))
    submission = Submission.objects.create(
        lab=lab,
        member=student,
        storage_prefix=prefix,
        received_at=lab.deadline.due_at,
        sha256="1" * 64,
        size=1,
        files=[{"name": "model.onnx", "sha256": "1" * 64, "size": onnx_file.stat().st_size, "key": key}],
    )
    evaluation = Evaluation.objects.create(submission=submission)
    before = snapshot(REPO / "grader", data_dir, stored_root(submission))
    evaluation = graded(evaluation)
    assert evaluation.status == "failed"
    # Either the checker names the custom domain, or the artifact is refused for lacking the lab's named files.
    assert evaluation.error_code in ("onnx_custom_domain", "missing_file")
    assert "com.example.evil" in evaluation.error_message or "model.safetensors" in evaluation.error_message
    assert snapshot(REPO / "grader", data_dir, stored_root(submission)) == before


def _loop_graph(trips: int):
    """A face scorer whose Loop runs ``trips`` times: passes every upload check, costs whatever it likes."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 64, 64])
    logit = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["N", 1])
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "one"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1]),
        ],
        initializer=[numpy_helper.from_array(np.ones(1, dtype=np.float32), "one")],
    )
    nodes = [
        helper.make_node("Loop", ["trips", "cond", "zero"], ["acc"], body=body),
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("ReduceMean", ["flat"], ["mean"], keepdims=1, axes=[1]),
        helper.make_node("Add", ["mean", "acc"], ["logit"]),
    ]
    graph = helper.make_graph(
        nodes,
        "looping-face",
        [image],
        [logit],
        initializer=[
            numpy_helper.from_array(np.array(trips, dtype=np.int64), "trips"),
            numpy_helper.from_array(np.array(True), "cond"),
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_an_onnx_graph_that_loops_forever_is_hers_after_one_confirming_run_on_a_healthy_node(
    course, student, tmp_path, cache_dir, settings, monkeypatch
):
    """No bound fixes what an ONNX graph costs: its timeout, confirmed on a fresh box, counts against her quota."""
    from django.utils import timezone

    from labs.services import submissions_counted_today
    from worker import health

    settings.SANDBOX_PREWARM = False
    settings.EVALUATION_MAX_ATTEMPTS = 3
    monkeypatch.setattr(grading, "_sandbox", None)
    health.reset()
    lab, data_dir = onnx_vision_lab(course, tmp_path, time_limit_s=4)
    folder = tmp_path / "onnx"
    folder.mkdir()
    import onnx

    onnx.save_model(_loop_graph(10**15), str(folder / "model.onnx"))
    from grader.registry import get_lab

    get_lab("vision").check(folder, options=lab.evaluator_options)  # it passes the upload check
    data = (folder / "model.onnx").read_bytes()
    prefix = Submission.new_prefix(lab)
    key = default_storage.save(f"{prefix}/model.onnx", ContentFile(data))
    submission = Submission.objects.create(
        lab=lab,
        member=student,
        storage_prefix=prefix,
        received_at=timezone.now(),
        sha256="2" * 64,
        size=len(data),
        files=[{"name": "model.onnx", "sha256": "2" * 64, "size": len(data), "key": key}],
    )
    evaluation = Evaluation.objects.create(submission=submission)

    assert grading.grade(evaluation.pk) == "retrying"
    evaluation.refresh_from_db()
    assert (evaluation.status, evaluation.error_code, evaluation.attempt) == ("queued", "timeout", 1)
    assert submissions_counted_today(lab=lab, member=student, at=timezone.now()) == 1  # still in flight
    assert health.node_health().healthy

    evaluation = graded(evaluation)

    assert (evaluation.status, evaluation.error_code, evaluation.attempt) == ("failed", "time_limit", 2)
    assert "exceeded the lab's time limit of 4 s" in evaluation.error_message
    assert submissions_counted_today(lab=lab, member=student, at=timezone.now()) == 1, "it counts against her quota"
    assert evaluation.elapsed < 60
