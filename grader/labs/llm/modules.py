"""The table of modules LoRA may target in a base model, derived by PEFT itself from the base's config.json.

``derive_table(config)`` builds the base model's module tree on the meta device (no weights, no memory to speak of),
asks PEFT which module types it can wrap, and records, for each module it can, the tensors a LoRA adapter of rank
``r`` holds for it, their shapes with the rank dimension marked ``"r"``. It also records what PEFT's
``"all-linear"`` shorthand expands to. It imports torch, transformers and peft, so it runs in a limited child
(``python -m grader.labs.llm.modules CONFIG``) on the web side, and inside the grading box on the grader's.

``expected_tensors(table, ...)`` then says, from the table alone (the web process never imports torch), which
tensors an adapter config adapts, reading ``target_modules`` as PEFT reads it: a list matches a module by its full
name or by a dotted suffix, a string is a regular expression matched against the whole name, ``"all-linear"``
is every linear layer but the output head; ``layers_to_transform`` and ``exclude_modules`` narrow it the same way.
A test holds this reading equal to PEFT's on every family the course uses.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import Rejected

FORMAT = 1
ALL_LINEAR = "all-linear"
RANK = "r"  # the marker of the rank dimension in a tensor's shape
MAX_CONFIG_BYTES = 256 * 1024
MAX_PATTERN_CHARS = 300
PATTERN_SECONDS = 0.5  # the whole matching of one adapter's regular expression against the table
# Config keys by which a model asks to run code of its own: never honoured.
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


class BaseConfigRefused(ValueError):
    """The staff's config.json cannot be used as a base model (a plain message for the staff)."""


@dataclass(frozen=True)
class Target:
    """What an adapter config adapts: the modules PEFT wraps, or why it would refuse."""

    modules: tuple[str, ...]
    unsupported: tuple[str, ...]  # matched names PEFT cannot wrap (it would raise)


def config_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_config_bytes(data: bytes) -> dict[str, Any]:
    """A base model's config.json as uploaded by staff: a JSON object that asks for no code of its own."""
    if len(data) > MAX_CONFIG_BYTES:
        raise BaseConfigRefused(f"config.json is {len(data)} bytes; a model config is at most {MAX_CONFIG_BYTES}.")
    try:
        config = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BaseConfigRefused(f"config.json is not JSON ({exc}).")
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise BaseConfigRefused("config.json must be a JSON object naming its model_type.")
    asks = [key for key in REMOTE_CODE_KEYS if config.get(key)]
    if asks or config.get("trust_remote_code"):
        raise BaseConfigRefused(
            f"config.json asks for the model's own code ({', '.join(asks) or 'trust_remote_code'}); the platform "
            "never runs remote code, so use a model that transformers supports as it is."
        )
    return config


# ---- derivation (torch, transformers and peft; in a limited child or the grading box) -----------------------


def _no_network() -> None:
    """Nothing in the derivation has a reason to reach the network: make sure nothing does."""
    import socket

    def refuse(*_args, **_kwargs):
        raise OSError("no network while deriving a base model's modules")

    for method in ("connect", "connect_ex", "sendto", "sendmsg"):
        setattr(socket.socket, method, refuse)


def _meta_model(config: dict[str, Any]):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(config)
    model_type = fields.pop("model_type")
    try:
        cfg = AutoConfig.for_model(model_type, **fields)
    except (ValueError, KeyError) as exc:
        raise BaseConfigRefused(
            f"transformers does not know the model type {model_type!r} ({exc}); only models it supports without "
            "remote code can be base models."
        )
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(cfg, trust_remote_code=False)
    except ValueError as exc:
        raise BaseConfigRefused(f"{model_type!r} is not a causal language model transformers can build: {exc}")


