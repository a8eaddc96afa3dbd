"""Lab 3's model side: loading base+adapter offline, response cross-entropy, batched generation, LoRA training."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Nothing is ever fetched from a model hub: set before transformers and peft are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig  # noqa: E402

from grader.labs.llm.adapter import CONFIG_FILE, WEIGHTS_FILE, read_adapter_config, sanitized_config  # noqa: E402
from grader.labs.llm.data import Pair  # noqa: E402

_SENTINEL = "\u2063answer\u2063"  # an answer no template writes by itself, to find what follows an answer
MAX_SEQ_TOKENS = 384  # prompt + answer; longer answers are cut, the same way for every submission
EVAL_BATCH = 8
GEN_BATCH = 16
MAX_NEW_TOKENS = 48


@dataclass(frozen=True)
class Decoding:
    """How answers are generated for the style score: greedy, so that a result is repeatable, with a mild
    repetition penalty and no 4-gram said twice, as model vendors advise for their small chat models (LFM2's
    card asks for a penalty of 1.05): plain greedy decoding loops on small models, whichever adapter they carry."""

    repetition_penalty: float = 1.15
    no_repeat_ngram_size: int = 4

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Decoding:
        """The lab's options ``repetition_penalty`` (1-2; 1 turns it off) and ``no_repeat_ngram_size`` (0-16; 0
        turns it off), else the defaults; a value out of range is the course's configuration error."""
        options = options or {}
        default = cls()
        try:
            penalty = float(options.get("repetition_penalty", default.repetition_penalty))
            ngram = int(options.get("no_repeat_ngram_size", default.no_repeat_ngram_size))
        except (TypeError, ValueError):
            raise ValueError("repetition_penalty must be a number and no_repeat_ngram_size a whole number")
        if not 1.0 <= penalty <= 2.0:
            raise ValueError(f"repetition_penalty must lie between 1 and 2, not {penalty}")
        if not 0 <= ngram <= 16:
            raise ValueError(f"no_repeat_ngram_size must lie between 0 and 16, not {ngram}")
        return cls(repetition_penalty=penalty, no_repeat_ngram_size=ngram)

    def to_json(self) -> dict[str, Any]:
        return {"strategy": "greedy", **asdict(self)}


def load_base(base_dir: Path, device: str) -> tuple[Any, Any]:
    """The base model (float32, eval mode) and its tokenizer from a local folder; no hub, no remote code."""
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir), local_files_only=True, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(
        str(base_dir),
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=True,
        dtype=torch.float32,
        attn_implementation="eager",  # Gemma 2's logit soft-capping is exact only in eager attention
    )
    model.to(device).eval()
    return model, tokenizer


def attach_adapter(model: Any, artifact_dir: Path) -> Any:
    """Wrap ``model`` with the checked adapter, reading exactly the two artifact files and nothing else."""
    from peft import LoraConfig, PeftModel

    cfg = read_adapter_config(artifact_dir)
    known = {f for f in LoraConfig.__dataclass_fields__}
    clean = sanitized_config(cfg, known)
    with tempfile.TemporaryDirectory(prefix="llm-adapter-") as tmp:
        private = Path(tmp)
        # A private copy: PEFT sees a folder holding the weights and a config rewritten by us, so no other file
        # of the artifact folder (a pickle, a link) can be picked up.
        shutil.copyfile(artifact_dir / WEIGHTS_FILE, private / WEIGHTS_FILE, follow_symlinks=False)
        (private / CONFIG_FILE).write_text(json.dumps(clean))
        config = LoraConfig(**{k: v for k, v in clean.items() if k not in ("peft_type", "peft_version")})
        peft_model = PeftModel.from_pretrained(
            model, str(private), config=config, is_trainable=False, local_files_only=True, use_safetensors=True
        )
    return peft_model.eval()


@contextmanager
def base_only(model: Any) -> Iterator[None]:
    """Run ``model`` without its adapter (a plain model passes through)."""
    if hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield
    else:
        yield


def prompt_text(tokenizer: Any, prompt: str) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def turn_end(tokenizer: Any) -> str:
    """What the base model's chat template writes right after an assistant's answer (Gemma's ``<end_of_turn>``,
    LFM2's and Qwen's ``<|im_end|>``), read off the template itself so that every family is scored alike."""
    cached = getattr(tokenizer, "_course_turn_end", None)
    if cached is None:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "?"}, {"role": "assistant", "content": _SENTINEL}], tokenize=False
        )
        cached = text.rpartition(_SENTINEL)[2].strip() if _SENTINEL in text else ""
        tokenizer._course_turn_end = cached
    return cached


