"""Lab 1, music generation: the character LSTM of the lab notebook, scored on hidden Irish tunes and its songs."""

from __future__ import annotations

import math
import random
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from grader.configfile import int_in, read_json, reject_unknown_keys
from grader.dataset import Manifest, write_manifest
from grader.errors import GraderFault, Rejected
from grader.registry import EvaluationContext, EvaluationOutput, LabEvaluator, MetricSpec
from grader.safetensors_io import ensure_finite, expect_tensors, load_tensors, read_header

# sorted(set(text)) of the course's full irish.abc, as the lab notebook builds it; prepare-data re-checks it.
COURSE_VOCAB = "\n !\"#'(),-./0123456789:<=>ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz|"

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_KEYS = {"embedding_dim", "hidden_size", "num_layers", "vocab"}
BOUNDS = {"embedding_dim": (8, 1024), "hidden_size": (8, 2048), "num_layers": (1, 3)}
# About 160 MB of float32: the course's model (E=256, H=1024, L=1) has 5.4M parameters.
MAX_PARAMETERS = 40_000_000
WEIGHT_DTYPES = ("F32", "F16", "BF16")

START_STRING = "X"  # the lab notebook's start string
NGRAM = 16
DEFAULT_SONGS = 5
DEFAULT_SONG_LENGTH = 600
TEMPERATURE = 1.0
SCORE_BATCH = 16  # tunes per batch when scoring; fixed so that results do not depend on the machine
SCORE_CHUNK = 256  # characters per step of truncated-free scoring (state carried across chunks)
COPIED_NOVELTY = 0.1  # a song with less novelty than this is flagged as recited

TRAIN_FILE = "public-train/irish-train.abc"
SPLIT_FILES = {"public": "hidden/public.abc", "private": "hidden/private.abc"}
HIDDEN_TUNES = {"public": 40, "private": 40}
TUNE_START = re.compile(r"\n(?=X:)")


def split_tunes(text: str) -> list[str]:
    """The tunes of an ABC file, each from its X: line (tunes may hold blank lines, so split on X: only)."""
    return [t.strip() for t in TUNE_START.split(text) if t.strip()]


def join_tunes(tunes: list[str]) -> str:
    return "\n\n".join(tunes) + "\n"


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


def cut_song(text: str) -> str:
    """A generated text up to the next tune boundary (a blank line or a new X: header)."""
    end = len(text)
    blank = text.find("\n\n")
    if blank != -1:
        end = min(end, blank)
    header = TUNE_START.search(text, 1)
    if header:
        end = min(end, header.start())
    return text[:end].strip()


def generate_songs(
    model, *, count: int, length: int, seed: int, device: str = "cpu", temperature: float = TEMPERATURE
) -> list[str]:
    """``count`` songs from the start string, generated together, each sampled with its own seeded generator."""
    import torch

    if count == 0:
        return []
    gens = [torch.Generator(device="cpu").manual_seed(seed * 1000 + k) for k in range(count)]
    texts = [START_STRING] * count
    done = [False] * count
    model.eval()
    with torch.inference_mode():
        ids = encode(START_STRING).unsqueeze(0).repeat(count, 1).to(device)
        state = None
        for _ in range(length):
            logits, state = model(ids, state)
            # Sampling on the CPU keeps the random stream the same whatever device computed the logits.
            probs = torch.softmax(logits[:, -1].float().cpu() / temperature, dim=-1)
            picks = [int(torch.multinomial(probs[k], 1, generator=gens[k])) for k in range(count)]
            for k, nxt in enumerate(picks):
                if not done[k]:
                    texts[k] += COURSE_VOCAB[nxt]
                    # Once a tune boundary is reached the rest would be cut away anyway.
                    done[k] = texts[k].endswith("\n\n") or texts[k].endswith("\nX:")
            if all(done):
                break
            ids = torch.tensor(picks, dtype=torch.long, device=device).unsqueeze(1)
    return [cut_song(t) for t in texts]


