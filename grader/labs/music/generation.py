"""The music lab's songs: generated from the start string, cut at a tune boundary, and their novelty."""

from __future__ import annotations

from grader.labs.music.data import COURSE_VOCAB, START_STRING, TUNE_START
from grader.labs.music.model import encode

NGRAM = 16
TEMPERATURE = 1.0
COPIED_NOVELTY = 0.1  # a song with less novelty than this is flagged as recited


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