def end_of_turn_ids(tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the template's end-of-turn token, and the end-of-sequence token."""
    ids = [int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else []
    suffix = turn_end(tokenizer)
    if suffix:
        first = tokenizer(suffix, add_special_tokens=False)["input_ids"][:1]
        ids = [int(i) for i in first if int(i) not in ids] + ids
    return ids


def encode_pair(tokenizer: Any, pair: Pair, *, max_tokens: int = MAX_SEQ_TOKENS) -> tuple[list[int], int]:
    """Token ids of prompt+answer in the chat format and how many leading tokens are the prompt.

    The answer's tokens end with the template's end-of-turn marker, so stopping at the right place is part of the
    score.
    """
    prompt_ids = tokenizer(prompt_text(tokenizer, pair.prompt), add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(pair.answer.strip() + turn_end(tokenizer), add_special_tokens=False)["input_ids"]
    ids = (list(prompt_ids) + list(answer_ids))[:max_tokens]
    return ids, len(prompt_ids)


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _padded(encoded: Sequence[tuple[list[int], int]], pad_id: int, device: str):
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(ids)] = 1
        labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return input_ids.to(device), mask.to(device), labels.to(device)


def _response_nll(model: Any, input_ids, mask, labels) -> tuple[Any, int]:
    logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    nll = torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="sum")
    return nll, int((shift_labels != -100).sum())


@torch.no_grad()
def response_cross_entropy(model: Any, tokenizer: Any, pairs: Sequence[Pair], *, device: str) -> float:
    """Mean cross-entropy (nats per token) of the answers' tokens given their prompts; padding and prompts masked."""
    encoded = [encode_pair(tokenizer, p) for p in pairs]
    total, count = 0.0, 0
    for batch in _batches(encoded, EVAL_BATCH):
        nll, n = _response_nll(model, *_padded(batch, tokenizer.pad_token_id, device))
        total += float(nll)
        count += n
    return total / max(count, 1)


def generation_config(
    tokenizer: Any, max_new_tokens: int = MAX_NEW_TOKENS, decoding: Decoding | None = None
) -> GenerationConfig:
    decoding = decoding or Decoding()
    return GenerationConfig(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        repetition_penalty=decoding.repetition_penalty,
        no_repeat_ngram_size=decoding.no_repeat_ngram_size,
        eos_token_id=end_of_turn_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


@torch.no_grad()
def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    device: str,
    max_new_tokens: int = MAX_NEW_TOKENS,
    decoding: Decoding | None = None,
) -> list[str]:
    """Greedy answers in the chat format (``decoding``'s penalties applied), in fixed batches with left padding."""
    config = generation_config(tokenizer, max_new_tokens, decoding)
    tokenizer.padding_side = "left"
    answers: list[str] = []
    for batch in _batches(list(prompts), GEN_BATCH):
        enc = tokenizer(
            [prompt_text(tokenizer, p) for p in batch], add_special_tokens=False, padding=True, return_tensors="pt"
        ).to(device)
        out = model.generate(**enc, generation_config=config)
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        answers.extend(t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return answers


def train_on_pairs(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[Pair],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_tokens: int = 160,
    device: str = "cpu",
) -> list[float]:
    """A plain AdamW loop on the response tokens of ``pairs``; returns the loss of each step."""
    encoded = [encode_pair(tokenizer, p, max_tokens=max_tokens) for p in pairs]
    return train_on_encoded(
        model, tokenizer, encoded, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device
    )


def encode_text(tokenizer: Any, text: str, *, max_tokens: int) -> tuple[list[int], int]:
    """A plain text as ``tokenizer(text)`` encodes it, every token after <bos> learnt (no chat format)."""
    ids = list(tokenizer(text)["input_ids"])[:max_tokens]
    return ids, 1 if ids and ids[0] == tokenizer.bos_token_id else 0


def train_on_encoded(
    model: Any,
    tokenizer: Any,
    encoded: Sequence[tuple[list[int], int]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
) -> list[float]:
    """AdamW on sequences given as (token ids, how many leading tokens are context and not learnt)."""
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20) * (1 - s / (steps + 1)))
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(encoded), (batch_size,), generator=generator).tolist()
        nll, n = _response_nll(model, *_padded([encoded[i] for i in idx], tokenizer.pad_token_id, device))
        loss = nll / max(n, 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
