"""Lab 3 artifact checks: what a student sees when her LoRA adapter does not fit the course's base model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from grader.errors import GraderFault, Rejected
from grader.labs.llm import Lab, modules

REPO = Path(__file__).resolve().parents[2]
NAME = "course/tiny-gemma-2"
HIDDEN, Q_OUT, KV_OUT, INTER, LAYERS = 64, 64, 32, 128, 2
SHAPES = {
    "q_proj": ("self_attn", HIDDEN, Q_OUT),
    "k_proj": ("self_attn", HIDDEN, KV_OUT),
    "v_proj": ("self_attn", HIDDEN, KV_OUT),
    "o_proj": ("self_attn", Q_OUT, HIDDEN),
    "gate_proj": ("mlp", HIDDEN, INTER),
    "up_proj": ("mlp", HIDDEN, INTER),
    "down_proj": ("mlp", INTER, HIDDEN),
}


CONFIG = {
    "model_type": "gemma2",
    "vocab_size": 1024,
    "hidden_size": HIDDEN,
    "intermediate_size": INTER,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


@pytest.fixture(scope="session")
def base() -> dict:
    """The registration a lab holds: the base's name, its config hash and the module table PEFT derived."""
    raw = json.dumps(CONFIG).encode()
    return {"name": NAME, "config_sha256": modules.config_sha256(raw), "table": modules.derive_table(CONFIG)}


def write_adapter(folder: Path, *, r=4, modules=("q_proj", "v_proj"), config=None, tensors=None, value=0.01):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": NAME,
        "r": r,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.0,
        "target_modules": list(modules),
        "bias": "none",
        "modules_to_save": None,
        "auto_mapping": None,
        "use_dora": False,
        "megatron_core": "megatron.core",
    }
    if config:
        cfg = config(cfg)
    if tensors is None:
        tensors = {}
        for i in range(LAYERS):
            for module in modules:
                group, fan_in, fan_out = SHAPES[module]
                prefix = f"base_model.model.model.layers.{i}.{group}.{module}"
                tensors[f"{prefix}.lora_A.weight"] = np.full((r, fan_in), value, dtype=np.float32)
                tensors[f"{prefix}.lora_B.weight"] = np.full((fan_out, r), value, dtype=np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    text = cfg if isinstance(cfg, str) else json.dumps(cfg)
    (folder / "adapter_config.json").write_text(text)
    return folder


def check(folder: Path, base: dict, *, deep=False, **options):
    return Lab().check(folder, deep=deep, options={"base_model_registration": base, **options})


def rejection(folder: Path, base: dict, *, deep=False, **options) -> Rejected:
    with pytest.raises(Rejected) as info:
        check(folder, base, deep=deep, **options)
    return info.value


def test_a_peft_lora_adapter_passes_with_its_summary(tmp_path, base):
    summary = check(write_adapter(tmp_path / "a", r=8, modules=("q_proj", "down_proj")), base, deep=True)
    assert summary["base_model"] == NAME
    assert summary["r"] == 8
    assert summary["lora_alpha"] == 16.0
    assert summary["target_modules"] == ["down_proj", "q_proj"]
    assert summary["adapted_modules"] == 2 * LAYERS and summary["base_model_type"] == "gemma2"
    # q_proj: A 8x64 + B 64x8; down_proj: A 8x128 + B 64x8; two layers
    assert summary["parameters"] == 2 * (8 * 64 + 64 * 8 + 8 * 128 + 64 * 8)


def test_header_check_imports_neither_torch_nor_transformers_nor_peft(tmp_path, base):
    folder = write_adapter(tmp_path / "a")
    registration = tmp_path / "registration.json"
    registration.write_text(json.dumps(base))
    code = (
        "import sys, json; from pathlib import Path; from grader.labs.llm import Lab; "
        f"reg = json.loads(Path({str(registration)!r}).read_text()); "
        f"s = Lab().check(Path({str(folder)!r}), options={{'base_model_registration': reg}}); "
        "print(json.dumps([s['r'], sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [4, []]


def test_an_adapter_for_another_base_model_is_rejected_naming_both(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "base_model_name_or_path": "meta-llama/Llama-3"})
    err = rejection(folder, base)
    assert err.code == "wrong_base_model"
    assert "meta-llama/Llama-3" in err.message and NAME in err.message


def test_without_a_registered_base_the_check_is_the_platforms_fault(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADER_LLM_BASE_MODEL", raising=False)
    with pytest.raises(GraderFault) as info:
        Lab().check(write_adapter(tmp_path / "a"))
    assert info.value.code == "base_model_missing"


@pytest.mark.parametrize("r", [0, 65, 128])
def test_a_rank_out_of_bounds_is_rejected(tmp_path, base, r):
    folder = write_adapter(tmp_path / "a", r=max(r, 1), config=lambda c: {**c, "r": r})
    err = rejection(folder, base)
    assert err.code == "config_out_of_bounds"
    assert "'r'" in err.message and "1 to 64" in err.message


@pytest.mark.parametrize("alpha", [0.5, 1000])
def test_a_lora_alpha_out_of_bounds_is_rejected(tmp_path, base, alpha):
    err = rejection(write_adapter(tmp_path / "a", config=lambda c: {**c, "lora_alpha": alpha}), base)
    assert err.code == "config_out_of_bounds"
    assert "'lora_alpha'" in err.message


def test_target_modules_that_match_no_layer_are_rejected_naming_the_bases_layers(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "target_modules": ["c_attn"]})
    err = rejection(folder, base)
    assert err.code == "bad_target_modules"
    assert "c_attn" in err.message and "q_proj" in err.message and "down_proj" in err.message


def test_names_the_base_lacks_beside_ones_it_has_are_ignored_as_peft_ignores_them(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "target_modules": ["q_proj", "v_proj", "c_attn"]})
    assert check(folder, base)["target_modules"] == ["q_proj", "v_proj"]