def _lora_state(config: dict[str, Any], targets: Any, rank: int) -> dict[str, tuple[int, ...]]:
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    model = _meta_model(config)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=rank, target_modules=targets))
    # Only the LoRA tensors: an adapter that would also carry whole embedding matrices is refused by name.
    state = get_peft_model_state_dict(peft_model, save_embedding_layers=False)
    return {key: tuple(value.shape) for key, value in state.items()}


def _adapted_module(key: str, prefix: str) -> tuple[str, str]:
    """``base_model.model.a.b.lora_A.weight`` -> (``a.b``, ``lora_A.weight``)."""
    name = key[len(prefix) :]
    head, _, tail = name.partition(".lora_")
    return head, "lora_" + tail


def derive_table(config: dict[str, Any]) -> dict[str, Any]:
    """The module table of the base model ``config`` describes (see the module's docstring)."""
    import torch
    from peft import LoraConfig
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers

    model = _meta_model(config)
    names = [name for name, _ in model.named_modules() if name]
    by_type: dict[type, list[str]] = {}
    for name, module in model.named_modules():
        if name and any(True for _ in module.parameters(recurse=False)) and not list(module.children()):
            by_type.setdefault(type(module), []).append(name)
    wrappable: list[str] = []
    for members in by_type.values():
        try:
            _lora_state(config, [members[0]], 2)
        except (ValueError, TypeError, NotImplementedError, RuntimeError):
            continue  # PEFT has no LoRA layer for this type (norms, depthwise convolutions, ...)
        wrappable.extend(members)
    wrappable_set = set(wrappable)
    two = _lora_state(config, sorted(wrappable_set), 2)
    three = _lora_state(config, sorted(wrappable_set), 3)
    # PEFT's own prefix of the saved names ("base_model.model."), read off one of them.
    head = next(iter(two)).partition(".lora_")[0]
    prefix = head[: -len(max((n for n in wrappable_set if head.endswith("." + n) or head == n), key=len))]
    modules: dict[str, dict[str, Any]] = {}
    for key, shape in two.items():
        module, tensor = _adapted_module(key, prefix)
        marked = [RANK if a != b else a for a, b in zip(shape, three[key], strict=True)]
        entry = modules.setdefault(module, {"type": type(model.get_submodule(module)).__name__, "tensors": {}})
        entry["tensors"][tensor] = marked
    expanded = _maybe_include_all_linear_layers(LoraConfig(target_modules=ALL_LINEAR), model)
    output = model.get_output_embeddings()
    output_name = next((n for n, m in model.named_modules() if m is output), None) if output is not None else None
    layers = config.get("num_hidden_layers")
    return {
        "format": FORMAT,
        "model_type": config["model_type"],
        "num_hidden_layers": int(layers) if isinstance(layers, int) else None,
        "key_prefix": prefix,
        "modules": dict(sorted(modules.items())),
        "other_modules": sorted(set(names) - set(modules)),
        "all_linear": sorted(set(expanded.target_modules) & set(modules)),
        "output_module": output_name,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "torch": torch.__version__.split("+")[0],
    }


