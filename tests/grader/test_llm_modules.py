"""The module table LoRA may target, derived by PEFT from a base model's config, and read back without torch.

The web process checks an adapter against the table alone; these tests hold its reading of ``target_modules`` equal
to what PEFT itself adapts, on the course's three families (Gemma-2, LFM2 with short-conv and attention layers, and
Qwen3), for lists, regular expressions, "all-linear", layer selections and exclusions.
"""

from __future__ import annotations

import json
import time

import pytest

from grader.errors import Rejected
from grader.labs.llm import modules

NOTEBOOK_TARGETS = ["q_proj", "o_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "down_proj"]


def family_configs() -> dict[str, dict]:
    from transformers import Gemma2Config, Lfm2Config, Qwen3Config

    common = dict(vocab_size=256, hidden_size=32, num_attention_heads=4, num_key_value_heads=2)
    configs = {
        "gemma2": Gemma2Config(**common, intermediate_size=48, num_hidden_layers=2, head_dim=8),
        "lfm2": Lfm2Config(
            **common,
            intermediate_size=64,
            num_hidden_layers=4,
            layer_types=["conv", "full_attention", "conv", "full_attention"],
        ),
        "qwen3": Qwen3Config(**common, intermediate_size=48, num_hidden_layers=3, head_dim=8),
    }
    return {name: json.loads(config.to_json_string()) for name, config in configs.items()}


@pytest.fixture(scope="module")
def tables() -> dict[str, tuple[dict, dict]]:
    return {name: (config, modules.derive_table(config)) for name, config in family_configs().items()}


def peft_tensors(config: dict, lora: dict) -> dict[str, tuple[int, ...]]:
    """What PEFT itself adapts for ``lora`` on the meta model: the names and shapes it saves."""
    import torch
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    model = modules._meta_model(config)
    peft_model = get_peft_model(model, LoraConfig(**lora))
    state = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    assert all(t.device == torch.device("meta") for t in state.values())
    return {k: tuple(v.shape) for k, v in state.items()}


def table_tensors(table: dict, lora: dict) -> dict[str, tuple[int, ...]]:
    target = modules.adapted_modules(table, lora)
    assert not target.unsupported
    return modules.expected_tensors(table, target.modules, lora["r"])


CONFIGS = [
    {"r": 8, "target_modules": NOTEBOOK_TARGETS},
    {"r": 4, "target_modules": "all-linear"},
    {"r": 2, "target_modules": ["q_proj", "v_proj"], "layers_to_transform": [1]},
    {"r": 3, "target_modules": r".*\.(q_proj|w2|down_proj)"},
    {"r": 5, "target_modules": ["self_attn.q_proj", "k_proj"], "exclude_modules": ["model.layers.1.self_attn.k_proj"]},
    {"r": 2, "target_modules": ["embed_tokens", "v_proj"], "layers_to_transform": 0, "layers_pattern": "layers"},
]


@pytest.mark.parametrize("family", ["gemma2", "lfm2", "qwen3"])
@pytest.mark.parametrize("lora", CONFIGS, ids=lambda c: json.dumps(c["target_modules"])[:30])
def test_the_tables_reading_of_a_config_is_peft_s_own(tables, family, lora):
    from peft.utils.error import NoMatchingPeftModuleError

    config, table = tables[family]
    try:
        expected = peft_tensors(config, lora)
    except NoMatchingPeftModuleError:
        expected = {}  # PEFT refuses a config that adapts nothing; so does the check (a test below)
    assert table_tensors(table, lora) == expected
    if family == "lfm2" and lora["target_modules"] == CONFIGS[-1]["target_modules"]:
        assert expected == {}  # its layer 0 is a short-conv block, with no v_proj


def test_on_lfm2_the_notebooks_list_adapts_only_the_attention_projections_that_exist(tables):
    _, table = tables["lfm2"]
    target = modules.adapted_modules(table, {"target_modules": NOTEBOOK_TARGETS})
    assert target.modules == tuple(f"model.layers.{i}.self_attn.{m}_proj" for i in (1, 3) for m in ("k", "q", "v"))


def test_all_linear_on_lfm2_is_every_linear_layer_but_the_output_head(tables):
    _, table = tables["lfm2"]
    names = set(table["all_linear"])
    assert "lm_head" not in names and table["output_module"] == "lm_head"
    assert modules.short_names(names) == ["in_proj", "k_proj", "out_proj", "q_proj", "v_proj", "w1", "w2", "w3"]
    assert "model.layers.0.conv.in_proj" in names and "model.layers.1.self_attn.out_proj" in names


def test_the_table_marks_the_rank_dimension_and_names_no_family(tables):
    _, table = tables["gemma2"]
    q = table["modules"]["model.layers.0.self_attn.q_proj"]
    assert q == {"type": "Linear", "tensors": {"lora_A.weight": ["r", 32], "lora_B.weight": [32, "r"]}}
    assert table["key_prefix"] == "base_model.model." and table["num_hidden_layers"] == 2
    assert "model.layers.0.input_layernorm" in table["other_modules"]  # a norm: PEFT cannot wrap it


def test_a_norm_matched_by_a_pattern_is_refused_as_peft_would(tables):
    _, table = tables["qwen3"]
    target = modules.adapted_modules(table, {"target_modules": r".*layernorm"})
    assert target.modules == () and "model.layers.0.input_layernorm" in target.unsupported


def test_a_pattern_that_backtracks_without_end_is_refused_quickly(tables):
    _, table = tables["gemma2"]
    started = time.monotonic()
    with pytest.raises(Rejected) as info:
        modules.adapted_modules(table, {"target_modules": r"(.*){1,32000}[bc]"})
    assert info.value.code == "bad_target_modules" and "too costly" in info.value.message
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    "config, reason",
    [
        ({"model_type": "gemma2", "auto_map": {"AutoModelForCausalLM": "modeling_evil.Evil"}}, "own code"),
        ({"model_type": "gemma2", "trust_remote_code": True}, "own code"),
        ({"architectures": ["Gemma2ForCausalLM"]}, "model_type"),
    ],
)
def test_a_config_asking_for_remote_code_or_naming_no_type_is_refused(config, reason):
    with pytest.raises(modules.BaseConfigRefused) as info:
        modules.read_config_bytes(json.dumps(config).encode())
    assert reason in str(info.value)


def test_a_model_type_transformers_does_not_know_is_refused():
    with pytest.raises(modules.BaseConfigRefused) as info:
        modules.derive_table({"model_type": "evil-llm", "hidden_size": 8})
    assert "does not know the model type 'evil-llm'" in str(info.value)
