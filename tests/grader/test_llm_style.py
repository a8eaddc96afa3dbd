"""Lab 3's offline style classifier and its prompts: stored as JSON, scored without scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from grader.labs.llm.data import make_pairs, split_indices, topic_of
from grader.labs.llm.style import StyleClassifier, char_ngrams, train_classifier

YODA = [
    "Strong with the Force, you are. Hmm.",
    "Patience you must have, young one.",
    "Blue, the sky is. Yes, hmmm.",
    "Much to learn, you still have.",
    "Fear, the path to the dark side it is.",
    "Ready, are you? Hmm. Begin, we will.",
] * 3
PLAIN = [
    "You are strong with the Force.",
    "You must have patience, young one.",
    "The sky is blue today.",
    "You still have much to learn.",
    "Fear is the path to the dark side.",
    "Are you ready? We will begin.",
] * 3


def test_the_json_classifier_reproduces_scikit_learns_probabilities(tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    classifier = train_classifier(YODA, PLAIN, seed=0)
    classifier.save(tmp_path / "c.json")
    loaded = StyleClassifier.load(tmp_path / "c.json")
    texts = ["Hmm. Tired, I am.", "I am tired.", ""]
    vectorizer = TfidfVectorizer(analyzer=char_ngrams, sublinear_tf=True, min_df=3, max_features=6000)
    x = vectorizer.fit_transform(YODA + PLAIN)
    model = LogisticRegression(C=4.0, max_iter=2000, random_state=0).fit(x, [1] * len(YODA) + [0] * len(PLAIN))
    expected = model.predict_proba(vectorizer.transform(texts))[:, 1]
    assert np.allclose(loaded.probability(texts), expected, atol=1e-9)
    assert loaded.scores(texts)[0] > 5 > loaded.scores(texts)[1]


def test_the_stored_classifier_is_plain_json_data(tmp_path):
    train_classifier(YODA, PLAIN, seed=0).save(tmp_path / "c.json")
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["kind"] == "char-ngram-tfidf-logistic-regression"
    assert len(data["vocabulary"]) == len(data["idf"]) == len(data["coef"])


def test_a_classifier_whose_arrays_disagree_is_refused(tmp_path):
    data = train_classifier(YODA, PLAIN, seed=0).to_json()
    data["coef"] = data["coef"][:-1]
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="disagree"):
        StyleClassifier.load(tmp_path / "c.json")


def test_prompts_are_derived_from_the_answers_topic():
    assert topic_of("On 31 August 2000, commence services did Virgin Australia, as Virgin Blue they were known.") == (
        "Virgin Australia"
    )
    pairs = make_pairs(["Born on July tenth, Tomoaki Komorida was.", "Hmm. No win, a stalemate is."])
    assert pairs[0].prompt == "Tell me about Tomoaki Komorida."
    assert pairs[1].prompt == "What can you tell me about stalemate?"


def test_the_splits_are_disjoint_and_repeatable():
    a = split_indices(100, seed=3, hidden_per_split=10)
    assert a == split_indices(100, seed=3, hidden_per_split=10)
    assert len(a.public) == len(a.private) == 10 and len(a.train) == 80
    assert not (set(a.public) & set(a.private) or set(a.train) & (set(a.public) | set(a.private)))
