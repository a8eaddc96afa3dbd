"""Checks of a Lab 3 LoRA adapter (PEFT format) against the course's base model, from JSON and headers only."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.configfile import float_in, int_in, read_json
from grader.errors import Rejected
from grader.safetensors_io import TensorInfo, expect_tensors, read_header

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
BASE_NAME_FILE = "course_base_model.json"  # written beside a base model to record the name adapters must name

RANK_BOUNDS = (1, 64)
ALPHA_BOUNDS = (1.0, 512.0)
DROPOUT_BOUNDS = (0.0, 1.0)
MAX_WEIGHTS_BYTES = 512 * 1024 * 1024
WEIGHT_DTYPES = ("F32", "F16", "BF16")

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
ALLOWED_MODULES = ATTENTION_MODULES + MLP_MODULES

SAVE_HINT = (
    "Save the adapter with `model.save_pretrained(folder)` on your PeftModel (LoRA) and upload the "
    f"{CONFIG_FILE} and {WEIGHTS_FILE} it writes."
)

# Keys of PEFT's LoraConfig that are harmless here whatever their value: they only steer training or are
# overwritten before loading.
PASSIVE_KEYS = {
    "base_model_name_or_path",
    "peft_type",
    "task_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "inference_mode",
    "init_lora_weights",
    "use_rslora",
    "peft_version",
    "revision",
    "ensure_weight_tying",
    "qalora_group_size",
    "layers_to_transform",
    "layers_pattern",
}
# Keys that would add tensors, change the base model, or name code to import; each must keep its default.
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "modules_to_save": (None, []),
    "auto_mapping": (None, {}),
    "alpha_pattern": ({}, None),
    "rank_pattern": ({}, None),
    "bias": ("none",),
    "fan_in_fan_out": (False,),
    "use_dora": (False, None),
    "lora_bias": (False, None),
    "use_qalora": (False, None),
    "use_bdlora": (None, False),
    "megatron_config": (None,),
    "megatron_core": ("megatron.core", None),
    "loftq_config": ({}, None),
    "layer_replication": (None,),
    "target_parameters": (None, []),
    "exclude_modules": (None, []),
    "trainable_token_indices": (None,),
    "alora_invocation_tokens": (None,),
    "arrow_config": (None,),
    "corda_config": (None,),
    "eva_config": (None,),
    "kasa_config": (None,),
    "lora_ga_config": (None,),
    "monteclora_config": (None,),
    "velora_config": (None,),
    "runtime_config": (None, {}, {"ephemeral_gpu_offload": False}),
}
KNOWN_KEYS = PASSIVE_KEYS | set(NEUTRAL_VALUES)
# An unknown key is ignored unless it (or a value below it) points at code to run.
CODE_HINTS = re.compile(r"remote_code|auto_map|custom_code|\bcode\b|\.py\b|import|module_path|class_path", re.I)

INIT_VALUES = (True, False, "gaussian")


@dataclass(frozen=True)
class BaseSpec:
    """The shapes of the base model's projection layers that LoRA may target."""

    name: str
    num_layers: int
    hidden: int
    q_out: int  # num_attention_heads * head_dim
    kv_out: int  # num_key_value_heads * head_dim
    intermediate: int
    modules: tuple[str, ...] = ALLOWED_MODULES
    path: Path | None = None  # the folder holding the weights, None for a shape-only spec

    def in_out(self, module: str) -> tuple[int, int]:
        return {
            "q_proj": (self.hidden, self.q_out),
            "k_proj": (self.hidden, self.kv_out),
            "v_proj": (self.hidden, self.kv_out),
            "o_proj": (self.q_out, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }[module]


# The course's production base model; its shapes let the web check uploads without the weights at hand.
GEMMA_2_2B_IT = BaseSpec(
    name="google/gemma-2-2b-it", num_layers=26, hidden=2304, q_out=8 * 256, kv_out=4 * 256, intermediate=9216
)


def read_base_spec(base_dir: Path | str, *, name: str | None = None) -> BaseSpec:
    """The spec of a provisioned base model folder (staff-provided, so trusted) from its config.json."""
    base_dir = Path(base_dir)
    cfg_path = base_dir / "config.json"
    if not cfg_path.is_file():
        from grader.errors import GraderFault

        raise GraderFault("base_model_missing", f"no base model at {base_dir} (config.json is missing)")
    cfg = json.loads(cfg_path.read_text())
    if name is None:
        name_file = base_dir / BASE_NAME_FILE
        name = json.loads(name_file.read_text())["name"] if name_file.is_file() else GEMMA_2_2B_IT.name
    heads = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or cfg["hidden_size"] // heads)
    return BaseSpec(
        name=name,
        num_layers=int(cfg["num_hidden_layers"]),
        hidden=int(cfg["hidden_size"]),
        q_out=heads * head_dim,
        kv_out=int(cfg.get("num_key_value_heads") or heads) * head_dim,
        intermediate=int(cfg["intermediate_size"]),
        path=base_dir,
    )


def read_adapter_config(artifact_dir: Path) -> dict[str, Any]:
    cfg = read_json(Path(artifact_dir) / CONFIG_FILE, name=CONFIG_FILE)
    if "peft_type" not in cfg and ("model_type" in cfg or "architectures" in cfg):
        raise Rejected(
            "not_an_adapter",
            f"{CONFIG_FILE} describes a full model (it has 'model_type'/'architectures'), not a LoRA adapter. "
            f"This lab takes only the small adapter, never the whole model's weights. {SAVE_HINT}",
        )
    return cfg


def _mentions_code(value: Any) -> bool:
    return bool(CODE_HINTS.search(json.dumps(value)))


def validate_adapter_config(cfg: dict[str, Any], spec: BaseSpec) -> dict[str, Any]:
    """Check every field that matters; returns the normalised settings the rest of the check uses."""
    for key in sorted(cfg):
        asks_code = "remote_code" in json.dumps({key: cfg[key]}).lower()
        if asks_code or (key not in KNOWN_KEYS and (_mentions_code(key) or _mentions_code(cfg[key]))):
            raise Rejected(
                "code_not_allowed",
                f"{CONFIG_FILE} has the key {key!r}, which asks for custom or remote code; the grader never runs "
                f"code from a submission. Remove it. {SAVE_HINT}",
            )
    if cfg.get("peft_type") != "LORA":
        raise Rejected(
            "not_lora", f"{CONFIG_FILE} says peft_type {cfg.get('peft_type')!r}; this lab takes LoRA adapters ('LORA')."
        )
    if cfg.get("task_type") not in (None, "CAUSAL_LM"):
        raise Rejected("bad_config", f"{CONFIG_FILE}: task_type must be 'CAUSAL_LM', not {cfg.get('task_type')!r}.")
    base = cfg.get("base_model_name_or_path")
    if base != spec.name:
        raise Rejected(
            "wrong_base_model",
            f"This adapter was made for the base model {base!r}; this lab's base model is {spec.name!r}. "
            "Train your adapter on the course's base model.",
        )
    for key, allowed in NEUTRAL_VALUES.items():
        if key in cfg and cfg[key] not in allowed:
            raise Rejected(
                "unsupported_adapter_option",
                f"{CONFIG_FILE}: {key!r} is {json.dumps(cfg[key])[:80]}; this lab accepts only plain LoRA, "
                f"so leave it at {json.dumps(allowed[0])}.",
            )
    r = int_in(cfg, "r", *RANK_BOUNDS)
    alpha = float_in(cfg, "lora_alpha", *ALPHA_BOUNDS)
    if "lora_dropout" in cfg:
        float_in(cfg, "lora_dropout", *DROPOUT_BOUNDS)
    for flag in ("use_rslora", "inference_mode", "ensure_weight_tying"):
        if flag in cfg and not isinstance(cfg[flag], bool):
            raise Rejected("bad_config", f"{CONFIG_FILE}: {flag!r} must be true or false.")
    if cfg.get("init_lora_weights", True) not in INIT_VALUES:
        raise Rejected(
            "unsupported_adapter_option",
            f"{CONFIG_FILE}: init_lora_weights {cfg['init_lora_weights']!r} changes the base model when loaded; "
            "use true.",
        )
    targets = cfg.get("target_modules")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise Rejected(
            "bad_config",
            f'{CONFIG_FILE}: target_modules must be a list of module names such as ["q_proj", "v_proj"] '
            "(patterns are not accepted).",
        )
    unknown = sorted(set(targets) - set(ALLOWED_MODULES))
    if unknown:
        raise Rejected(
            "bad_target_modules",
            f"{CONFIG_FILE}: target_modules {unknown} are not allowed; choose among {', '.join(ALLOWED_MODULES)}.",
        )
    absent = sorted(set(targets) - set(spec.modules))
    if absent:
        raise Rejected("bad_target_modules", f"The base model has no modules named {absent}.")
    layers = cfg.get("layers_to_transform")
    if layers is None:
        layer_ids = list(range(spec.num_layers))
    else:
        if isinstance(layers, int) and not isinstance(layers, bool):
            layers = [layers]
        if (
            not isinstance(layers, list)
            or not layers
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < spec.num_layers for i in layers)
        ):
            raise Rejected(
                "bad_config",
                f"{CONFIG_FILE}: layers_to_transform must list layer numbers from 0 to {spec.num_layers - 1}.",
            )
        layer_ids = sorted(set(layers))
    if cfg.get("layers_pattern") not in (None, "layers", ["layers"]):
        raise Rejected("bad_config", f"{CONFIG_FILE}: layers_pattern must be 'layers' or absent.")
    return {
        "r": r,
        "lora_alpha": alpha,
        "target_modules": sorted(set(targets)),
        "layers": layer_ids,
        "use_rslora": bool(cfg.get("use_rslora", False)),
        "ignored_keys": sorted(k for k in cfg if k not in KNOWN_KEYS),
    }


