"""Lab 1's numbers: bits per character, ABC validity, novelty and song cutting, against hand-computed values."""

import math

import pytest
import torch

from grader.labs import music
from grader.labs.music.abc_validity import check_abc
from tests.grader.conftest import TINY_TUNES, make_tune


def constant_model(bias: torch.Tensor):
    """A model whose next-character distribution is softmax(bias) whatever the input."""
    model = music.build_model(len(music.COURSE_VOCAB), 8, 16, 1)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(bias)
    return model


def test_uniform_model_scores_log2_of_the_vocabulary_size():
    model = constant_model(torch.zeros(len(music.COURSE_VOCAB)))
    bpc = music.bits_per_character(model, TINY_TUNES[:3])
    assert bpc == pytest.approx(math.log2(83), abs=1e-6)


def test_bits_per_character_matches_a_hand_computation():
    vocab = music.COURSE_VOCAB
    bias = torch.zeros(len(vocab))
    bias[vocab.index("A")] = 2.0
    bias[vocab.index("|")] = 1.0
    model = constant_model(bias)
    tunes = ["X:1\nAB|A", "X:2|"]
    z = 81 + math.exp(2.0) + math.exp(1.0)
    prob = {"A": math.exp(2.0) / z, "|": math.exp(1.0) / z}
    # Each tune is scored from its first character: every later character is predicted once.
    predicted = [c for t in tunes for c in t[1:]]
    expected = sum(-math.log2(prob.get(c, 1 / z)) for c in predicted) / len(predicted)
    assert music.bits_per_character(model, tunes) == pytest.approx(expected, abs=1e-5)


def test_bits_per_character_of_a_tune_does_not_depend_on_its_batch_neighbours():
    torch.manual_seed(0)
    model = music.build_model(len(music.COURSE_VOCAB), 8, 16, 2)
    alone = music.bits_per_character(model, [TINY_TUNES[0]])
    long_neighbour = TINY_TUNES[1] * 3
    with_neighbour = music.bits_per_character(model, [TINY_TUNES[0], long_neighbour])
    neighbour_alone = music.bits_per_character(model, [long_neighbour])
    n0, n1 = len(TINY_TUNES[0]) - 1, len(long_neighbour) - 1
    assert with_neighbour == pytest.approx((alone * n0 + neighbour_alone * n1) / (n0 + n1), abs=1e-5)


def test_a_well_formed_tune_is_valid():
    verdict = check_abc(TINY_TUNES[0])
    assert verdict.valid, verdict.reason
    assert verdict.notes == 54  # 27 notes per line, the line played twice
    assert verdict.full_bars == verdict.bars == 6


def test_a_tune_without_a_key_header_is_invalid():
    tune = "X:1\nT:No key\nM:C|\nL:1/8\n|:D2FA dAFA|G2BG dBGB|A2cA eAcA|d2fd a2fd:|"
    verdict = check_abc(tune)
    assert not verdict.valid
    assert verdict.reason == "missing header K:"


def test_a_tune_with_too_few_notes_is_invalid():
    verdict = check_abc("X:1\nT:Short\nM:C|\nL:1/8\nK:D\nD2FA|")
    assert not verdict.valid
    assert verdict.reason == "only 3 notes (at least 8 needed)"


def test_a_tune_whose_bars_do_not_fill_the_metre_is_invalid():
    tune = "X:1\nT:Ragged\nM:C|\nL:1/8\nK:D\nD2|FA|dAF|A|G2BGdBGB|A2|c|AeAcA|d2f|da2fd|D"
    verdict = check_abc(tune)
    assert not verdict.valid
    assert verdict.reason == "only 1 of 9 bars fill the metre"  # G2BGdBGB is the one full bar


def test_garbage_text_is_invalid():
    assert not check_abc("X:1\nT:x\nM:C|\nK:D\n").valid
    assert check_abc("qwe ]]] ((( |||").reason == "missing header X:, T:, M:, K:"


def test_novelty_of_a_copied_tune_is_zero_and_of_unseen_text_is_one():
    training = "\n\n".join(TINY_TUNES)
    grams = music.ngrams(training)
    assert music.novelty(TINY_TUNES[3], grams) == 0.0
    assert music.novelty("zzzzzzzzzzzzzzzzzzzz", grams) == 1.0


def test_novelty_counts_the_share_of_unseen_16_grams():
    grams = music.ngrams("abcdefghijklmnop")  # one 16-gram
    # 18 characters: 3 grams, the first one seen.
    assert music.novelty("abcdefghijklmnopqr", grams) == pytest.approx(2 / 3)


def test_a_song_shorter_than_16_characters_has_no_novelty():
    assert music.novelty("X:1\nT:a", set()) is None


def test_a_generated_song_is_cut_at_the_next_tune_boundary():
    assert music.cut_song("X:1\nT:A\nabc\n\nX:2\nT:B") == "X:1\nT:A\nabc"
    assert music.cut_song("X:1\nT:A\nabc\nX:2\nT:B") == "X:1\nT:A\nabc"
    assert music.cut_song("X:1\nT:A\nabc") == "X:1\nT:A\nabc"


def test_songs_are_reproducible_from_their_seeds():
    torch.manual_seed(3)
    model = music.build_model(len(music.COURSE_VOCAB), 8, 16, 1)
    first = music.generate_songs(model, count=3, length=40, seed=7)
    again = music.generate_songs(model, count=3, length=40, seed=7)
    other = music.generate_songs(model, count=3, length=40, seed=8)
    assert first == again
    assert first != other
    assert all(s.startswith("X") and len(s) <= 41 for s in first)


def test_split_tunes_keeps_blank_lines_inside_a_tune():
    text = make_tune(1, "A", "|ABcd|") + "\n\n" + "X:2\nT:B\nK:D\n|AB|\n\n|cd|\n"
    assert music.split_tunes(text) == [make_tune(1, "A", "|ABcd|"), "X:2\nT:B\nK:D\n|AB|\n\n|cd|"]
