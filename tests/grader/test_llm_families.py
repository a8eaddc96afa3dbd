"""Lab 3 on every base model family the course has used: Gemma-2, LFM2 and Qwen3, each a tiny model built offline
with a reference adapter trained as the notebook trains it (its target list, and "all-linear"), graded end to end;
and the notebook's own number recomputed here with plain torch."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest

from grader.dataset import load_manifest
from grader.errors import GraderFault, Rejected
from grader.labs import llm as llm_lab
from grader.labs.llm.adapter import read_base_spec
from grader.labs.llm.base import FAMILIES, is_current
from grader.registry import EvaluationContext
from tests.grader.conftest import TEST_CACHE

CACHE = TEST_CACHE / "test-llm-families"
STEPS = "40"  # enough to move the weights; these tests are about what is graded, not how well
PRETRAIN_STEPS = 200  # the same: each family's tiny base is built with fewer steps than the demo's

pytestmark = [pytest.mark.slow, pytest.mark.coursedata]

# (family, targets) -> the layers (last name part) PEFT adapts, as the result must report them
CASES = {
    ("gemma2", "notebook"): ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    # LFM2 has no o_proj and no gate/up/down: PEFT adapts q, k and v alone, and the file holds exactly those.
    ("lfm2", "notebook"): ["k_proj", "q_proj", "v_proj"],
    # On LFM2 "all-linear" reaches the short-convolution blocks' projections and the feed-forward w1/w2/w3.
    ("lfm2", "all-linear"): ["in_proj", "k_proj", "out_proj", "q_proj", "v_proj", "w1", "w2", "w3"],
    ("qwen3", "all-linear"): ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
}


@pytest.fixture(scope="session")
def families_data(course_data_dir) -> Path:
    """The demo dataset with a tiny base of each family beside it, built once and reused while it verifies."""
    data = CACHE / "data" / "llm"
    try:
        load_manifest(data, verify=True)
        assert all(is_current(llm_lab.tiny_base_dir(data, f), seed=0, steps=PRETRAIN_STEPS) for f in FAMILIES)
    except (GraderFault, AssertionError):
        shutil.rmtree(CACHE / "data", ignore_errors=True)
        llm_lab.Lab().prepare_data(
            course_data_dir,
            data,
            seed=0,
            options={"base_families": ",".join(FAMILIES), "base_pretrain_steps": PRETRAIN_STEPS},
        )
    return data


@pytest.fixture(scope="session")
def adapters(families_data, tmp_path_factory) -> dict[tuple[str, str], Path]:
    out = {}
    for family, targets in CASES:
        folder = tmp_path_factory.mktemp(f"adapter-{family}-{targets}")
        options = {"base_model": str(llm_lab.tiny_base_dir(families_data, family)), "targets": targets, "steps": STEPS}
        llm_lab.Lab().train_reference(families_data, folder, variant="reference", seed=0, options=options)
        out[family, targets] = folder
    return out


@pytest.fixture(scope="session")
def results(families_data, adapters, tmp_path_factory):
    graded = {}
    for (family, targets), folder in adapters.items():
        ctx = EvaluationContext(
            artifact_dir=folder,
            data_dir=families_data,
            manifest=load_manifest(families_data),
            out_dir=tmp_path_factory.mktemp(f"out-{family}-{targets}"),
            device="cpu",
            seed=0,
            options={"base_model": str(llm_lab.tiny_base_dir(families_data, family))},
        )
        graded[family, targets] = llm_lab.Lab().evaluate(ctx)
    return graded


@functools.cache
def registration(data: Path, family: str) -> dict:
    """What a lab of that family holds once staff registered its base (the table derived from its config)."""
    spec = read_base_spec(llm_lab.tiny_base_dir(data, family))
    return {"name": spec.name, "config_sha256": spec.config_sha256, "table": spec.table}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def test_each_family_grades_an_adapter_trained_as_the_notebook_trains_it(families_data, adapters, results, case):
    family, targets = case
    base_dir = llm_lab.tiny_base_dir(families_data, family)
    assert json.loads((base_dir / "config.json").read_text())["model_type"] == family
    # The upload check (header only, against the table derived from the base's config) accepts it ...
    summary = llm_lab.Lab().check(
        adapters[case], options={"base_model_registration": registration(families_data, family)}
    )
    assert summary["target_modules"] == CASES[case]
    # ... and the grader, having let PEFT load it, reports exactly those layers adapted, on that base.
    result = results[case]
    assert result.details["adapter"]["target_modules"] == CASES[case]
    spec = read_base_spec(base_dir)
    assert result.details["base_model"] == spec.identity()
    assert result.details["base_model"]["name"] == FAMILIES[family][0]
    assert len(spec.weights_sha256) == 64 and len(spec.config_sha256) == 64
    for split in ("public", "private"):
        metrics = result.metrics[split]
        assert 0 < metrics["cross_entropy"] < 20 and 0 <= metrics["style_score"] <= 10
        assert 0 < metrics["test_loglikelihood"] < 20 and 0 < metrics["hidden_loglikelihood"] < 20


def test_the_notebooks_config_on_lfm2_lists_seven_modules_but_its_file_holds_three(adapters):
    config = json.loads((adapters["lfm2", "notebook"] / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(llm_lab.NOTEBOOK_TARGETS)
    from safetensors import safe_open

    with safe_open(str(adapters["lfm2", "notebook"] / "adapter_model.safetensors"), "np") as handle:
        adapted = {key.split(".")[-3] for key in handle.keys()}
    assert adapted == {"q_proj", "k_proj", "v_proj"}


@pytest.mark.parametrize(("adapter_of", "lab_of"), [("lfm2", "gemma2"), ("qwen3", "lfm2"), ("gemma2", "qwen3")])
def test_an_adapter_for_one_family_is_refused_by_a_lab_of_another_naming_both(
    families_data, adapters, adapter_of, lab_of
):
    folder = next(path for (family, _), path in adapters.items() if family == adapter_of)
    with pytest.raises(Rejected) as info:
        llm_lab.Lab().check(folder, options={"base_model_registration": registration(families_data, lab_of)})
    assert info.value.code == "wrong_base_model"
    assert FAMILIES[adapter_of][0] in info.value.message and FAMILIES[lab_of][0] in info.value.message


def test_an_adapter_renamed_to_another_familys_base_is_refused_by_its_tensors(families_data, adapters, tmp_path):
    forged = tmp_path / "forged"
    shutil.copytree(adapters["lfm2", "all-linear"], forged)
    config = json.loads((forged / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = FAMILIES["qwen3"][0]
    (forged / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(Rejected) as info:
        llm_lab.Lab().check(forged, options={"base_model_registration": registration(families_data, "qwen3")})
    assert info.value.code == "wrong_tensors"


def _plain_mean_cross_entropy(model, token_lists: list[list[int]]) -> float:
    """Mean next-token cross-entropy over every predicted token: one forward pass per text, no padding."""
    import torch

    total, count = 0.0, 0
    with torch.no_grad():
        for tokens in token_lists:
            ids = torch.tensor([tokens])
            logits = model(input_ids=ids).logits[0, :-1]
            total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
    return total / count


def test_the_notebooks_yoda_test_loglikelihood_and_the_hidden_one_are_recomputed_with_plain_torch(
    families_data, adapters, results
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    case = ("lfm2", "all-linear")
    base_dir = llm_lab.tiny_base_dir(families_data, case[0])
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), attn_implementation="eager")
    model = PeftModel.from_pretrained(model, str(adapters[case])).eval()
    manifest = load_manifest(families_data)
    test_text = manifest.file(manifest.meta["test_text_file"]).read_text()
    # The course's public text, as the package ships it, tokenised with its special tokens (the notebook's way).
    assert test_text.startswith("Wisdom, sought by many")
    ids = tokenizer(test_text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    limit = model.config.max_position_embeddings
    expected_test = _plain_mean_cross_entropy(model, [ids[:limit]])
    result = results[case]
    assert result.metrics["public"]["test_loglikelihood"] == pytest.approx(expected_test, abs=1e-4)
    assert result.details["test_loglikelihood"]["printed"] == f"{expected_test:.2f}"
    for split in ("public", "private"):
        lines = manifest.file(manifest.splits[split]["pairs"]).read_text().splitlines()
        answers = [tokenizer(json.loads(line)["answer"])["input_ids"][:limit] for line in lines]
        expected_hidden = _plain_mean_cross_entropy(model, answers)
        assert result.metrics[split]["hidden_loglikelihood"] == pytest.approx(expected_hidden, abs=1e-4)