def ngrams(text: str, n: int = NGRAM) -> set[str]:
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def novelty(song: str, training_ngrams: set[str], n: int = NGRAM) -> float | None:
    """Share of the song's character n-grams absent from the training text; None for a song shorter than n."""
    if len(song) < n:
        return None
    grams = [song[i : i + n] for i in range(len(song) - n + 1)]
    return sum(g not in training_ngrams for g in grams) / len(grams)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _int_option(options: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    if key not in options:
        return default
    try:
        value = int(options[key])
    except (TypeError, ValueError):
        raise GraderFault("bad_option", f"option {key}={options[key]!r} is not a whole number")
    if not lo <= value <= hi:
        raise GraderFault("bad_option", f"option {key}={value} is outside {lo}..{hi}")
    return value


def write_dataset(
    tunes: list[str],
    out_dir: Path,
    *,
    seed: int,
    hidden: dict[str, int] | None = None,
    name: str = "irish-tunes-demo",
    description: str = "",
) -> Manifest:
    """Split tunes (whole tunes, deterministically by seed) into the students' training file and hidden splits."""
    hidden = hidden or HIDDEN_TUNES
    order = list(range(len(tunes)))
    random.Random(seed).shuffle(order)
    need = sum(hidden.values())
    if len(tunes) < need + 1:
        raise GraderFault(
            "dataset_too_small", f"{len(tunes)} tunes cannot make hidden splits of {need} and a train set"
        )
    chosen: dict[str, list[str]] = {}
    at = 0
    for split in ("public", "private"):
        picked = sorted(order[at : at + hidden[split]])
        chosen[split] = [tunes[i] for i in picked]
        at += hidden[split]
    train = [tunes[i] for i in sorted(order[at:])]
    train_text = join_tunes(train)
    # The hidden tunes must be unseen: neither a whole tune nor its body may occur in the students' file.
    for split, items in chosen.items():
        for tune in items:
            body = tune.split("\n", 1)[1] if "\n" in tune else tune
            if tune in train_text or body in train_text:
                raise GraderFault("dataset_leak", f"a {split} tune also appears in the training file")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRAIN_FILE).parent.mkdir(parents=True, exist_ok=True)
    (out_dir / TRAIN_FILE).write_text(train_text)
    splits = {}
    for split, path in SPLIT_FILES.items():
        (out_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / path).write_text(join_tunes(chosen[split]))
        splits[split] = {"file": path, "tunes": len(chosen[split]), "characters": sum(map(len, chosen[split]))}
    return write_manifest(
        out_dir,
        name=name,
        lab="music",
        demo_only=True,
        description=description
        or "DEMO ONLY: hidden tunes split from the public irish.abc of the course package; students may have seen them.",
        splits=splits,
        meta={
            "train_file": TRAIN_FILE,
            "train_tunes": len(train),
            "start_string": START_STRING,
            "vocab": COURSE_VOCAB,
            "split_seed": seed,
            "source": "mitdeeplearning 0.7.5 data/irish.abc",
        },
    )


def _train(model, data_dir: Path, *, steps: int, seed: int, seq_len: int = 100, batch: int = 32) -> list[float]:
    """Teacher-forced next-character training on random windows of the students' training file."""
    import torch

    ids = encode((data_dir / TRAIN_FILE).read_text(encoding="utf-8"))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - seq_len - 1, (batch,), generator=gen).tolist()
        x = torch.stack([ids[s : s + seq_len] for s in starts])
        y = torch.stack([ids[s + 1 : s + seq_len + 1] for s in starts])
        logits, _ = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    return losses