def peft_adapted_modules(model: Any, prefix: str = "base_model.model.") -> set[str]:
    """The layers PEFT wrapped with LoRA in ``model`` (a PeftModel), named as in the base model."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {
        name[len(prefix) :] if name.startswith(prefix) else name
        for name, module in model.named_modules()
        if isinstance(module, BaseTunerLayer)
    }


def table_of_folder(base_dir: Path) -> dict[str, Any]:
    """The table of a provisioned base model folder (used inside the grading box)."""
    return derive_table(read_config_bytes((Path(base_dir) / "config.json").read_bytes()))


# ---- reading an adapter config against the table (pure Python; the web process) ----------------------------


def _compile(pattern: str):
    import regex

    if len(pattern) > MAX_PATTERN_CHARS:
        raise Rejected(
            "bad_target_modules",
            f"target_modules is a pattern of {len(pattern)} characters; at most {MAX_PATTERN_CHARS}.",
        )
    try:
        return regex.compile(pattern, flags=regex.VERSION0)
    except regex.error as exc:
        raise Rejected("bad_target_modules", f"target_modules is not a valid regular expression: {exc}.")


def _full_matches(pattern: str, names: Iterable[str]) -> set[str]:
    """The names ``pattern`` matches whole, as PEFT's ``re.fullmatch``. The whole matching has a time budget: a
    pattern that backtracks without end is refused rather than allowed to hold the web process."""
    import time

    compiled = _compile(pattern)
    deadline = time.monotonic() + PATTERN_SECONDS
    matched = set()
    try:
        for name in names:
            if compiled.fullmatch(name, timeout=max(0.001, deadline - time.monotonic())):
                matched.add(name)
    except TimeoutError:
        raise Rejected(
            "bad_target_modules", "target_modules is a regular expression too costly to match; simplify it."
        ) from None
    return matched


def _suffix_matches(targets: Iterable[str], names: Iterable[str]) -> set[str]:
    wanted = set(targets)
    return {name for name in names if name in wanted or any(name.endswith("." + t) for t in wanted)}


def _layer_index(name: str, layers_pattern: Any) -> int | None:
    import re

    if not layers_pattern:
        match = re.match(r".*?\.[^.]*\.(?P<idx>\d+)\.", name)
    else:
        patterns = [layers_pattern] if isinstance(layers_pattern, str) else list(layers_pattern)
        match = None
        for pattern in patterns:
            match = re.match(rf"(?:^|.*?\.){re.escape(pattern)}\.(?P<idx>\d+)\.", name)
            if match:
                break
    return int(match.group("idx")) if match else None


def adapted_modules(table: dict[str, Any], cfg: dict[str, Any]) -> Target:
    """The modules an adapter config adapts on the table's base, read the way PEFT reads the config."""
    names = list(table["modules"]) + list(table["other_modules"])
    targets = cfg.get("target_modules")
    if isinstance(targets, str) and targets.lower() == ALL_LINEAR:
        matched = set(table["all_linear"])
    elif isinstance(targets, str):
        matched = _full_matches(targets, names)
    else:
        matched = _suffix_matches(targets, names)
        layers = cfg.get("layers_to_transform")
        if layers is not None and layers != []:
            wanted = {layers} if isinstance(layers, int) else set(layers)
            matched = {n for n in matched if _layer_index(n, cfg.get("layers_pattern")) in wanted}
    excluded = cfg.get("exclude_modules")
    if excluded:
        drop = _full_matches(excluded, matched) if isinstance(excluded, str) else _suffix_matches(excluded, matched)
        matched -= drop
    supported = tuple(sorted(n for n in matched if n in table["modules"]))
    unsupported = tuple(sorted(n for n in matched if n not in table["modules"]))
    return Target(modules=supported, unsupported=unsupported)


def expected_tensors(table: dict[str, Any], modules: Iterable[str], rank: int) -> dict[str, tuple[int, ...]]:
    """The tensors (name -> shape) an adapter of ``rank`` on ``modules`` holds, as PEFT saves them."""
    prefix = table["key_prefix"]
    out: dict[str, tuple[int, ...]] = {}
    for module in modules:
        for tensor, shape in table["modules"][module]["tensors"].items():
            out[f"{prefix}{module}.{tensor}"] = tuple(rank if d == RANK else int(d) for d in shape)
    return out


def short_names(modules: Iterable[str]) -> list[str]:
    """The distinct last parts of module names, for a summary ("q_proj", "w1", ...)."""
    return sorted({m.rsplit(".", 1)[-1] for m in modules})


def main(argv: list[str]) -> int:
    """``python -m grader.labs.llm.modules CONFIG``: print the table as one JSON line, or the refusal."""
    _no_network()
    try:
        config = read_config_bytes(Path(argv[0]).read_bytes())
        table = derive_table(config)
    except BaseConfigRefused as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 0
    print(json.dumps({"ok": True, "table": table}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
