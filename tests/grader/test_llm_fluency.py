"""Lab 3's fluency gate: degenerate text cannot win the style score, genuine Yoda text keeps it."""

from __future__ import annotations

import pytest

from grader.labs.llm import HIDDEN_PER_SPLIT, PROMPTS_PER_SPLIT
from grader.labs.llm.data import make_pairs, plain_version, read_lines, split_indices
from grader.labs.llm.fluency import RAMPS, Ramp, gated, measure
from grader.labs.llm.style import StyleClassifier, train_classifier

PROMPT = "Tell me about Los Angeles."
DEGENERATE = {
    "a run of one character": "Ach, the Brrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr",
    "one letter only": "B" * 160,
    "a repeated phrase": "Strong with the Force, you are. " * 6,
    "a repeated interjection": "Hmm. " * 30,
    "the prompt copied back": PROMPT,
    "the prompt echoed twice": f"echo: {PROMPT} Hmm, yes. {PROMPT}",
    "a salad of style words": "Hmm, yes, young Force strong, yes, hmm the Force",
    "a longer salad": "Hmm, yes, young Padawan, strong the Force is, hmm, yes, strong, young Jedi, hmm",
    # What a tiny word-level model says with repeats forbidden: every word in the dictionary, no pair repeated.
    "a salad of function words": ", the,, it is., a, they ' s, ye,, that, and, he is.",
    "literal line breaks": "An" + "\\n" * 30,
    "nothing": "",
}


def test_each_part_is_measured_as_defined():
    f = measure("the cat sat on the mat the cat sat", "Where did the cat sit?")
    assert f.words == 9
    assert f.dictionary_share == 1.0
    assert f.distinct_bigrams == pytest.approx(6 / 8)  # the cat, cat sat, sat on, on the, the mat, mat the (+2 again)
    assert f.prompt_overlap == 0.0  # no trigram of the prompt ("where did the", "did the cat", "the cat sit")
    assert f.function_word_share == pytest.approx(4 / 9)  # the x3, on
    assert f.filler_share == 0.0
    copied = measure("Where did the cat sit? Where did the cat sit?", "Where did the cat sit?")
    assert copied.prompt_overlap == pytest.approx(6 / 8)  # 8 trigrams, 6 of them the prompt's (3 in each copy)


def test_a_run_of_one_letter_compresses_far_below_language():
    assert measure("a" * 200).compression_ratio < 0.1
    assert measure("Patience you must have, young one, for the path is long.").compression_ratio > 0.9


def test_ramps_rise_from_bad_to_good_in_either_direction():
    assert Ramp(bad=0.5, good=0.7).factor(0.6) == pytest.approx(0.5)
    assert Ramp(bad=0.5, good=0.7).factor(0.9) == 1.0 and Ramp(bad=0.5, good=0.7).factor(0.1) == 0.0
    assert Ramp(bad=0.5, good=0.15).factor(0.15) == 1.0 and Ramp(bad=0.5, good=0.15).factor(0.6) == 0.0
    assert RAMPS["prompt_overlap"].factor(1.0) == 0.0


def test_the_gate_multiplies_each_score():
    fluent, empty = measure("Patience you must have, for long the path to wisdom is."), measure("")
    assert fluent.gate == 1.0 and empty.gate == 0.0
    assert gated([8.0, 9.0], [fluent, empty]) == [8.0, 0.0]
    with pytest.raises(ValueError):
        gated([8.0], [fluent, empty])


@pytest.mark.parametrize("kind", sorted(DEGENERATE))
def test_degenerate_text_is_gated_shut(kind):
    assert measure(DEGENERATE[kind], PROMPT).gate == 0.0


@pytest.fixture(scope="module")
def course_texts(course_data_dir):
    """The classifier and hidden Yoda answers as prepare_data builds them (seed 0), without the tiny model."""
    styles = course_data_dir / "text_styles"
    yoda, leprechaun = read_lines(styles / "yoda.txt"), read_lines(styles / "leprechaun.txt")
    split = split_indices(len(yoda), seed=0, hidden_per_split=HIDDEN_PER_SPLIT)
    other = [leprechaun[i] for i in split.train]
    classifier = train_classifier([yoda[i] for i in split.train], other + [plain_version(t) for t in other], seed=0)
    hidden = make_pairs(yoda)
    return classifier, [hidden[i] for i in split.public], [leprechaun[i] for i in split.public]


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.coursedata
def test_every_degenerate_kind_scores_below_2_though_the_classifier_alone_rates_them_high(course_texts):
    classifier: StyleClassifier = course_texts[0]
    kinds = sorted(DEGENERATE)
    judged = classifier.judge([DEGENERATE[k] for k in kinds], [PROMPT] * len(kinds))
    assert {k: j.score for k, j in zip(kinds, judged, strict=True) if j.score >= 2} == {}
    # What the gate is for: the classifier alone gives most of them the style.
    assert sum(j.classifier >= 6 for j in judged) >= len(kinds) // 2


@pytest.mark.coursedata
def test_genuine_yoda_answers_keep_their_style_score(course_texts):
    classifier, hidden, leprechaun = course_texts
    judged = classifier.judge([p.answer for p in hidden], [p.prompt for p in hidden])
    assert _mean([j.score for j in judged]) >= 6
    assert _mean([j.fluency.gate for j in judged]) >= 0.95
    # the same questions answered in the leprechaun's style: fluent, and not Yoda
    other = classifier.judge(leprechaun, [p.prompt for p in hidden])
    assert _mean([j.fluency.gate for j in other]) >= 0.9 and _mean([j.score for j in other]) < 2


@pytest.mark.coursedata
def test_genuine_yoda_answers_cut_to_a_generated_answers_length_keep_it_too(course_texts):
    classifier, hidden, _ = course_texts
    prompts = hidden[:PROMPTS_PER_SPLIT]
    judged = classifier.judge([p.answer[:160] for p in prompts], [p.prompt for p in prompts])
    assert _mean([j.score for j in judged]) >= 6
