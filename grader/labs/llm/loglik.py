"""The statistic Lab 3's notebook prints as "Yoda test loglikelihood", computed here the notebook's way.

The notebook tokenises a text with the tokenizer's defaults (its special tokens included, no chat template), runs
the model over it once, and prints the mean cross-entropy of each token given the ones before it, to two
decimals. ``text_loglikelihood`` is exactly that, so that a student can compare her notebook's printout with the
platform's. ``texts_loglikelihood`` is the same statistic over many texts (the hidden Yoda answers), each
tokenised alone, averaged over all their predicted tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

BATCH = 8
MAX_TOKENS = 1024


def printed(value: float) -> str:
    """The value as the notebook prints it."""
    return f"{value:.2f}"


def context_length(model: Any) -> int:
    """Tokens scored of one text: the model's context, at most MAX_TOKENS (the course's texts fit in real bases)."""
    return min(MAX_TOKENS, int(getattr(model.config, "max_position_embeddings", None) or MAX_TOKENS))


@torch.no_grad()
def text_loglikelihood(model: Any, tokenizer: Any, text: str, *, device: str) -> float:
    tokens = tokenizer(text, return_tensors="pt")
    input_ids = tokens["input_ids"][:, : context_length(model)].to(device)
    logits = model(input_ids=input_ids).logits[:, :-1].float()
    targets = input_ids[:, 1:]
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)))


@torch.no_grad()
def texts_loglikelihood(model: Any, tokenizer: Any, texts: Sequence[str], *, device: str) -> float | None:
    encoded = [tokenizer(text)["input_ids"][: context_length(model)] for text in texts]
    encoded = [ids for ids in encoded if len(ids) > 1]
    if not encoded:
        return None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    total, count = 0.0, 0
    for start in range(0, len(encoded), BATCH):
        batch = encoded[start : start + BATCH]
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, ids in enumerate(batch):  # padded on the right: a causal model never looks ahead at the padding
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            labels[row, : len(ids)] = torch.tensor(ids)
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
        targets = labels[:, 1:].to(device)
        total += float(
            torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
            )
        )
        count += int((targets != -100).sum())
    return total / count
