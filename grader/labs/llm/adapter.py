"""Checks of a Lab 3 LoRA adapter (PEFT format) against the course's base model, from JSON and headers only."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.configfile import float_in, int_in, read_json
from grader.errors import Rejected
from grader.labs.llm.modules import adapted_modules, short_names
from grader.labs.llm.modules import expected_tensors as modules_tensors
from grader.safetensors_io import TensorInfo, expect_tensors, read_header

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
BASE_NAME_FILE = "course_base_model.json"  # written beside a base model to record the name adapters must name

RANK_BOUNDS = (1, 64)
ALPHA_BOUNDS = (1.0, 512.0)
DROPOUT_BOUNDS = (0.0, 1.0)
MAX_WEIGHTS_BYTES = 512 * 1024 * 1024
DEFAULT_ADAPTER_BYTES = 256 * 1024 * 1024  # a lab's option max_adapter_mb sets its own
HEADER_ALLOWANCE = 1024 * 1024  # a safetensors file is its tensors plus a header of at most this
WEIGHT_DTYPES = ("F32", "F16", "BF16")

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
    "exclude_modules",
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
    """The base model adapters must fit: its name, the module table PEFT derived from its config, and hashes."""

    name: str
    table: dict[str, Any]
    config_sha256: str
    path: Path | None = None  # the folder holding the weights; None on the web, which has only the table
    weights_sha256: str = ""

    @property
    def model_type(self) -> str:
        return str(self.table.get("model_type", ""))

    def identity(self) -> dict[str, str]:
        """What a result records of the base it was graded on."""
        return {
            "name": self.name,
            "model_type": self.model_type,
            "config_sha256": self.config_sha256,
            "weights_sha256": self.weights_sha256,
        }


def spec_from_registration(registered: dict[str, Any]) -> BaseSpec:
    """The spec of a base model registered with the lab: ``{"name", "config_sha256", "table"}`` (the web side)."""
    return BaseSpec(name=registered["name"], table=registered["table"], config_sha256=registered["config_sha256"])


def weights_sha256(base_dir: Path) -> str:
    """The sha256 of the weights' index: the shard index where there is one, else every safetensors header."""
    base_dir = Path(base_dir)
    index = base_dir / "model.safetensors.index.json"
    digest = hashlib.sha256()
    if index.is_file():
        digest.update(index.read_bytes())
        return digest.hexdigest()
    for path in sorted(base_dir.glob("*.safetensors")):
        with path.open("rb") as handle:
            raw = handle.read(8)
            size = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            digest.update(path.name.encode() + b"\0" + raw + handle.read(min(size, 100 * 1024 * 1024)))
    return digest.hexdigest()


