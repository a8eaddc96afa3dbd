"""The tiny Gemma-2 chat model that stands in for Gemma-2-2B-it in tests and the demo, built from scratch offline."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from grader.labs.llm.adapter import BASE_NAME_FILE
from grader.labs.llm.data import Pair

TINY_NAME = "course/tiny-gemma-2"
TINY_DIRNAME = "tiny-gemma-2"
VOCAB_SIZE = 1024
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
PRETRAIN_STEPS = 400
PRETRAIN_BATCH = 8
PRETRAIN_TOKENS = 96


def train_tokenizer(texts: Sequence[str], vocab_size: int = VOCAB_SIZE):
    """A byte-level BPE tokenizer with Gemma's special tokens and chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
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


def tiny_config(vocab_size: int):
    from transformers import Gemma2Config

    return Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=512,
        sliding_window=256,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
        tie_word_embeddings=True,
    )


def build_tiny_base(out_dir: Path, *, texts: Sequence[str], chat_pairs: Sequence[Pair], seed: int) -> Path:
    """Train the tokenizer on ``texts``, then pre-train a tiny Gemma-2 on ``chat_pairs`` and save both to ``out_dir``.

    The pre-training makes it a (very small) chat model that answers in the pairs' style, so that an adapter has a
    real style to move it away from.
    """
    import torch
    from transformers import Gemma2ForCausalLM

    from grader.labs.llm.model import train_on_pairs

    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(texts)
    model = Gemma2ForCausalLM(tiny_config(len(tokenizer)))
    model.config._attn_implementation = "eager"
    train_on_pairs(
        model,
        tokenizer,
        chat_pairs,
        steps=PRETRAIN_STEPS,
        batch_size=PRETRAIN_BATCH,
        lr=3e-3,
        seed=seed,
        max_tokens=PRETRAIN_TOKENS,
    )
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tiny-base-", dir=out_dir.parent))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / BASE_NAME_FILE).write_text(json.dumps({"name": TINY_NAME, "family": "gemma2", "seed": seed}) + "\n")
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
