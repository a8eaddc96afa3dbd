"""Lab 1, music generation: the character LSTM of the lab notebook, scored on hidden Irish tunes and its songs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from grader.dataset import Manifest
from grader.errors import GraderFault, Rejected
from grader.labs.music.data import COURSE_VOCAB, SPLIT_FILES, START_STRING, TRAIN_FILE, split_tunes, write_dataset
from grader.labs.music.generation import COPIED_NOVELTY, NGRAM, TEMPERATURE, cut_song, generate_songs, ngrams, novelty
from grader.labs.music.model import (
    BOUNDS,
    CONFIG_FILE,
    MAX_PARAMETERS,
    SCORE_BATCH,
    SCORE_CHUNK,
    WEIGHTS_FILE,
    bits_per_character,
    build_model,
    encode,
    expected_tensors,
    parameter_count,
    read_config,
    single_thread,
)
from grader.registry import EvaluationContext, EvaluationOutput, LabEvaluator, MetricSpec
from grader.safetensors_io import ensure_finite, expect_tensors, load_tensors, read_header

# The lab as one name: the Keras converter, tests and benchmarks reach its pieces through the package.
__all__ = [
    "BOUNDS",
    "CONFIG_FILE",
    "COURSE_VOCAB",
    "MAX_PARAMETERS",
    "SPLIT_FILES",
    "WEIGHTS_FILE",
    "Lab",
    "bits_per_character",
    "build_model",
    "cut_song",
    "expected_tensors",
    "generate_songs",
    "ngrams",
    "novelty",
    "parameter_count",
    "split_tunes",
    "write_dataset",
]

DEFAULT_SONGS = 5
DEFAULT_SONG_LENGTH = 600


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

    def warm_up(self, manifest: Any = None) -> None:
        """Run every code path once on a toy model and tune, so the job pays no first-call costs (no hidden data)."""
        from grader.labs.music.abc_validity import check_abc

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
        from grader.labs.music.abc_validity import check_abc

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