def test_a_regular_expression_is_read_as_peft_reads_it(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "target_modules": r".*\.(q_proj|v_proj)"})
    assert check(folder, base)["target_modules"] == ["q_proj", "v_proj"]
    bad = write_adapter(tmp_path / "b", config=lambda c: {**c, "target_modules": "(q_proj"})
    assert rejection(bad, base).code == "bad_target_modules"


def test_all_linear_is_accepted_with_every_projection(tmp_path, base):
    seven = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    folder = write_adapter(tmp_path / "a", modules=seven, config=lambda c: {**c, "target_modules": "all-linear"})
    assert check(folder, base)["target_modules"] == sorted(seven)


def test_keys_naming_layers_beyond_the_bases_depth_are_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a")
    tensors = {
        f"base_model.model.model.layers.{i}.self_attn.{m}.lora_{ab}.weight": np.zeros(shape, np.float32)
        for i in range(LAYERS + 2)
        for m in ("q_proj", "v_proj")
        for ab, shape in (("A", (4, 64)), ("B", (SHAPES[m][2], 4)))
    }
    err = rejection(write_adapter(folder, tensors=tensors), base)
    assert err.code == "wrong_tensors"
    assert "unexpected tensor 'base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight'" in err.message


def test_layers_to_transform_beyond_the_bases_depth_is_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "layers_to_transform": [0, 7]})
    err = rejection(folder, base)
    assert err.code == "bad_config" and "[7]" in err.message and "2 layers" in err.message


def test_lora_a_of_the_wrong_input_width_for_one_module_only_is_named(tmp_path, base):
    folder = write_adapter(tmp_path / "a")
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "adapter_model.safetensors"))
    tensors["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"] = np.zeros((4, 48), np.float32)
    err = rejection(write_adapter(folder, tensors=tensors), base)
    assert err.code == "wrong_tensors"
    assert "'base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight' has shape [4, 48], expected [4, 64]" in (
        err.message
    )
    assert err.message.count("has shape") == 1


def test_modules_to_save_that_would_ship_the_embedding_matrix_is_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "modules_to_save": ["embed_tokens"]})
    err = rejection(folder, base)
    assert err.code == "unsupported_adapter_option"
    assert "modules_to_save" in err.message and "embedding matrix" in err.message