class Lab(LabEvaluator):
    name: ClassVar[str] = "music"
    title: ClassVar[str] = "Lab 1: Music Generation"
    artifact_files: ClassVar[tuple[str, ...]] = (WEIGHTS_FILE, CONFIG_FILE)
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        # No upper bound holds for every honest evaluation: a model can be arbitrarily confident and wrong (a
        # uniform guess scores log2(83) = 6.4); only a non-finite score is the model's fault, and it is refused.
        MetricSpec(
            "bpc",
            "Bits per character",
            "How surprised the model is, in bits, by each next character of hidden tunes; lower is better.",
            "min",
            low=0.0,
        ),
        MetricSpec(
            "validity",
            "Valid ABC share",
            "Share of the generated songs that are valid ABC: headers, enough notes, and bars that fill the metre.",
            "max",
            low=0.0,
            high=1.0,
        ),
        MetricSpec(
            "novelty",
            "Novelty",
            f"Mean share of a generated song's {NGRAM}-character snippets that never occur in the training tunes.",
            "max",
            low=0.0,
            high=1.0,
        ),
    )
    primary_metric: ClassVar[str] = "bpc"
    primary_direction = "min"
    tiebreak_metric: ClassVar[str] = "validity"
    tiebreak_direction = "max"
    queue: ClassVar[str] = "grading-music"
    leaderboard_columns: ClassVar[tuple[str, ...]] = ("bpc", "validity", "novelty")
    reference_variants: ClassVar[tuple[str, ...]] = ("reference", "untrained")

    def warm_up(self) -> None:
        """Run every code path once on a toy model and tune, so the job pays no first-call costs (no hidden data)."""
        from grader.abc_validity import check_abc

        model = build_model(len(COURSE_VOCAB), 8, 8, 1)
        with single_thread():
            bits_per_character(model, ["X:1\nT:warm\nK:D\n|:d2fd a2fd:|\n"])
            generate_songs(model, count=1, length=24, seed=0)
        check_abc("X:1\nT:Warm up\nM:4/4\nL:1/8\nK:D\n|:DEFG ABcd|dcBA GFED:|\n")

    def check(self, artifact_dir: Path, *, deep: bool = False, options: dict[str, Any] | None = None) -> dict[str, Any]:
        artifact_dir = Path(artifact_dir)
        hp = read_config(artifact_dir)
        vocab = len(COURSE_VOCAB)
        header = read_header(artifact_dir / WEIGHTS_FILE, max_tensors=64)
        expect_tensors(header, expected_tensors(vocab, hp["embedding_dim"], hp["hidden_size"], hp["num_layers"]))
        if deep:
            ensure_finite(load_tensors(artifact_dir / WEIGHTS_FILE))
        return {
            **hp,
            "parameters": parameter_count(vocab, hp["embedding_dim"], hp["hidden_size"], hp["num_layers"]),
            "dtypes": sorted({info.dtype for info in header.values()}),
        }

    def load_model(self, artifact_dir: Path, device: str = "cpu"):
        import torch

        hp = read_config(Path(artifact_dir))
        model = build_model(len(COURSE_VOCAB), hp["embedding_dim"], hp["hidden_size"], hp["num_layers"])
        tensors = {k: v.to(torch.float32) for k, v in load_tensors(Path(artifact_dir) / WEIGHTS_FILE).items()}
        model.load_state_dict(tensors, strict=True)
        return model.to(device).float()

    def prepare_data(self, course_data: Path, out_dir: Path, *, seed: int) -> None:
        text = (Path(course_data) / "irish.abc").read_text(encoding="utf-8")
        found = "".join(sorted(set(text)))
        if found != COURSE_VOCAB:
            raise GraderFault(
                "course_vocab_mismatch",
                f"irish.abc has the vocabulary {found!r}, but the grader's constant is {COURSE_VOCAB!r}",
            )
        write_dataset(split_tunes(text), Path(out_dir), seed=seed)

    def train_reference(
        self, data_dir: Path, out_dir: Path, *, variant: str, seed: int, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        import json

        import torch
        from safetensors.torch import save_file

        options = options or {}
        e = _int_option(options, "embedding_dim", 32, *BOUNDS["embedding_dim"])
        h = _int_option(options, "hidden_size", 128, *BOUNDS["hidden_size"])
        layers = _int_option(options, "num_layers", 1, *BOUNDS["num_layers"])
        steps = _int_option(options, "steps", 500, 0, 100_000)
        torch.manual_seed(seed)
        model = build_model(len(COURSE_VOCAB), e, h, layers)
        losses = []
        with single_thread():
            if variant == "reference" and steps:
                losses = _train(model, Path(data_dir), steps=steps, seed=seed)

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / WEIGHTS_FILE))
        config = {"embedding_dim": e, "hidden_size": h, "num_layers": layers, "vocab": COURSE_VOCAB}
        (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        summary: dict[str, Any] = {"variant": variant, "steps": steps if variant == "reference" else 0, **config}
        summary.pop("vocab")
        if losses:
            summary["final_train_bpc"] = round(sum(losses[-20:]) / len(losses[-20:]) / math.log(2), 4)
        return summary

    def evaluate(self, ctx: EvaluationContext) -> EvaluationOutput:
        device = "cuda" if ctx.device == "cuda" else "cpu"
        if device == "cpu":
            with single_thread():
                return self._evaluate(ctx, device)
        return self._evaluate(ctx, device)

    def _evaluate(self, ctx: EvaluationContext, device: str) -> EvaluationOutput:
        from grader.abc_validity import check_abc

        songs_wanted = _int_option(ctx.options, "songs", DEFAULT_SONGS, 0, 50)
        song_length = _int_option(ctx.options, "song_length", DEFAULT_SONG_LENGTH, 16, 5000)
        manifest: Manifest = ctx.manifest
        model = self.load_model(ctx.artifact_dir, device)

        metrics: dict[str, dict[str, float | None]] = {}
        for split in ("public", "private"):
            info = manifest.splits.get(split)
            if not isinstance(info, dict) or "file" not in info:
                raise GraderFault("dataset_corrupt", f"the manifest has no {split} split")
            tunes = split_tunes(manifest.file(info["file"]).read_text(encoding="utf-8"))
            metrics[split] = {"bpc": round(bits_per_character(model, tunes, device=device), 6)}
            if not math.isfinite(metrics[split]["bpc"]):
                raise Rejected("non_finite_outputs", "The model's probabilities are not finite on the hidden tunes.")

        songs = generate_songs(model, count=songs_wanted, length=song_length, seed=ctx.seed, device=device)
        train_text = manifest.file(manifest.meta.get("train_file", TRAIN_FILE)).read_text(encoding="utf-8")
        train_grams = ngrams(train_text)
        samples_dir = ctx.out_dir / "samples"
        samples_dir.mkdir(parents=True, exist_ok=True)
        samples, per_song = [], []
        for k, song in enumerate(songs, start=1):
            verdict = check_abc(song)
            nov = novelty(song, train_grams)
            title = verdict.headers.get("T") or f"Song {k}"
            (samples_dir / f"song-{k}.abc").write_text(song + "\n", encoding="utf-8")
            samples.append(
                {
                    "kind": "abc",
                    "split": "public",
                    "title": title[:200],
                    "text": song,
                    "file": f"samples/song-{k}.abc",
                    "valid": verdict.valid,
                    "novelty": None if nov is None else round(nov, 6),
                }
            )
            per_song.append(
                {
                    "song": k,
                    "valid": verdict.valid,
                    "reason": verdict.reason,
                    "notes": verdict.notes,
                    "bars": verdict.bars,
                    "full_bars": verdict.full_bars,
                    "characters": len(song),
                    "novelty": None if nov is None else round(nov, 6),
                }
            )
        validity = sum(s["valid"] for s in per_song) / len(per_song) if per_song else None
        mean_novelty = _mean([s["novelty"] for s in per_song])
        copied = [s["song"] for s in per_song if s["novelty"] is not None and s["novelty"] < COPIED_NOVELTY]
        generation = {
            "validity": None if validity is None else round(validity, 6),
            "novelty": None if mean_novelty is None else round(mean_novelty, 6),
        }
        # Generation uses no hidden data, so its numbers are the same for both splits; the private table carries
        # them too so that a private leaderboard has its tie-break.
        for split in metrics:
            metrics[split].update(generation)
        details = {
            "songs": per_song,
            "copied_songs": copied,
            "recites_training_tunes": bool(copied),
            "generation": {
                "start_string": START_STRING,
                "songs": songs_wanted,
                "max_length": song_length,
                "temperature": TEMPERATURE,
                "seeds": [ctx.seed * 1000 + k for k in range(songs_wanted)],
                "ngram": NGRAM,
            },
            "scoring": {"batch": SCORE_BATCH, "chunk": SCORE_CHUNK, "dtype": "float32"},
        }
        return EvaluationOutput(metrics=metrics, samples=samples, details=details)
