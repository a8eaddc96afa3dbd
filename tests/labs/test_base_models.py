"""Lab 3's base model is course configuration: registered by staff from its config.json, checked on every upload
against the module table PEFT derived from it, and the one base a leaderboard ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from safetensors.numpy import save

from courses.models import AuditEntry
from labs.models import BaseModel, Evaluation, Submission
from labs.selectors import leaderboard_for
from tests.factories import GEMMA_2_2B_IT, GEMMA_2_2B_IT_CONFIG, make_music_lab, register_base_model, token_for
from tests.labs.test_leaderboard import graded

API = "/api/labs/{}/submissions"
# The shapes of LiquidAI's LFM2-1.2B as its published config.json gives them: 16 blocks, 6 of them attention.
LFM2_1_2B = "LiquidAI/LFM2-1.2B"
LFM2_ATTENTION = (2, 5, 8, 10, 12, 14)
LFM2_1_2B_CONFIG = {
    "architectures": ["Lfm2ForCausalLM"],
    "model_type": "lfm2",
    "vocab_size": 65536,
    "hidden_size": 2048,
    "intermediate_size": 12288,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 128000,
    "conv_L_cache": 3,
    "block_multiple_of": 256,
    "block_ffn_dim_multiplier": 1.0,
    "block_auto_adjust_ff_dim": True,
    "layer_types": ["full_attention" if i in LFM2_ATTENTION else "conv" for i in range(16)],
}
NOTEBOOK_2026 = ["q_proj", "o_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]


def llm_lab(course, slug="lab3"):
    return make_music_lab(course, slug=slug, kind="llm", primary_metric="cross_entropy", tiebreak_metric="style_score")


def adapter(base_name: str, tensors: dict, targets) -> dict:
    folder = {"adapter_model.safetensors": SimpleUploadedFile("adapter_model.safetensors", save(tensors))}
    cfg = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_name,
        "r": 8,
        "lora_alpha": 16,
        "target_modules": targets,
    }
    folder["adapter_config.json"] = SimpleUploadedFile("adapter_config.json", json.dumps(cfg).encode())
    return folder


def lfm2_notebook_adapter() -> dict:
    """What PEFT saves for the 2026 notebook's LoraConfig on LFM2-1.2B: q, k and v of its attention blocks."""
    tensors = {}
    for i in LFM2_ATTENTION:
        for module, out in (("q_proj", 2048), ("k_proj", 512), ("v_proj", 512)):
            prefix = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = np.zeros((8, 2048), np.float32)
            tensors[f"{prefix}.lora_B.weight"] = np.zeros((out, 8), np.float32)
    return adapter(LFM2_1_2B, tensors, NOTEBOOK_2026)


def gemma_adapter() -> dict:
    tensors = {}
    for i in range(26):
        prefix = f"base_model.model.model.layers.{i}.self_attn.q_proj"
        tensors[f"{prefix}.lora_A.weight"] = np.zeros((8, 2304), np.float32)
        tensors[f"{prefix}.lora_B.weight"] = np.zeros((2048, 8), np.float32)
    return adapter(GEMMA_2_2B_IT, tensors, ["q_proj"])


def post(client, lab, member, files):
    return client.post(API.format(lab.slug), files, HTTP_AUTHORIZATION=f"Bearer {token_for(member)}")


def test_staff_register_a_base_model_from_its_config_and_the_table_comes_from_a_limited_child(
    login, course, ta, tmp_path
):
    lab = llm_lab(course)
    client = login(ta)
    url = f"/courses/dl/labs/{lab.slug}/staff/base-model/"
    page = client.get(url)
    assert page.status_code == 200 and b"No base model is registered" in page.content
    config = SimpleUploadedFile("config.json", json.dumps(LFM2_1_2B_CONFIG).encode())
    response = client.post(url, {"name": LFM2_1_2B, "folder": "lfm2-1.2b", "config": config})
    assert response.status_code == 302, response.content.decode()[-2000:]
    lab.refresh_from_db()
    base = lab.base_model
    assert (base.name, base.model_type, base.folder) == (LFM2_1_2B, "lfm2", "lfm2-1.2b")
    assert base.table["num_hidden_layers"] == 16
    assert "model.layers.0.conv.in_proj" in base.table["all_linear"]
    assert base.table["modules"]["model.layers.2.self_attn.k_proj"]["tensors"]["lora_B.weight"] == [512, "r"]
    page = client.get(url).content.decode()
    assert base.config_sha256 in page and "feed_forward" not in page and "<code>w1</code>" in page
    entry = AuditEntry.objects.get(action="lab.base_model")
    assert entry.after["config_sha256"] == base.config_sha256 and entry.actor == ta.user


