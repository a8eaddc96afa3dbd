"""Rubric totals, z-score normalisation and the tie-break, against numbers worked out by hand."""

import math

import pytest

from prizes.ranking import MEAN, ZSCORE, normalise, rank_round, weighted_total, zscores


def test_weighted_total_is_the_weighted_sum_and_needs_every_criterion():
    assert weighted_total({"a": 4, "b": 3}, {"a": 2.0, "b": 0.5}) == 9.5
    assert weighted_total({"a": 4}, {"a": 2.0, "b": 0.5}) is None


def test_zscores_use_the_population_standard_deviation():
    # totals 10, 8, 6: mean 8, variance (4 + 0 + 4) / 3 = 8/3, sd 1.632993
    z, mean, sd = zscores({"e1": 10, "e2": 8, "e3": 6})
    assert mean == 8
    assert sd == pytest.approx(1.632993, abs=1e-6)
    assert z == pytest.approx({"e1": 1.224745, "e2": 0.0, "e3": -1.224745}, abs=1e-6)


def test_a_judge_who_gives_everyone_the_same_total_is_only_centred():
    values, info = normalise({"j": {"e1": 6, "e2": 6, "e3": 6}})
    assert values["j"] == {"e1": 0.0, "e2": 0.0, "e3": 0.0}
    assert info["j"].included and "centred only" in info["j"].note


def test_a_judge_with_one_entry_is_left_out_of_normalisation_but_counts_in_plain_means():
    values, info = normalise({"j": {"e1": 9}})
    assert values == {}
    assert not info["j"].included and "fewer than two" in info["j"].note
    values, info = normalise({"j": {"e1": 9}}, MEAN)
    assert values == {"j": {"e1": 9}}


# Four judges; worked out by hand:
#   J1: e1 10, e2 8, e3 6 -> z +1.224745, 0, -1.224745
#   J2: e1 5,  e2 9, e3 7 -> mean 7, sd 1.632993 -> z -1.224745, +1.224745, 0
#   J3: e1 6,  e2 6       -> all equal -> 0, 0
#   J4: e3 9 only         -> left out of the normalised result
# results: e1 (1.224745 - 1.224745 + 0) / 3 = 0; e2 (0 + 1.224745 + 0) / 3 = 0.408248; e3 (-1.224745 + 0) / 2 = -0.612372
# plain means: e1 21/3 = 7; e2 23/3 = 7.666667; e3 22/3 = 7.333333
TOTALS = {
    "J1": {1: 10, 2: 8, 3: 6},
    "J2": {1: 5, 2: 9, 3: 7},
    "J3": {1: 6, 2: 6},
    "J4": {3: 9},
}


def test_round_results_are_means_of_zscores_and_the_ranking_follows_them():
    rows, info = rank_round(TOTALS, [1, 2, 3], ZSCORE)
    by_entry = {r.entry: r for r in rows}
    assert [r.entry for r in rows] == [2, 1, 3]
    assert by_entry[1].result == pytest.approx(0.0, abs=1e-9)
    assert by_entry[2].result == pytest.approx(0.408248, abs=1e-6)
    assert by_entry[3].result == pytest.approx(-0.612372, abs=1e-6)
    assert by_entry[2].plain_mean == pytest.approx(7.666667, abs=1e-6)
    assert [by_entry[e].rank for e in (1, 2, 3)] == [2, 1, 3]
    # What normalisation changed: by plain means e3 would be second and e1 third.
    assert [by_entry[e].plain_rank for e in (1, 2, 3)] == [3, 1, 2]
    assert by_entry[3].judges == 3 and set(by_entry[3].normalised) == {"J1", "J2"}
    assert not info["J4"].included


def test_plain_means_when_the_round_chooses_them():
    rows, _ = rank_round(TOTALS, [1, 2, 3], MEAN)
    assert [(r.entry, round(r.result, 6)) for r in rows] == [(2, 7.666667), (3, 7.333333), (1, 7.0)]


def test_equal_results_are_split_by_the_higher_plain_mean():
    # J1: e1 10, e2 0 -> z +1, -1; J2: e1 2, e2 4 -> z -1, +1: both results 0; plain means e1 6, e2 2.
    rows, _ = rank_round({"J1": {1: 10, 2: 0}, "J2": {1: 2, 2: 4}}, [2, 1], ZSCORE)
    assert rows[0].result == rows[1].result == 0
    assert [r.entry for r in rows] == [1, 2]


def test_then_by_more_judges_then_by_the_lower_entry_number():
    rows, _ = rank_round({"J1": {5: 6, 7: 7}, "J2": {5: 8}}, [7, 5], MEAN)
    assert [(r.entry, r.result, r.judges) for r in rows] == [(5, 7.0, 2), (7, 7.0, 1)]
    rows, _ = rank_round({"J1": {5: 5, 3: 5}}, [5, 3], MEAN)
    assert [r.entry for r in rows] == [3, 5]


def test_an_entry_nobody_counted_is_listed_last_without_a_rank():
    rows, _ = rank_round({"J1": {1: 3, 2: 4}}, [1, 2, 9], ZSCORE)
    assert rows[-1].entry == 9 and rows[-1].rank is None and rows[-1].result is None
    assert math.isclose(rows[0].result, 1.0)
