"""The grader's command line: exit codes, result.json, determinism, and the data and reference commands."""

import json
import shutil
import subprocess
import sys

import pytest

from grader.cli import main
from grader.dataset import load_manifest
from grader.errors import EXIT_GRADER_FAULT, EXIT_OK, EXIT_REJECTED
from grader.labs import music
from grader.registry import LAB_MODULES
from grader.result import load_result, validate_result
from tests.grader.conftest import REPO, save_lstm

FAST = ["--option", "songs=2", "--option", "song_length=120"]


def evaluate(artifact, data, out, *extra):
    return main(["evaluate", "--lab", "music", "--submission", str(artifact), "--data", str(data), "--out", str(out),
                 *FAST, *extra])  # fmt: skip


def test_check_prints_the_summary_and_exits_0(artifact, capsys):
    assert main(["check", "--lab", "music", str(artifact), "--deep"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["hidden_size"] == 16


def test_check_prints_the_students_message_and_exits_3(artifact, capsys):
    (artifact / "model.safetensors").unlink()
    assert main(["check", "--lab", "music", str(artifact)]) == EXIT_REJECTED
    assert capsys.readouterr().out.startswith(
        "rejected (missing_file): The artifact lacks model.safetensors; a Lab 1: Music Generation artifact is"
    )


def test_evaluate_writes_a_valid_result_and_the_songs(artifact, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert evaluate(artifact, tiny_dataset, out) == EXIT_OK
    result = load_result(out / "result.json")
    assert result["status"] == "ok"
    assert result["error"] is None
    assert result["primary"] == {"metric": "bpc", "direction": "min"}
    assert result["tiebreak"] == {"metric": "validity", "direction": "max"}
    assert set(result["metrics"]) == {"public", "private"}
    assert set(result["metrics"]["public"]) == {"bpc", "validity", "novelty"}
    assert 4.0 < result["metrics"]["public"]["bpc"] < 8.0  # an untrained model is near log2(83) = 6.4
    assert result["dataset"] == {"name": "tiny-tunes", "hash": load_manifest(tiny_dataset).hash}
    assert result["device_class"] == "cpu"
    assert [s["split"] for s in result["samples"]] == ["public", "public"]
    for k, sample in enumerate(result["samples"], start=1):
        assert sample["kind"] == "abc"
        assert (out / "samples" / f"song-{k}.abc").read_text() == sample["text"] + "\n"
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "private" not in json.dumps(printed)


def test_evaluating_twice_gives_identical_metrics(artifact, tiny_dataset, tmp_path):
    assert evaluate(artifact, tiny_dataset, tmp_path / "a") == EXIT_OK
    assert evaluate(artifact, tiny_dataset, tmp_path / "b") == EXIT_OK
    first, second = load_result(tmp_path / "a" / "result.json"), load_result(tmp_path / "b" / "result.json")
    assert first["metrics"] == second["metrics"]
    assert first["samples"] == second["samples"]


PROBE_TORCH_IMPORT = """
import os, sys
os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
seen = []

class Watch:  # notes the setting at the moment torch is first looked up, then lets the import go on
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))

sys.meta_path.insert(0, Watch())
from grader import cli
cli._seed_everything(0)
import torch
print(seen[0], torch.are_deterministic_algorithms_enabled())
"""


def test_the_grader_asks_for_reproducible_gpu_kernels_before_torch_is_imported():
    # cuBLAS reads the workspace setting when it starts; set too late, GPU matrix products may differ run to run.
    done = subprocess.run(
        [sys.executable, "-c", PROBE_TORCH_IMPORT], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == [":4096:8", "True"]


def test_a_recited_training_tune_has_novelty_zero_and_is_flagged(tiny_dataset):
    manifest = load_manifest(tiny_dataset)
    train = manifest.file(manifest.meta["train_file"]).read_text()
    tune = music.split_tunes(train)[0]
    assert music.novelty(tune, music.ngrams(train)) == 0.0


def test_a_rejected_artifact_gives_status_rejected_and_exit_3(tmp_path, tiny_dataset):
    folder = save_lstm(tmp_path / "a", mutate=lambda s: s["fc.bias"].fill_(float("nan")))
    assert evaluate(folder, tiny_dataset, tmp_path / "out") == EXIT_REJECTED
    result = load_result(tmp_path / "out" / "result.json")
    assert result["status"] == "rejected"
    assert result["error"]["code"] == "non_finite_weights"
    assert result["metrics"] == {}


def test_a_dataset_whose_files_differ_from_its_manifest_is_the_graders_fault(artifact, tiny_dataset, tmp_path):
    broken = tmp_path / "data"
    subprocess.run(["cp", "-r", str(tiny_dataset), str(broken)], check=True)
    (broken / music.SPLIT_FILES["private"]).write_text("X:1\nT:changed\n")
    assert evaluate(artifact, broken, tmp_path / "out") == EXIT_GRADER_FAULT
    result = load_result(tmp_path / "out" / "result.json")
    assert result["status"] == "error"
    assert result["error"]["code"] == "dataset_corrupt"
    assert "not your fault" in result["error"]["message"]


def test_a_dataset_of_another_lab_is_the_graders_fault(artifact, tiny_dataset, tmp_path):
    data = tmp_path / "data"
    subprocess.run(["cp", "-r", str(tiny_dataset), str(data)], check=True)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["lab"] = "vision"
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert evaluate(artifact, data, tmp_path / "out") == EXIT_GRADER_FAULT
    assert load_result(tmp_path / "out" / "result.json")["error"]["code"] == "dataset_wrong_lab"


def test_a_crash_inside_the_lab_is_reported_generically(artifact, tiny_dataset, tmp_path, monkeypatch, capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("secret hidden tune text")

    monkeypatch.setattr(music, "bits_per_character", explode)
    assert evaluate(artifact, tiny_dataset, tmp_path / "out") == EXIT_GRADER_FAULT
    result = load_result(tmp_path / "out" / "result.json")
    assert result["error"]["code"] == "grader_crashed"
    assert "secret" not in json.dumps(result)
    assert "secret" not in capsys.readouterr().out


def test_serve_one_prints_ready_then_runs_the_job_from_stdin(artifact, tiny_dataset, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "serve-one", "--lab", "music"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    job = {"submission": str(artifact), "data": str(tiny_dataset), "out": str(tmp_path / "out"), "seed": 0,
           "device": "cpu", "options": {"songs": 1, "song_length": 50}}  # fmt: skip
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.close()
    assert proc.wait(timeout=120) == EXIT_OK
    assert load_result(tmp_path / "out" / "result.json")["status"] == "ok"


def test_serve_one_refuses_a_malformed_job(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "serve-one", "--lab", "music"],
        cwd=REPO, input="{oops\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.stdout == "ready\n"
    assert proc.returncode == EXIT_GRADER_FAULT


@pytest.mark.parametrize("lab", ["vision", "llm"])
def test_serve_one_of_every_lab_warms_up_then_takes_its_one_job(lab, tmp_path):
    # Each lab's warm-up (its heavy imports) runs before "ready"; the job line is then read and checked.
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "serve-one", "--lab", lab],
        cwd=REPO, input="{oops\n", capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.stdout == "ready\n"
    assert proc.returncode == EXIT_GRADER_FAULT and "bad job line" in proc.stderr


def test_a_dataset_that_fails_verification_while_warming_is_reported_with_the_job(artifact, tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    victim = next(p for p in sorted(data.rglob("*")) if p.is_file() and p.name != "manifest.json")
    victim.write_text(victim.read_text() + "changed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "serve-one", "--lab", "music", "--data", str(data)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"  # a bad dataset does not stop the warm-up ...
    job = {"submission": str(artifact), "data": str(data), "out": str(tmp_path / "out"), "seed": 0,
           "device": "cpu", "options": {"songs": 1, "song_length": 50}}  # fmt: skip
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.close()
    assert proc.wait(timeout=120) == EXIT_GRADER_FAULT  # ... and the job reports it, as the platform's fault
    assert load_result(tmp_path / "out" / "result.json")["status"] == "error"


def test_train_reference_learns_clearly_better_than_an_untrained_model(tiny_dataset, tmp_path):
    lab = music.Lab()
    lab.train_reference(tiny_dataset, tmp_path / "ref", variant="reference", seed=0, options={"steps": 80})
    lab.train_reference(tiny_dataset, tmp_path / "raw", variant="untrained", seed=0)
    manifest = load_manifest(tiny_dataset)
    tunes = music.split_tunes(manifest.file(music.SPLIT_FILES["public"]).read_text())
    trained = music.bits_per_character(lab.load_model(tmp_path / "ref"), tunes)
    untrained = music.bits_per_character(lab.load_model(tmp_path / "raw"), tunes)
    assert lab.check(tmp_path / "ref", deep=True)["hidden_size"] == 128
    assert trained < untrained - 2.0


def test_result_schema_refuses_nan_and_a_missing_error_on_rejection():
    result = {
        "schema": 1, "lab": "music", "grader_version": "1", "dataset": {"name": "d", "hash": "0" * 64},
        "device_class": "cpu", "seed": 0, "status": "ok", "error": None, "metrics": {"public": {"bpc": 1.5}},
        "primary": {"metric": "bpc", "direction": "min"}, "tiebreak": None, "groups": None, "samples": [],
        "details": {}, "artifact": {}, "timings": {"check_s": 0.1, "evaluate_s": 1.0, "total_s": 1.2},
    }  # fmt: skip
    validate_result(result)
    with pytest.raises(ValueError, match=r"non-finite number at \$\.metrics\.public\.bpc"):
        validate_result({**result, "metrics": {"public": {"bpc": float("nan")}}})
    with pytest.raises(ValueError, match=r"at \$\.error"):
        validate_result({**result, "status": "rejected"})
    with pytest.raises(ValueError, match=r"samples\[0\]\.split: 'public' was expected"):
        validate_result({**result, "samples": [{"kind": "abc", "split": "private", "title": "t", "text": "x"}]})


@pytest.mark.coursedata
@pytest.mark.slow
def test_prepare_data_writes_the_music_dataset_and_survives_a_broken_lab(
    course_data_dir, tmp_path, monkeypatch, capsys
):
    from grader import registry

    monkeypatch.setitem(LAB_MODULES, "vision", "grader.labs.no_such_module")
    monkeypatch.delitem(registry._instances, "vision", raising=False)  # an earlier test may have loaded it
    out = tmp_path / "data"
    cache = course_data_dir.parents[1]
    code = main(["prepare-data", "--out", str(out), "--lab", "music", "--lab", "vision", "--cache", str(cache)])
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_GRADER_FAULT
    assert report["prepared"] == ["music"]
    assert list(report["failed"]) == ["vision"]
    manifest = load_manifest(out / "music")
    assert manifest.demo_only is True
    train = manifest.file(manifest.meta["train_file"]).read_text()
    for split in ("public", "private"):
        tunes = music.split_tunes(manifest.file(manifest.splits[split]["file"]).read_text())
        assert len(tunes) == 40
        assert not any(t.split("\n", 1)[1] in train for t in tunes)
    assert len(music.split_tunes(train)) + 80 == 804


@pytest.mark.coursedata
def test_the_course_vocabulary_constant_is_that_of_the_full_irish_abc(course_data_dir):
    text = (course_data_dir / "irish.abc").read_text()
    assert "".join(sorted(set(text))) == music.COURSE_VOCAB
    assert len(music.COURSE_VOCAB) == 83


@pytest.mark.coursedata
def test_course_data_is_served_from_the_cache_without_network(course_data_dir, monkeypatch):
    from grader import coursedata

    def no_network(*args, **kwargs):
        raise AssertionError("pip was called")

    monkeypatch.setattr(coursedata.subprocess, "run", no_network)
    assert coursedata.course_data(course_data_dir.parents[1]) == course_data_dir
    assert sorted(p.name for p in (course_data_dir / "faces").iterdir()) == ["DF", "DM", "LF", "LM"]


def test_prepare_data_is_reproducible_from_its_seed(tmp_path):
    from tests.grader.conftest import TINY_TUNES

    a = music.write_dataset(TINY_TUNES, tmp_path / "a", seed=5, hidden={"public": 2, "private": 2})
    b = music.write_dataset(TINY_TUNES, tmp_path / "b", seed=5, hidden={"public": 2, "private": 2})
    assert a.hash == b.hash
    assert a.files == b.files


def test_repeated_hidden_tunes_stop_the_dataset_build(tmp_path):
    from grader.errors import GraderFault
    from tests.grader.conftest import TINY_TUNES

    tunes = [TINY_TUNES[0]] * 3 + TINY_TUNES[1:3]
    with pytest.raises(GraderFault) as info:
        music.write_dataset(tunes, tmp_path / "d", seed=0, hidden={"public": 1, "private": 1})
    assert info.value.code == "dataset_leak"


def test_the_cli_module_runs_as_python_dash_m(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grader", "--help"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    for command in ("prepare-data", "train-reference", "check", "evaluate", "serve-one"):
        assert command in proc.stdout


def test_every_code_the_grader_rejects_under_is_declared():
    """The worker shows a failed run only under a declared code; a code raised but not declared would be refused."""
    import re

    from grader.errors import HIDDEN_DATA_REASONS, REJECTION_CODES

    raised = set()
    for path in (REPO / "grader").rglob("*.py"):
        raised |= set(re.findall(r'Rejected\(\s*"([a-z0-9_]+)"', path.read_text()))
    assert raised and raised <= REJECTION_CODES, sorted(raised - REJECTION_CODES)
    assert set(HIDDEN_DATA_REASONS) <= REJECTION_CODES