def test_a_config_asking_for_remote_code_is_refused_on_the_page_and_changes_nothing(login, course, ta):
    lab = llm_lab(course)
    client = login(ta)
    evil = {**LFM2_1_2B_CONFIG, "auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}}
    response = client.post(
        f"/courses/dl/labs/{lab.slug}/staff/base-model/",
        {
            "name": "evil/model",
            "folder": "evil",
            "config": SimpleUploadedFile("config.json", json.dumps(evil).encode()),
        },
    )
    assert response.status_code == 200
    assert "never runs remote code" in response.content.decode()
    lab.refresh_from_db()
    assert lab.base_model is None and not BaseModel.objects.exists() and not AuditEntry.objects.exists()


def test_students_cannot_register_a_base_model(login, course, student):
    lab = llm_lab(course)
    response = login(student).get(f"/courses/dl/labs/{lab.slug}/staff/base-model/")
    assert response.status_code in (403, 404)


def test_the_2026_notebooks_adapter_on_lfm2_is_accepted_and_says_what_was_adapted(client, course, student):
    lab = llm_lab(course)
    register_base_model(lab, config=LFM2_1_2B_CONFIG, name=LFM2_1_2B)
    response = post(client, lab, student, lfm2_notebook_adapter())
    assert response.status_code == 201, response.content
    summary = Submission.objects.get().artifact_summary
    assert summary["target_modules"] == ["k_proj", "q_proj", "v_proj"]
    assert summary["adapted_modules"] == 18 and summary["base_model_type"] == "lfm2"


@pytest.mark.parametrize("direction", ["gemma adapter to an lfm2 lab", "lfm2 adapter to a gemma lab"])
def test_an_adapter_for_one_family_is_refused_by_a_lab_of_another_naming_both(client, course, student, direction):
    lab = llm_lab(course)
    if direction.startswith("gemma"):
        register_base_model(lab, config=LFM2_1_2B_CONFIG, name=LFM2_1_2B)
        files, theirs, ours = gemma_adapter(), GEMMA_2_2B_IT, LFM2_1_2B
    else:
        register_base_model(lab, config=GEMMA_2_2B_IT_CONFIG, name=GEMMA_2_2B_IT)
        files, theirs, ours = lfm2_notebook_adapter(), LFM2_1_2B, GEMMA_2_2B_IT
    response = post(client, lab, student, files)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "wrong_base_model"
    assert theirs in error["message"] and ours in error["message"]
    assert not Submission.objects.exists()


def test_a_leaderboard_ranks_results_of_the_labs_current_base_only(course, student, student2, ta):
    lab = llm_lab(course)
    old = register_base_model(lab, config=GEMMA_2_2B_IT_CONFIG, name=GEMMA_2_2B_IT)
    on_old = graded(lab, student, public=1.0, private=1.0)
    Evaluation.objects.filter(submission=on_old).update(base_model_sha256=old.config_sha256)
    board = leaderboard_for(lab=lab, split="public", viewer=None)
    assert [row.submission_id for row in board.rows] == [on_old.pk]
    new = register_base_model(lab, config=LFM2_1_2B_CONFIG, name=LFM2_1_2B)
    on_new = graded(lab, student2, public=2.0, private=2.0)
    Evaluation.objects.filter(submission=on_new).update(base_model_sha256=new.config_sha256)
    board = leaderboard_for(lab=lab, split="public", viewer=None)
    assert [row.submission_id for row in board.rows] == [on_new.pk]


def test_a_base_registered_through_the_service_is_what_the_same_lab_checks_uploads_against(course, ta):
    from labs.basemodels import register_base_model
    from tests.grader.test_llm_checks import CONFIG

    lab = llm_lab(course)
    base = register_base_model(
        lab=lab, actor=ta.user, name="course/tiny-gemma-2", folder="tiny", config_bytes=json.dumps(CONFIG).encode()
    )
    # The caller goes on with its own instance (as the demo and a staff script do): it must see the new base.
    registered = lab.check_options()["base_model_registration"]
    assert registered["config_sha256"] == base.config_sha256 and registered["name"] == "course/tiny-gemma-2"
