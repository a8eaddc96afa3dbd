"""Tiny chat models that stand in for the course's base models in tests and the demo, built from scratch offline.

One per family the course has used: Gemma-2 (Gemma-2-2B-it, the 2025 edition), LFM2 (LiquidAI's LFM2-1.2B, the 2026
notebook: short-convolution blocks beside attention blocks) and Qwen3 (a Llama-style decoder). Each is the family's
own transformers class at a few hundred thousand parameters, with one byte-level BPE tokenizer and chat template
shared by all, so that the grader's code paths are exercised family by family without any download.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from grader.labs.llm.adapter import BASE_NAME_FILE
from grader.labs.llm.data import Pair

DEFAULT_FAMILY = "gemma2"
# family -> (the name adapters give as base_model_name_or_path, the folder under the base models' folder)
FAMILIES = {
    "gemma2": ("course/tiny-gemma-2", "tiny-gemma-2"),
    "lfm2": ("course/tiny-lfm2", "tiny-lfm2"),
    "qwen3": ("course/tiny-qwen3", "tiny-qwen3"),
}
TINY_NAME, TINY_DIRNAME = FAMILIES[DEFAULT_FAMILY]
BUILD = 3  # bumped whenever a tiny base built earlier would differ; such a folder is then rebuilt
# Large enough that the texts' common words are whole tokens: a smaller vocabulary leaves a model this small to spell
# words out of pieces, and it makes words up ("the cololol").
VOCAB_SIZE = 4096
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]  # ids 0..5, as in Gemma
# Gemma's turn format: roles "user" and "model", each turn closed by <end_of_turn> and a newline.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PRETRAIN_STEPS = 1500  # about a CPU minute and a half
PRETRAIN_BATCH = 8
PRETRAIN_TOKENS = 96


def train_tokenizer(texts: Sequence[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer with Gemma's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # Like the course's real tokenizers, a plain ``tokenizer(text)`` starts with <bos>: the notebook's test
    # loglikelihood is computed on exactly that (the chat paths add no special tokens of their own).
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", SPECIAL_TOKENS.index("<bos>"))]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
        model_max_length=512,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def is_current(base_dir: Path, *, seed: int, steps: int = PRETRAIN_STEPS) -> bool:
    """Whether ``base_dir`` holds a tiny base built by this code with ``seed`` and ``steps`` (else it is rebuilt)."""
    marker = Path(base_dir) / BASE_NAME_FILE
    if not marker.is_file() or not (Path(base_dir) / "model.safetensors").is_file():
        return False
    built = json.loads(marker.read_text())
    return built.get("seed") == seed and built.get("build") == BUILD and built.get("steps", PRETRAIN_STEPS) == steps


def family_of(name: str) -> str:
    """The family key of a tiny base, refused plainly when unknown."""
    if name not in FAMILIES:
        raise ValueError(f"unknown base model family {name!r}; choose among {', '.join(FAMILIES)}")
    return name


def tiny_config(vocab_size: int, family: str = DEFAULT_FAMILY):
    """The family's own config class at a tiny size; the token ids are those of SPECIAL_TOKENS."""
    from transformers import Gemma2Config, Lfm2Config, Qwen3Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )
    if family_of(family) == "gemma2":
        return Gemma2Config(**common, num_hidden_layers=2, head_dim=16, sliding_window=256)
    if family == "lfm2":
        # Two short-convolution blocks and two attention blocks, as LFM2 interleaves them; the feed-forward width
        # is taken as given rather than rounded up to LFM2's multiple of 256.
        return Lfm2Config(
            **common,
            num_hidden_layers=4,
            layer_types=["conv", "full_attention", "conv", "full_attention"],
            block_auto_adjust_ff_dim=False,
        )
    return Qwen3Config(**common, num_hidden_layers=2, head_dim=16)


def build_tiny_base(
    out_dir: Path,
    *,
    texts: Sequence[str],
    chat_pairs: Sequence[Pair],
    style_texts: Sequence[str] = (),
    seed: int,
    family: str = DEFAULT_FAMILY,
    steps: int = PRETRAIN_STEPS,
) -> Path:
    """Train the tokenizer on ``texts``, then pre-train a tiny model of ``family`` on ``chat_pairs`` and, as plain
    text outside any chat turn, ``style_texts``; save both.

    The chat pairs make it a (very small) chat model that answers in their style, so that an adapter has a real
    style to move it away from. The plain texts are what a real base model read before it was ever a chat model:
    Gemma or LFM2 knows how Yoda talks without answering that way, and a LoRA adapter draws out what the base
    already knows. A model this small cannot learn a new way of writing through a rank-8 adapter alone.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from grader.labs.llm.model import encode_pair, encode_text, train_on_encoded

    os.environ["HF_HUB_OFFLINE"] = "1"
    name, _dirname = FAMILIES[family_of(family)]
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts)
    model = AutoModelForCausalLM.from_config(tiny_config(len(tokenizer), family), attn_implementation="eager")
    encoded = [encode_pair(tokenizer, pair, max_tokens=PRETRAIN_TOKENS) for pair in chat_pairs]
    encoded += [encode_text(tokenizer, text, max_tokens=PRETRAIN_TOKENS) for text in style_texts]
    train_on_encoded(model, tokenizer, encoded, steps=steps, batch_size=PRETRAIN_BATCH, lr=3e-3, seed=seed)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-base-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / BASE_NAME_FILE).write_text(
            json.dumps({"name": name, "family": family, "seed": seed, "build": BUILD, "steps": steps}) + "\n"
        )
        # A base model is public weights the grading box reads: readable by every user, like an installed package.
        staging.chmod(0o755)
        for path in staging.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir
