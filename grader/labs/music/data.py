"""The music lab's hidden set: the course vocabulary, tunes split from irish.abc, and its dataset files."""

from __future__ import annotations

import random
import re
from pathlib import Path

from grader.dataset import Manifest, write_manifest
from grader.errors import GraderFault

# sorted(set(text)) of the course's full irish.abc, as the lab notebook builds it; prepare-data re-checks it.
COURSE_VOCAB = "\n !\"#'(),-./0123456789:<=>ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz|"

START_STRING = "X"  # the lab notebook's start string

TRAIN_FILE = "public-train/irish-train.abc"
SPLIT_FILES = {"public": "hidden/public.abc", "private": "hidden/private.abc"}
HIDDEN_TUNES = {"public": 40, "private": 40}
TUNE_START = re.compile(r"\n(?=X:)")


def split_tunes(text: str) -> list[str]:
    """The tunes of an ABC file, each from its X: line (tunes may hold blank lines, so split on X: only)."""
    return [t.strip() for t in TUNE_START.split(text) if t.strip()]


def join_tunes(tunes: list[str]) -> str:
    return "\n\n".join(tunes) + "\n"


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
