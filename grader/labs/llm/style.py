"""The offline Yoda-style judge: a character n-gram TF-IDF logistic regression (plain JSON) gated on fluency."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader.labs.llm.fluency import Fluency, gated, measure

FORMAT = 1
NGRAM_RANGE = (2, 4)
MAX_FEATURES = 6000
_SPACES = re.compile(r"\s+")


def char_ngrams(text: str, lo: int = NGRAM_RANGE[0], hi: int = NGRAM_RANGE[1]) -> list[str]:
    """Lower-cased character n-grams of each word padded with spaces, so word starts and ends count."""
    grams: list[str] = []
    for word in _SPACES.split(text.lower().strip()):
        if not word:
            continue
        padded = f" {word} "
        for n in range(lo, hi + 1):
            grams.extend(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return grams


@dataclass(frozen=True)
class Judged:
    """One answer's style score (0-10), with the classifier's score and the fluency that gated it."""

    classifier: float
    fluency: Fluency
    score: float


@dataclass
class StyleClassifier:
    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray
    intercept: float
    ngram_range: tuple[int, int] = NGRAM_RANGE

    def features(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float64)
        for r, text in enumerate(texts):
            for gram, count in Counter(char_ngrams(text, *self.ngram_range)).items():
                j = self.vocabulary.get(gram)
                if j is not None:
                    rows[r, j] = 1.0 + math.log(count)  # sublinear term frequency
        rows *= self.idf
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms > 0, norms, 1.0)

    def probability(self, texts: Sequence[str]) -> list[float]:
        """P(Yoda style) of each text."""
        if not texts:
            return []
        z = self.features(texts) @ self.coef + self.intercept
        return [float(p) for p in 1.0 / (1.0 + np.exp(-z))]

    def scores(self, texts: Sequence[str]) -> list[float]:
        """The classifier's 0-10 style score of each text, before the fluency gate."""
        return [10.0 * p for p in self.probability(texts)]

    def judge(self, answers: Sequence[str], prompts: Sequence[str]) -> list[Judged]:
        """The lab's style score of each answer to its prompt: the classifier's, times the answer's fluency gate.

        Character n-grams alone reward whatever is full of Yoda's letters, a run of "Hmm" or "Brrrr" included;
        the gate keeps the score for text that reads as language and is not the prompt handed back.
        """
        if len(answers) != len(prompts):
            raise ValueError("one prompt per answer is needed")
        fluency = [measure(a, p) for a, p in zip(answers, prompts, strict=True)]
        raw = self.scores(answers)
        return [
            Judged(classifier=c, fluency=f, score=s) for c, f, s in zip(raw, fluency, gated(raw, fluency), strict=True)
        ]

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "kind": "char-ngram-tfidf-logistic-regression",
            "ngram_range": list(self.ngram_range),
            "vocabulary": self.vocabulary,
            "idf": [float(x) for x in self.idf],
            "coef": [float(x) for x in self.coef],
            "intercept": float(self.intercept),
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False, allow_nan=False))

    @classmethod
    def load(cls, path: Path) -> StyleClassifier:
        # Plain JSON: loading a classifier runs no code, unlike a pickled estimator.
        data = json.loads(Path(path).read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: unsupported style classifier format {data.get('format')!r}")
        vocab = {str(k): int(v) for k, v in data["vocabulary"].items()}
        idf = np.asarray(data["idf"], dtype=np.float64)
        coef = np.asarray(data["coef"], dtype=np.float64)
        if not (len(vocab) == len(idf) == len(coef)) or sorted(vocab.values()) != list(range(len(vocab))):
            raise ValueError(f"{path}: the style classifier's arrays disagree with its vocabulary")
        lo, hi = data["ngram_range"]
        return cls(vocabulary=vocab, idf=idf, coef=coef, intercept=float(data["intercept"]), ngram_range=(lo, hi))


def train_classifier(yoda: Sequence[str], other: Sequence[str], *, seed: int) -> StyleClassifier:
    """Fit the classifier (scikit-learn, imported only here) on Yoda texts against texts in other styles."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(
        analyzer=char_ngrams, sublinear_tf=True, min_df=3, max_features=MAX_FEATURES, norm="l2", smooth_idf=True
    )
    x = vectorizer.fit_transform(list(yoda) + list(other))
    y = np.array([1] * len(yoda) + [0] * len(other))
    model = LogisticRegression(C=4.0, max_iter=2000, random_state=seed)
    model.fit(x, y)
    vocab = {str(k): int(v) for k, v in vectorizer.vocabulary_.items()}
    return StyleClassifier(
        vocabulary=vocab,
        idf=np.asarray(vectorizer.idf_, dtype=np.float64),
        coef=np.asarray(model.coef_[0], dtype=np.float64),
        intercept=float(model.intercept_[0]),
    )
