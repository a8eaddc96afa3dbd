"""The music lab's model: its config and tensors checked, the notebook's LSTM built, and bits per character."""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

from grader.configfile import int_in, read_json, reject_unknown_keys
from grader.errors import GraderFault, Rejected
from grader.labs.music.data import COURSE_VOCAB

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_KEYS = {"embedding_dim", "hidden_size", "num_layers", "vocab"}
BOUNDS = {"embedding_dim": (8, 1024), "hidden_size": (8, 2048), "num_layers": (1, 3)}
# About 160 MB of float32: the course's model (E=256, H=1024, L=1) has 5.4M parameters.
MAX_PARAMETERS = 40_000_000
WEIGHT_DTYPES = ("F32", "F16", "BF16")
SCORE_BATCH = 16  # tunes per batch when scoring; fixed so that results do not depend on the machine
SCORE_CHUNK = 256  # characters per step of truncated-free scoring (state carried across chunks)


def vocab_difference(vocab: str) -> str | None:
    """Why ``vocab`` is not the course vocabulary, or None when it is."""
    if vocab == COURSE_VOCAB:
        return None
    missing = sorted(set(COURSE_VOCAB) - set(vocab))
    extra = sorted(set(vocab) - set(COURSE_VOCAB))
    parts = []
    if missing:
        parts.append(f"it lacks {', '.join(repr(c) for c in missing[:10])}")
    if extra:
        parts.append(f"it has characters the course data never uses: {', '.join(repr(c) for c in extra[:10])}")
    if len(set(vocab)) != len(vocab):
        parts.append("it repeats characters")
    if not parts:
        parts.append("it is not sorted (use sorted(set(songs_joined)))")
    return (
        f"The config's vocab has {len(vocab)} characters and differs from the course vocabulary "
        f"({len(COURSE_VOCAB)} characters, sorted(set(text)) of the full irish.abc): " + "; ".join(parts) + "."
    )


def parameter_count(vocab: int, e: int, h: int, layers: int) -> int:
    lstm = sum(4 * h * ((e if k == 0 else h) + h + 2) for k in range(layers))
    return vocab * e + lstm + vocab * h + vocab


def expected_tensors(vocab: int, e: int, h: int, layers: int) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    spec: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {"embedding.weight": (WEIGHT_DTYPES, (vocab, e))}
    for k in range(layers):
        spec[f"lstm.weight_ih_l{k}"] = (WEIGHT_DTYPES, (4 * h, e if k == 0 else h))
        spec[f"lstm.weight_hh_l{k}"] = (WEIGHT_DTYPES, (4 * h, h))
        spec[f"lstm.bias_ih_l{k}"] = (WEIGHT_DTYPES, (4 * h,))
        spec[f"lstm.bias_hh_l{k}"] = (WEIGHT_DTYPES, (4 * h,))
    spec["fc.weight"] = (WEIGHT_DTYPES, (vocab, h))
    spec["fc.bias"] = (WEIGHT_DTYPES, (vocab,))
    return spec


def read_config(artifact_dir: Path) -> dict[str, int]:
    cfg = read_json(artifact_dir / CONFIG_FILE, name=CONFIG_FILE)
    reject_unknown_keys(cfg, CONFIG_KEYS, name=CONFIG_FILE)
    hp = {key: int_in(cfg, key, lo, hi) for key, (lo, hi) in BOUNDS.items()}
    if "vocab" not in cfg:
        raise Rejected("bad_config", f"{CONFIG_FILE} lacks 'vocab', the string of the model's characters in order.")
    if not isinstance(cfg["vocab"], str):
        raise Rejected("bad_config", f"{CONFIG_FILE}'s 'vocab' must be a string, e.g. ''.join(vocab).")
    problem = vocab_difference(cfg["vocab"])
    if problem:
        raise Rejected("wrong_vocab", problem)
    params = parameter_count(len(COURSE_VOCAB), hp["embedding_dim"], hp["hidden_size"], hp["num_layers"])
    if params > MAX_PARAMETERS:
        raise Rejected(
            "config_out_of_bounds",
            f"The model in {CONFIG_FILE} would have {params:,} parameters; this lab allows at most "
            f"{MAX_PARAMETERS:,}. Use a smaller hidden_size or fewer layers.",
        )
    return hp


def build_model(vocab: int, e: int, h: int, layers: int):
    """The lab notebook's LSTMModel, with the same attribute (and so state_dict) names."""
    import torch
    from torch import nn

    class LSTMModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, e)
            self.lstm = nn.LSTM(e, h, num_layers=layers, batch_first=True)
            self.fc = nn.Linear(h, vocab)

        def forward(self, x: torch.Tensor, state=None):
            out, state = self.lstm(self.embedding(x), state)
            return self.fc(out), state

    return LSTMModel()


@contextmanager
def single_thread():
    """One CPU thread: the lab's small sequential steps run faster without thread hand-offs, and the sums do not
    depend on how many cores the machine has."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode(text: str):
    import torch

    index = {c: i for i, c in enumerate(COURSE_VOCAB)}
    try:
        return torch.tensor([index[c] for c in text], dtype=torch.long)
    except KeyError as exc:
        raise GraderFault("dataset_corrupt", f"the dataset holds a character outside the vocabulary: {exc}")


def bits_per_character(model, tunes: list[str], *, device: str = "cpu") -> float:
    """Mean of -log2 p(next char) over every character after the first of each tune (teacher forcing)."""
    import torch

    total_nats = 0.0
    total_chars = 0
    model.eval()
    with torch.no_grad():
        for b in range(0, len(tunes), SCORE_BATCH):
            batch = [encode(t) for t in tunes[b : b + SCORE_BATCH] if len(t) >= 2]
            if not batch:
                continue
            longest = max(len(s) for s in batch)
            ids = torch.zeros(len(batch), longest, dtype=torch.long)
            mask = torch.zeros(len(batch), longest - 1, dtype=torch.bool)
            for i, seq in enumerate(batch):
                ids[i, : len(seq)] = seq
                mask[i, : len(seq) - 1] = True
            ids, mask = ids.to(device), mask.to(device)
            state = None
            # Padding sits after each tune's end, so it never influences a scored position.
            for c in range(0, longest - 1, SCORE_CHUNK):
                inputs = ids[:, c : c + SCORE_CHUNK]
                targets = ids[:, c + 1 : c + 1 + SCORE_CHUNK]
                inputs = inputs[:, : targets.shape[1]]
                logits, state = model(inputs, state)
                logp = torch.log_softmax(logits.float(), dim=-1)
                nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                m = mask[:, c : c + targets.shape[1]]
                total_nats += float(nll[m].double().sum())
                total_chars += int(m.sum())
    if total_chars == 0:
        raise GraderFault("dataset_corrupt", "the split has no characters to score")
    return total_nats / total_chars / math.log(2)