def read_base_spec(base_dir: Path | str, *, name: str | None = None) -> BaseSpec:
    """The spec of a provisioned base model folder (staff-provided), its table derived here by PEFT.

    This imports torch, transformers and peft: it runs in the grading box or the grader's command line.
    """
    from grader.errors import GraderFault
    from grader.labs.llm.modules import BaseConfigRefused, config_sha256, derive_table, read_config_bytes

    base_dir = Path(base_dir)
    cfg_path = base_dir / "config.json"
    if not cfg_path.is_file():
        raise GraderFault("base_model_missing", f"no base model at {base_dir} (config.json is missing)")
    raw = cfg_path.read_bytes()
    try:
        table = derive_table(read_config_bytes(raw))
    except BaseConfigRefused as exc:
        raise GraderFault("base_model_refused", f"the base model at {base_dir} cannot be used: {exc}")
    if name is None:
        name_file = base_dir / BASE_NAME_FILE
        name = json.loads(name_file.read_text())["name"] if name_file.is_file() else base_dir.name
    return BaseSpec(
        name=name, table=table, config_sha256=config_sha256(raw), path=base_dir, weights_sha256=weights_sha256(base_dir)
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
    if cfg.get("modules_to_save") not in NEUTRAL_VALUES["modules_to_save"]:
        raise Rejected(
            "unsupported_adapter_option",
            f"{CONFIG_FILE}: modules_to_save is {json.dumps(cfg['modules_to_save'])[:80]}: it would ship whole trained "
            "copies of those layers (an embedding matrix is most of a model), not a LoRA adapter. Leave it at null.",
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
    valid_list = isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)
    if not (valid_list or (isinstance(targets, str) and targets)):
        raise Rejected(
            "bad_config",
            f'{CONFIG_FILE}: target_modules must be a list of module names such as ["q_proj", "v_proj"], a regular '
            'expression, or "all-linear".',
        )
    depth = spec.table.get("num_hidden_layers")
    layers = cfg.get("layers_to_transform")
    if layers is not None:
        listed = [layers] if isinstance(layers, int) and not isinstance(layers, bool) else layers
        if not isinstance(listed, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in listed):
            raise Rejected(
                "bad_config", f"{CONFIG_FILE}: layers_to_transform must be a layer number or a list of them."
            )
        beyond = sorted(i for i in listed if i < 0 or (depth is not None and i >= depth))
        if beyond:
            raise Rejected(
                "bad_config",
                f"{CONFIG_FILE}: layers_to_transform names layers {beyond}, but {spec.name} has {depth} layers "
                f"(0 to {depth - 1})."
                if depth
                else f"{CONFIG_FILE}: layers_to_transform names negative layers.",
            )
    for key in ("layers_pattern", "exclude_modules"):
        value = cfg.get(key)
        if value is not None and not (
            isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise Rejected("bad_config", f"{CONFIG_FILE}: {key} must be a string or a list of strings.")
    target = adapted_modules(spec.table, cfg)
    if target.unsupported:
        kinds = ", ".join(target.unsupported[:3])
        raise Rejected(
            "bad_target_modules",
            f"{CONFIG_FILE}: target_modules matches {kinds}{' …' if len(target.unsupported) > 3 else ''}, which "
            "LoRA cannot adapt (only layers such as linear projections and embeddings). Name the layers themselves.",
        )
    if not target.modules:
        raise Rejected(
            "bad_target_modules",
            f"{CONFIG_FILE}: target_modules {json.dumps(targets)[:120]} matches no layer of {spec.name}; its layers "
            f"LoRA may adapt are named {', '.join(short_names(spec.table['modules']))}.",
        )
    return {
        "r": r,
        "lora_alpha": alpha,
        "modules": list(target.modules),
        "target_modules": short_names(target.modules),
        "use_rslora": bool(cfg.get("use_rslora", False)),
        "ignored_keys": sorted(k for k in cfg if k not in KNOWN_KEYS),
    }


def expected_tensors(spec: BaseSpec, settings: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    """The tensors, as PEFT names and shapes them, of an adapter with ``settings`` on ``spec``'s base."""
    shapes = modules_tensors(spec.table, settings["modules"], settings["r"])
    return {name: (WEIGHT_DTYPES, shape) for name, shape in shapes.items()}


def adapter_bytes(expected: dict[str, tuple[tuple[str, ...], tuple[int, ...]]]) -> int:
    """The size of those tensors in float32, the largest dtype accepted."""
    return 4 * sum(math.prod(shape) for _, shape in expected.values())


def adapted_by_config(artifact_dir: Path | str, spec: BaseSpec) -> set[str]:
    """The full names of the layers the artifact's config adapts on ``spec``'s base."""
    return set(validate_adapter_config(read_adapter_config(Path(artifact_dir)), spec)["modules"])


def _reject_full_weights(header: dict[str, TensorInfo]) -> None:
    full = sorted(n for n in header if ".lora_" not in n)
    if full:
        raise Rejected(
            "full_weights_not_allowed",
            f"{WEIGHTS_FILE} holds weights that are not LoRA adapter weights (e.g. {full[0]!r}): it looks like a "
            f"full model or extra trained modules. Upload only the LoRA adapter. {SAVE_HINT}",
        )


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def check_adapter(
    artifact_dir: Path | str, spec: BaseSpec, *, deep: bool = False, max_bytes: int = DEFAULT_ADAPTER_BYTES
) -> dict[str, Any]:
    """Validate the adapter's config and weights against ``spec``; returns the summary shown to the student.

    ``max_bytes`` bounds the adapter a config may describe (the lab's limit), before any weight is read.
    """
    artifact_dir = Path(artifact_dir)
    cfg = read_adapter_config(artifact_dir)
    weights = artifact_dir / WEIGHTS_FILE
    limit = min(max_bytes, MAX_WEIGHTS_BYTES)
    if weights.is_file() and weights.stat().st_size > limit + HEADER_ALLOWANCE:
        raise Rejected(
            "artifact_too_large",
            f"{WEIGHTS_FILE} is {weights.stat().st_size // (1024 * 1024)} MiB; an adapter for this lab is at most "
            f"{limit // (1024 * 1024)} MiB. Upload only the LoRA adapter. {SAVE_HINT}",
        )
    settings = validate_adapter_config(cfg, spec)
    expected = expected_tensors(spec, settings)
    size = adapter_bytes(expected)
    if size > limit:
        raise Rejected(
            "adapter_too_large",
            f"An adapter of rank {settings['r']} on {len(settings['modules'])} layers of {spec.name} holds "
            f"{_size(size)} of weights; this lab takes at most {_size(limit)}. Lower the rank or adapt fewer layers.",
        )
    header = read_header(weights, max_tensors=len(expected) + 64)
    _reject_full_weights(header)
    expect_tensors(header, expected)
    if deep:
        from grader.safetensors_io import ensure_finite, load_tensors

        ensure_finite(load_tensors(weights))
    return {
        "base_model": spec.name,
        "base_model_type": spec.model_type,
        "r": settings["r"],
        "lora_alpha": settings["lora_alpha"],
        "target_modules": settings["target_modules"],
        "adapted_modules": len(settings["modules"]),
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
