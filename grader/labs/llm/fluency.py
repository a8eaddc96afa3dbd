"""Fluency of a generated answer measured from the text alone (no language model), and the gate it puts on style."""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache

# The course data writes line breaks as a backslash and an n; a model that learnt them prints them the same way.
_LITERAL_BREAK = re.compile(r"\\n")
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|\d+")
# Grammatical English, Yoda's inverted order included, is held together by these; a salad of style words is not.
FUNCTION_WORDS = frozenset(
    """a an the of to in on at by for with from as into about over under after before and or but nor so if then than
    that this these those it its is are was were be been being am do does did have has had will would can could
    shall should may might must not no he she they we you i me him her them us my your his their our who whom which
    what when where why how there here all some any each both one""".split()
)
# Interjections the style classifier rewards: a few in an answer are the style, a string of them is a salad.
_FILLER = re.compile(r"^(?:h+m+|m+|yes|yeah|indeed|ach|ah|oh|eh|young|padawan)$")


@dataclass(frozen=True)
class Ramp:
    """A factor of 0 at ``bad`` rising linearly to 1 at ``good`` (``good`` may lie below ``bad``)."""

    bad: float
    good: float

    def factor(self, value: float) -> float:
        share = (value - self.bad) / (self.good - self.bad)
        return min(1.0, max(0.0, share))


# Set so that the course's own Yoda answers pass (the lowest of them measured at words 8, dictionary share 0.75
# with names in it, distinct bigrams 0.62, compression 0.44 on 250 characters, function words 0.17, fillers under
# 0.15) while a run of one character, a repeated phrase, the prompt copied back or a string of style words does
# not. Dictionary words weigh most against the made-up words of a small model ("the Brica, the braw, it is.").
RAMPS = {
    "words": Ramp(bad=2, good=6),
    "dictionary_share": Ramp(bad=0.6, good=0.85),
    "distinct_bigrams": Ramp(bad=0.35, good=0.6),
    "compression_ratio": Ramp(bad=0.3, good=0.42),
    "prompt_overlap": Ramp(bad=0.5, good=0.15),
    # Both ways: too few is a salad of style words, too many a salad of "the, it is, a, they" (the course's Yoda
    # answers reach 0.67 at most).
    "function_word_share": (Ramp(bad=0.1, good=0.16), Ramp(bad=0.8, good=0.68)),
    "filler_share": Ramp(bad=0.4, good=0.2),
}


@dataclass(frozen=True)
class Fluency:
    """The parts measured on one answer and the gate (0-1) they give."""

    words: int
    dictionary_share: float
    distinct_bigrams: float
    compression_ratio: float
    prompt_overlap: float
    function_word_share: float
    filler_share: float
    gate: float

    def to_json(self) -> dict[str, float]:
        return {k: (v if isinstance(v, int) else round(v, 4)) for k, v in asdict(self).items()}


@lru_cache(maxsize=1)
def _dictionary() -> frozenset[str]:
    # pyspellchecker's English word list (pure Python, its data inside the wheel): nothing is fetched at run time.
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en", distance=1).word_frequency.dictionary)


def tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(_LITERAL_BREAK.sub(" ", text))]


def _in_dictionary(word: str, dictionary: frozenset[str]) -> bool:
    return (
        word in dictionary or (word.endswith("'s") and word[:-2] in dictionary) or word.replace("'", "") in dictionary
    )


def _trigrams(words: list[str]) -> list[tuple[str, str, str]]:
    return list(zip(words, words[1:], words[2:], strict=False))


def measure(text: str, prompt: str = "") -> Fluency:
    """Measure ``text``, an answer to ``prompt``; an empty or wordless text has every share at 0 and gate 0."""
    words = tokens(text)
    alphabetic = [w for w in words if not w.isdigit()]
    dictionary = _dictionary()
    dictionary_share = _share(sum(_in_dictionary(w, dictionary) for w in alphabetic), len(alphabetic))
    bigrams = list(zip(words, words[1:], strict=False))
    distinct_bigrams = _share(len(set(bigrams)), len(bigrams))
    raw = text.encode("utf-8")
    # zlib finds the repeats word counts miss: a run of one character, a phrase repeated with its spelling changed.
    compression_ratio = min(1.0, len(zlib.compress(raw, 9)) / len(raw)) if raw else 0.0
    prompt_trigrams = set(_trigrams(tokens(prompt)))
    answer_trigrams = _trigrams(words)
    prompt_overlap = _share(sum(t in prompt_trigrams for t in answer_trigrams), len(answer_trigrams))
    function_word_share = _share(sum(w in FUNCTION_WORDS for w in words), len(words))
    filler_share = _share(sum(bool(_FILLER.match(w)) for w in words), len(words))
    values = {
        "words": len(words),
        "dictionary_share": dictionary_share,
        "distinct_bigrams": distinct_bigrams,
        "compression_ratio": compression_ratio,
        "prompt_overlap": prompt_overlap,
        "function_word_share": function_word_share,
        "filler_share": filler_share,
    }
    gate = 1.0
    for name, ramps in RAMPS.items():
        for ramp in ramps if isinstance(ramps, tuple) else (ramps,):
            gate *= ramp.factor(values[name])
    return Fluency(**values, gate=gate if words else 0.0)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def gated(scores: list[float], fluency: list[Fluency]) -> list[float]:
    """Each 0-10 style score times its answer's fluency gate: style earns nothing on text that is not language."""
    if len(scores) != len(fluency):
        raise ValueError("one fluency measure per score is needed")
    return [score * f.gate for score, f in zip(scores, fluency, strict=True)]
