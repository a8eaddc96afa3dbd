"""Rubric totals, z-score normalisation and the tie-break, against numbers worked out by hand."""

import math

import pytest

from prizes.ranking import (
    JUDGES,
    MEAN,
    METRIC,
    WEIGHTED,
    ZSCORE,
    metric_zscores,
    normalise,
    rank_prize,
    rank_round,
    weighted_total,
    zscores,
)


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


# ---------------------------------------------------------------- a prize's ranking of a round's entries


def _judged(results: dict) -> list:
    """rank_round's answer for entries whose judges' result is given directly (None: not judged)."""
    totals = {"j": {e: r for e, r in results.items() if r is not None}}
    rows, _ = rank_round(totals, sorted(results), MEAN)
    return rows


def test_metric_zscores_point_the_better_way_and_skip_a_missing_metric():
    # bits per character 1.0, 2.0, 3.0: mean 2, sd 0.816497; lower is better, so 1.0 gets +1.224745
    z = metric_zscores({1: 1.0, 2: 2.0, 3: 3.0, 4: None, 5: float("nan")}, "min")
    assert z == pytest.approx({1: 1.224745, 2: 0.0, 3: -1.224745}, abs=1e-6)
    assert metric_zscores({1: 1.0, 2: 3.0}, "max") == pytest.approx({1: -1.0, 2: 1.0})
    assert metric_zscores({1: 2.0, 2: 2.0}, "max") == {1: 0.0, 2: 0.0}
    assert metric_zscores({1: None}, "max") == {}


def test_by_the_judges_the_prize_keeps_the_rounds_order():
    judged = _judged({1: 6, 2: 9, 3: None})
    rows = rank_prize(mode=JUDGES, judged=judged, metrics={})
    assert [(r.entry, r.rank, r.score) for r in rows] == [(2, 1, 9), (1, 2, 6), (3, None, None)]
    assert rows[2].missing == "no complete score from a counted judge"


def test_by_the_metric_its_direction_decides_and_a_missing_metric_is_unranked():
    judged = _judged({1: 5, 2: 7, 3: 6})
    lower_better = rank_prize(mode=METRIC, judged=judged, metrics={1: 1.2, 2: 2.5, 3: None}, direction="min")
    assert [(r.entry, r.rank) for r in lower_better] == [(1, 1), (2, 2), (3, None)]
    assert lower_better[2].missing == "no metric"
    higher_better = rank_prize(mode=METRIC, judged=judged, metrics={1: 1.2, 2: 2.5, 3: None}, direction="max")
    assert [r.entry for r in higher_better] == [2, 1, 3]


def test_a_tie_on_the_metric_goes_to_the_judges_then_to_the_entry_registered_first():
    judged = _judged({1: 5, 2: 7, 3: None, 4: None})
    rows = rank_prize(mode=METRIC, judged=judged, metrics={1: 2.0, 2: 2.0, 3: 2.0, 4: 2.0}, direction="min")
    # 2 beats 1 by the judges; 3 and 4 have no judges' place, so the lower entry number comes first.
    assert [(r.entry, r.rank) for r in rows] == [(2, 1), (1, 2), (3, 3), (4, 4)]


def test_the_weighted_score_adds_the_judges_result_and_the_metrics_zscore_by_the_stated_weight():
    # z-scored judges: one judge, totals 10, 8, 6 -> +1.224745, 0, -1.224745
    totals = {"j1": {1: 10, 2: 8, 3: 6}, "j2": {1: 10, 2: 8, 3: 6}}
    judged, _ = rank_round(totals, [1, 2, 3, 4])
    # accuracy (higher better) 0.7, 0.9, 0.8 -> z -1.224745, +1.224745, 0; entry 4 has a metric but no judges
    metrics = {1: 0.7, 2: 0.9, 3: 0.8, 4: 0.8}
    # with entry 4 the metrics are 0.7, 0.9, 0.8, 0.8: mean 0.8, sd 0.0707107 -> z -1.414214, +1.414214, 0, 0
    rows = rank_prize(mode=WEIGHTED, judged=judged, metrics=metrics, direction="max", weight=0.25)
    by_entry = {r.entry: r for r in rows}
    assert by_entry[1].score == pytest.approx(0.75 * 1.224745 + 0.25 * -1.414214, abs=1e-6)
    assert by_entry[2].score == pytest.approx(0.25 * 1.414214, abs=1e-6)
    assert by_entry[3].score == pytest.approx(0.75 * -1.224745, abs=1e-6)
    assert [r.entry for r in rows] == [1, 2, 3, 4]
    assert by_entry[4].rank is None and by_entry[4].missing == "no complete score from a counted judge"
    # All on the metric, the same weighting is the metric's order.
    assert [r.entry for r in rank_prize(mode=WEIGHTED, judged=judged, metrics=metrics, weight=1.0)][:3] == [2, 3, 1]


def test_a_weighted_tie_goes_to_the_judges_place():
    totals = {"j1": {1: 10, 2: 6}, "j2": {1: 10, 2: 6}}
    judged, _ = rank_round(totals, [1, 2])
    # judges: +1, -1; metric (lower better) 3.0, 1.0 -> z -1, +1; at weight 0.5 both score 0.
    rows = rank_prize(mode=WEIGHTED, judged=judged, metrics={1: 3.0, 2: 1.0}, direction="min", weight=0.5)
    assert [r.score for r in rows] == pytest.approx([0.0, 0.0])
    assert [r.entry for r in rows] == [1, 2]


def test_a_weighted_ranking_refuses_a_weight_outside_zero_to_one_and_names_what_an_entry_lacks():
    judged = _judged({1: 5})
    with pytest.raises(ValueError, match="weight from 0 to 1"):
        rank_prize(mode=WEIGHTED, judged=judged, metrics={1: 1.0}, weight=1.5)
    with pytest.raises(ValueError, match="unknown ranking"):
        rank_prize(mode="popularity", judged=judged, metrics={})
    rows = rank_prize(mode=WEIGHTED, judged=_judged({1: None}), metrics={}, weight=0.5)
    assert rows[0].missing == "no complete score from a counted judge and no metric"
