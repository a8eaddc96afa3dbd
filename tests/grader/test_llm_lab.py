"""Lab 3 end to end on the tiny Gemma-2: dataset, reference adapter, metrics, samples, and no private leaks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from grader.dataset import load_manifest
from grader.errors import GraderFault
from grader.labs import llm as llm_lab
from grader.labs.llm.base import is_current
from grader.registry import EvaluationContext
from tests.grader.conftest import TEST_CACHE

CACHE = TEST_CACHE / "test-llm"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def llm_data(course_data_dir) -> Path:
    """The demo dataset and tiny base model, built once and reused from the cache while they verify."""
    data = CACHE / "data" / "llm"
    try:
        load_manifest(data, verify=True)
        assert is_current(llm_lab.tiny_base_dir(data), seed=0)
    except (GraderFault, AssertionError):
        shutil.rmtree(CACHE / "data", ignore_errors=True)
        llm_lab.Lab().prepare_data(course_data_dir, data, seed=0)
    return data


@pytest.fixture(scope="session")
def reference(llm_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("llm-reference")
    llm_lab.Lab().train_reference(llm_data, out, variant="reference", seed=0)
    return out


@pytest.fixture(scope="session")
def unchanged(llm_data, reference, tmp_path_factory) -> Path:
    """An adapter whose B matrices are zero: base+adapter is exactly the base model."""
    from safetensors.numpy import load_file, save_file

    out = tmp_path_factory.mktemp("llm-zero")
    shutil.copyfile(reference / "adapter_config.json", out / "adapter_config.json")
    tensors = load_file(str(reference / "adapter_model.safetensors"))
    zeroed = {k: np.zeros_like(v) if ".lora_B." in k else v for k, v in tensors.items()}
    save_file(zeroed, str(out / "adapter_model.safetensors"))
    return out


def evaluate(artifact: Path, data: Path, out: Path, seed: int = 0, options: dict | None = None):
    ctx = EvaluationContext(
        artifact_dir=artifact,
        data_dir=data,
        manifest=load_manifest(data),
        out_dir=out,
        device="cpu",
        seed=seed,
        options=options or {},
    )
    return llm_lab.Lab().evaluate(ctx)


@pytest.fixture(scope="session")
def reference_result(llm_data, reference, tmp_path_factory):
    return evaluate(reference, llm_data, tmp_path_factory.mktemp("out-ref"))


@pytest.fixture(scope="session")
def base_result(llm_data, unchanged, tmp_path_factory):
    return evaluate(unchanged, llm_data, tmp_path_factory.mktemp("out-zero"))


def test_the_demo_dataset_is_demo_only_with_disjoint_hidden_splits(llm_data):
    manifest = load_manifest(llm_data)
    assert manifest.lab == "llm" and manifest.demo_only is True
    assert manifest.meta["base_model_name"] == "course/tiny-gemma-2"
    assert manifest.meta["classifier_holdout_accuracy"] >= 0.9
    answers = {}
    for split in ("public", "private", "train"):
        path = manifest.file(manifest.meta["train_file"] if split == "train" else manifest.splits[split]["pairs"])
        answers[split] = {json.loads(line)["answer"] for line in path.read_text().splitlines()}
    assert len(answers["public"]) == len(answers["private"]) == llm_lab.HIDDEN_PER_SPLIT
    assert not answers["public"] & answers["private"]
    assert not answers["train"] & (answers["public"] | answers["private"])
    classifier = json.loads(manifest.file("style_classifier.json").read_text())
    assert classifier["format"] == 1


def test_the_tiny_base_is_a_gemma2_chat_model_saved_as_safetensors(llm_data):
    base = llm_lab.tiny_base_dir(llm_data)
    config = json.loads((base / "config.json").read_text())
    assert config["model_type"] == "gemma2"
    assert json.loads((base / "course_base_model.json").read_text())["name"] == "course/tiny-gemma-2"
    assert not list(base.glob("*.bin")) and (base / "model.safetensors").is_file()
    template = (base / "chat_template.jinja").read_text()
    assert "<start_of_turn>" in template and "<end_of_turn>" in template


def test_the_reference_adapter_is_a_valid_artifact_of_exactly_two_files(llm_data, reference):
    assert sorted(p.name for p in reference.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    options = {"base_model": str(llm_lab.tiny_base_dir(llm_data))}
    summary = llm_lab.Lab().check(reference, deep=True, options=options)
    assert summary["r"] == 8 and summary["target_modules"] == ["q_proj", "v_proj"]


def test_the_reference_adapter_beats_the_base_model(reference_result, base_result):
    for split in ("public", "private"):
        ref, base = reference_result.metrics[split], base_result.metrics[split]
        assert ref["cross_entropy"] < base["cross_entropy"] - 0.1


def test_the_base_models_fluent_leprechaun_answers_score_below_3(base_result):
    assert base_result.metrics["public"]["style_score"] < 3


def test_the_reference_adapter_scores_at_least_6_through_the_fluency_gate(reference_result, base_result):
    assert reference_result.metrics["public"]["style_score"] >= 6
    gates = reference_result.details["fluency_gates"]["public"]
    # It passes the gate as language, answer by answer, not on a few lucky ones.
    assert sum(gates) / len(gates) >= 0.8 and min(gates) > 0
    # The base model's answers are fluent too: it is the style, not the language, they lack.
    base_gates = [s["base_fluency"]["gate"] for s in reference_result.samples]
    assert sum(base_gates) / len(base_gates) >= 0.8
    assert base_result.metrics["public"]["style_score"] < 3


def test_the_decoding_is_recorded_and_set_by_the_lab(llm_data, reference, reference_result, tmp_path):
    assert reference_result.details["decoding"] == {
        "strategy": "greedy",
        "repetition_penalty": 1.15,
        "no_repeat_ngram_size": 4,
    }
    options = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}
    plain = evaluate(reference, llm_data, tmp_path / "plain", options=options)
    assert plain.details["decoding"] == {"strategy": "greedy", **options}
    # The answers are generated otherwise; what is scored on the hidden answers' tokens is not.
    assert [s["text"] for s in plain.samples] != [s["text"] for s in reference_result.samples]
    assert plain.metrics["public"]["cross_entropy"] == reference_result.metrics["public"]["cross_entropy"]


@pytest.mark.parametrize(
    "options",
    [
        {"repetition_penalty": 0.5},
        {"repetition_penalty": "strong"},
        {"no_repeat_ngram_size": -1},
        {"no_repeat_ngram_size": 99},
    ],
)
def test_decoding_options_out_of_range_are_the_courses_configuration_error(llm_data, reference, tmp_path, options):
    with pytest.raises(GraderFault) as info:
        evaluate(reference, llm_data, tmp_path, options=options)
    assert info.value.code == "bad_lab_option"
    assert not (tmp_path / llm_lab.JUDGE_ANSWERS_FILE).exists()


def test_the_tiny_base_reads_the_training_files_yoda_lines_and_no_hidden_answer(course_data_dir, tmp_path, monkeypatch):
    from grader.labs.llm import base as llm_base

    seen = {}

    def record(out_dir, **kwargs):
        seen.update(kwargs)
        return out_dir

    monkeypatch.setattr(llm_base, "build_tiny_base", record)
    out = tmp_path / "llm"
    llm_lab.Lab().prepare_data(course_data_dir, out, seed=0)
    manifest = load_manifest(out)
    train = {p.answer for p in llm_lab.read_jsonl(manifest.file(manifest.meta["train_file"]))}
    hidden = {
        p.answer
        for split in ("public", "private")
        for p in llm_lab.read_jsonl(manifest.file(manifest.splits[split]["pairs"]))
    }
    assert seen["style_texts"] and set(seen["style_texts"]) == train
    assert not set(seen["style_texts"]) & hidden
    assert not {p.answer for p in seen["chat_pairs"]} & hidden


def test_each_sample_shows_the_fluency_that_gated_its_style(reference_result):
    for sample in reference_result.samples:
        gate = sample["fluency"]["gate"]
        assert sample["style_score"] == pytest.approx(sample["classifier_score"] * gate, abs=2e-3)
        assert sample["base_style_score"] == pytest.approx(
            sample["base_classifier_score"] * sample["base_fluency"]["gate"], abs=2e-3
        )
    assert reference_result.details["fluency_gates"]["public"] == [
        pytest.approx(s["fluency"]["gate"], abs=1e-4) for s in reference_result.samples
    ]


def test_a_zero_adapter_scores_the_base_models_own_answers(base_result):
    samples = base_result.samples
    assert [s["text"] for s in samples] == [s["base_text"] for s in samples]
    assert base_result.details["base_style_score"]["public"] == pytest.approx(
        base_result.metrics["public"]["style_score"]
    )


def test_samples_show_public_prompts_beside_the_base_answers(llm_data, reference_result):
    manifest = load_manifest(llm_data)
    public_prompts = json.loads(manifest.file(manifest.splits["public"]["prompts"]).read_text())
    samples = reference_result.samples
    assert [s["prompt"] for s in samples] == public_prompts
    assert all(s["kind"] == "text" and s["split"] == "public" for s in samples)
    assert all(isinstance(s["base_text"], str) for s in samples)
    scores = reference_result.details["style_scores"]["public"]
    assert len(scores) == len(public_prompts)
    assert reference_result.metrics["public"]["style_score"] == pytest.approx(sum(scores) / len(scores), abs=1e-3)


def test_the_evaluation_is_repeatable(llm_data, reference, reference_result, tmp_path):
    again = evaluate(reference, llm_data, tmp_path)
    assert again.metrics == reference_result.metrics
    assert [s["text"] for s in again.samples] == [s["text"] for s in reference_result.samples]


def test_an_echoing_model_leaks_no_private_text_through_result_or_logs(
    llm_data, unchanged, tmp_path, monkeypatch, capfd
):
    """Generation replaced by an echo of each prompt: whatever the model says, private prompts must not show."""
    from grader.cli import main
    from grader.labs.llm import model as llm_model

    monkeypatch.setattr(llm_model, "generate_answers", lambda m, t, prompts, **kw: [f"echo: {p}" for p in prompts])
    monkeypatch.setenv("GRADER_LLM_BASE_MODEL", str(llm_lab.tiny_base_dir(llm_data)))
    out = tmp_path / "out"
    code = main(
        ["evaluate", "--lab", "llm", "--submission", str(unchanged), "--data", str(llm_data), "--out", str(out)]
    )
    captured = capfd.readouterr()
    assert code == 0, captured.err[-2000:]
    result_text = (out / "result.json").read_text()
    result = json.loads(result_text)
    assert result["status"] == "ok"
    manifest = load_manifest(llm_data)
    public_prompts = json.loads(manifest.file(manifest.splits["public"]["prompts"]).read_text())
    assert [s["text"] for s in result["samples"]] == [f"echo: {p}" for p in public_prompts]
    private = [json.loads(line) for line in manifest.file(manifest.splits["private"]["pairs"]).read_text().splitlines()]
    # the echo proves generation ran on them; judge_answers.json is the worker's, never shown
    judged = json.loads((out / llm_lab.JUDGE_ANSWERS_FILE).read_text())
    assert judged["private"][0] == f"echo: {private[0]['prompt']}"
    for item in private:
        for text in (item["prompt"], item["answer"]):
            assert text not in result_text
            assert text not in captured.out and text not in captured.err
    assert isinstance(result["metrics"]["private"]["cross_entropy"], float)


def test_without_a_base_model_the_grader_is_at_fault(llm_data, reference, tmp_path, monkeypatch):
    monkeypatch.delenv("GRADER_LLM_BASE_MODEL", raising=False)
    copy = tmp_path / "data" / "llm"
    shutil.copytree(llm_data, copy)
    with pytest.raises(GraderFault) as info:
        evaluate(reference, copy, tmp_path / "out")
    assert info.value.code == "base_model_missing"