def test_a_rank_within_bounds_but_a_size_beyond_the_labs_limit_is_rejected_before_reading_weights(tmp_path, base):
    folder = write_adapter(tmp_path / "a", r=64, modules=("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"))
    assert check(folder, base)["r"] == 64  # within the default limit
    (folder / "adapter_model.safetensors").write_bytes(b"\x00" * 16)  # never read: the size is known from the config
    err = rejection(folder, base, max_adapter_mb="0.25")
    assert err.code == "adapter_too_large"
    assert "rank 64" in err.message and "400 KiB" in err.message and "at most 256 KiB" in err.message


def test_weights_whose_shapes_do_not_match_the_rank_are_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a", r=4, config=lambda c: {**c, "r": 8, "lora_alpha": 16})
    err = rejection(folder, base)
    assert err.code == "wrong_tensors"
    assert "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight" in err.message
    assert "[4, 64], expected [8, 64]" in err.message


def test_missing_layers_are_named(tmp_path, base):
    folder = write_adapter(tmp_path / "a")
    tensors = {
        f"base_model.model.model.layers.0.self_attn.{m}.lora_{ab}.weight": np.zeros(shape, np.float32)
        for m in ("q_proj", "v_proj")
        for ab, shape in (("A", (4, 64)), ("B", (SHAPES[m][2], 4)))
    }
    err = rejection(write_adapter(folder, tensors=tensors), base)
    assert err.code == "wrong_tensors"
    assert "missing tensor 'base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight'" in err.message


def test_a_full_model_instead_of_an_adapter_is_rejected(tmp_path, base):
    folder = tmp_path / "full"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"model_type": "gemma2", "architectures": ["Gemma2"]}))
    save_file({"model.embed_tokens.weight": np.zeros((10, 64), np.float32)}, str(folder / "adapter_model.safetensors"))
    err = rejection(folder, base)
    assert err.code == "not_an_adapter"
    assert "full model" in err.message


def test_full_weights_next_to_an_adapter_config_are_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a")
    tensors = {"model.layers.0.self_attn.q_proj.weight": np.zeros((64, 64), np.float32)}
    err = rejection(write_adapter(folder, tensors=tensors), base)
    assert err.code == "full_weights_not_allowed"
    assert "model.layers.0.self_attn.q_proj.weight" in err.message


def test_modules_to_save_is_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "modules_to_save": ["lm_head"]})
    err = rejection(folder, base)
    assert err.code == "unsupported_adapter_option"
    assert "modules_to_save" in err.message


def test_nan_weights_pass_the_header_check_and_fail_the_deep_one(tmp_path, base):
    folder = write_adapter(tmp_path / "a", value=float("nan"))
    assert check(folder, base)["r"] == 4
    err = rejection(folder, base, deep=True)
    assert err.code == "non_finite_weights"


def test_a_config_that_is_not_json_is_rejected(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: "{'peft_type': 'LORA',")
    err = rejection(folder, base)
    assert err.code == "bad_config"
    assert "not valid JSON" in err.message


@pytest.mark.parametrize(
    "extra",
    [
        {"trust_remote_code": True},
        {"custom_loader": {"class_path": "evil.Loader"}},
        {"notes": "load with trust_remote_code=True"},
        {"auto_map": {"AutoModel": "modeling_evil.EvilModel"}},
    ],
)
def test_keys_asking_for_custom_or_remote_code_are_rejected(tmp_path, base, extra):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, **extra})
    err = rejection(folder, base)
    assert err.code == "code_not_allowed"
    assert next(iter(extra)) in err.message


def test_auto_mapping_naming_a_module_to_import_is_rejected(tmp_path, base):
    mapping = {"base_model_class": "EvilModel", "parent_library": "evil.models"}
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "auto_mapping": mapping})
    assert rejection(folder, base).code == "unsupported_adapter_option"


def test_a_harmless_unknown_key_is_ignored_and_reported(tmp_path, base):
    folder = write_adapter(tmp_path / "a", config=lambda c: {**c, "future_flag": False})
    assert check(folder, base)["ignored_keys"] == ["future_flag"]


def test_a_pickled_weights_file_is_refused_before_reading_it(tmp_path, base):
    folder = write_adapter(tmp_path / "a")
    (folder / "adapter_model.safetensors").write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    assert rejection(folder, base).code == "pickle_not_allowed"