def expected_tensors(spec: BaseSpec, settings: dict[str, Any]) -> dict[str, tuple[str, ...] | tuple[int, ...]]:
    r = settings["r"]
    out: dict[str, Any] = {}
    for i in settings["layers"]:
        for module in settings["target_modules"]:
            group = "self_attn" if module in ATTENTION_MODULES else "mlp"
            fan_in, fan_out = spec.in_out(module)
            prefix = f"base_model.model.model.layers.{i}.{group}.{module}"
            out[f"{prefix}.lora_A.weight"] = (WEIGHT_DTYPES, (r, fan_in))
            out[f"{prefix}.lora_B.weight"] = (WEIGHT_DTYPES, (fan_out, r))
    return out


def _reject_full_weights(header: dict[str, TensorInfo]) -> None:
    full = sorted(n for n in header if ".lora_" not in n)
    if full:
        raise Rejected(
            "full_weights_not_allowed",
            f"{WEIGHTS_FILE} holds weights that are not LoRA adapter weights (e.g. {full[0]!r}): it looks like a "
            f"full model or extra trained modules. Upload only the LoRA adapter. {SAVE_HINT}",
        )


def check_adapter(artifact_dir: Path | str, spec: BaseSpec, *, deep: bool = False) -> dict[str, Any]:
    """Validate the adapter's config and weights against ``spec``; returns the summary shown to the student."""
    artifact_dir = Path(artifact_dir)
    cfg = read_adapter_config(artifact_dir)
    weights = artifact_dir / WEIGHTS_FILE
    if weights.is_file() and weights.stat().st_size > MAX_WEIGHTS_BYTES:
        raise Rejected(
            "artifact_too_large",
            f"{WEIGHTS_FILE} is {weights.stat().st_size // (1024 * 1024)} MiB; an adapter for this lab is at most "
            f"{MAX_WEIGHTS_BYTES // (1024 * 1024)} MiB. Upload only the LoRA adapter. {SAVE_HINT}",
        )
    # At most A and B of each module LoRA may target in each layer; the spare lets a file of other weights be
    # refused by name below.
    header = read_header(weights, max_tensors=2 * spec.num_layers * len(spec.modules) + 64)
    _reject_full_weights(header)
    settings = validate_adapter_config(cfg, spec)
    expect_tensors(header, expected_tensors(spec, settings))
    if deep:
        from grader.safetensors_io import ensure_finite, load_tensors

        ensure_finite(load_tensors(weights))
    return {
        "base_model": spec.name,
        "r": settings["r"],
        "lora_alpha": settings["lora_alpha"],
        "target_modules": settings["target_modules"],
        "layers": len(settings["layers"]),
        "parameters": sum(info.numel for info in header.values()),
        "ignored_keys": settings["ignored_keys"],
    }


def sanitized_config(cfg: dict[str, Any], settings_keys: set[str]) -> dict[str, Any]:
    """The config handed to PEFT: only keys it knows, neutral values forced, nothing that names code."""
    clean = {k: v for k, v in cfg.items() if k in KNOWN_KEYS and k in settings_keys}
    clean["init_lora_weights"] = False  # weights are loaded right after; no initialisation should touch the base
    clean["inference_mode"] = True
    clean["revision"] = None
    for key in ("auto_mapping", "megatron_config", "modules_to_save"):
        if key in settings_keys:
            clean[key] = None
    if "megatron_core" in settings_keys:
        clean["megatron_core"] = None
    return clean
