"""Fixtures of the grader tests: a tiny tune dataset, small LSTM artifacts, and (once, cached) the course data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grader.labs import music

REPO = Path(__file__).resolve().parents[2]
# What the tests build once and reuse across runs (the course sdist, the tiny Lab 3 models): outside the checkout, so
# a test run writes nothing into var/. GRADER_CACHE names another folder.
TEST_CACHE = Path(
    os.environ.get("GRADER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "course-platform-tests"
)

TUNE_BODIES = [
    "|:D2FA dAFA|G2BG dBGB|A2cA eAcA|d2fd a2fd:|",
    "|:GABc dedB|dedB dedB|c2ec B2dB|A2GF G4:|",
    "|:A2cA BAGB|A2cA B2e2|A2cA BAGB|c2BG A4:|",
    "|:E2GE D2FD|E2GE B2AG|F2AF E2GE|D2FD E4:|",
    "|:c2ec B2dB|A2cA G2BG|F2AF E2GE|D2FA G4:|",
    "|:f2af e2ge|d2fd c2ec|B2dB A2cA|G2BG A4:|",
    "|:B2dB A2FA|B2dB A2d2|B2dB A2FA|d2cB A4:|",
    "|:e2ge d2Bd|e2ge a2ge|d2Bd A2FA|B2AF E4:|",
]


def make_tune(number: int, title: str, body: str) -> str:
    return f"X:{number}\nT:{title}\nZ: id:test-{number}\nM:C|\nL:1/8\nK:D Major\n{body}!\n{body}!"


TINY_TUNES = [make_tune(i + 1, f"Tune {chr(65 + i)}", b) for i, b in enumerate(TUNE_BODIES)]


def pytest_configure(config):
    config.addinivalue_line("markers", "coursedata: needs the course's sdist (downloaded once into the tests' cache)")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two public and two private hidden tunes; the other four form the students' training file."""
    out = tmp_path_factory.mktemp("music-data")
    music.write_dataset(TINY_TUNES, out, seed=0, hidden={"public": 2, "private": 2}, name="tiny-tunes")
    return out


def save_lstm(directory: Path, *, e: int = 8, h: int = 16, layers: int = 1, seed: int = 0, config=None, mutate=None):
    """Write a valid Lab 1 artifact of random weights; ``mutate(state_dict)`` alters the tensors first."""
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = music.build_model(len(music.COURSE_VOCAB), e, h, layers)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if mutate:
        mutate(state)
    save_file(state, str(directory / "model.safetensors"))
    cfg = {"embedding_dim": e, "hidden_size": h, "num_layers": layers, "vocab": music.COURSE_VOCAB}
    if config is not None:
        cfg = config(cfg)
    (directory / "config.json").write_text(json.dumps(cfg))
    return directory


@pytest.fixture
def artifact(tmp_path) -> Path:
    return save_lstm(tmp_path / "artifact")


@pytest.fixture(scope="session")
def course_data_dir() -> Path:
    """The real course data; downloads the sdist once into the tests' cache (reused by later runs)."""
    from grader.coursedata import course_data

    return course_data(TEST_CACHE)
