"""The vision audit's numbers against values worked out by hand on small fixed inputs."""

import math

import numpy as np
import pytest

from grader.labs.vision.metrics import (
    audit,
    bootstrap_tpr_interval,
    expected_calibration_error,
    threshold_at_fpr,
    worst_group,
)


def test_threshold_allows_exactly_five_percent_of_non_faces():
    # 40 non-faces scoring 0..39: 5% allows 2 of them, so the threshold must exclude the third highest (37).
    negatives = np.arange(40, dtype=float)
    faces = np.array([37.0, 37.5, 38.0, 50.0])
    scores = np.concatenate([negatives, faces])
    labels = np.array([0] * 40 + [1] * 4)
    threshold = threshold_at_fpr(scores, labels)
    assert threshold == 37.5
    assert ((negatives >= threshold).sum()) == 2
    # the face tied with the excluded non-face is not detected
    assert list(faces >= threshold) == [False, True, True, True]


def test_threshold_is_infinite_when_every_score_ties():
    scores = np.zeros(30)
    labels = np.array([0] * 20 + [1] * 10)
    assert threshold_at_fpr(scores, labels) == math.inf


def test_threshold_with_fewer_than_twenty_non_faces_allows_no_false_positive():
    scores = np.array([0.1, 0.2, 0.9, 0.5, 0.95])
    labels = np.array([0, 0, 0, 1, 1])
    assert threshold_at_fpr(scores, labels) == 0.95


def _toy():
    # 20 non-faces scoring -10..9 (one false positive allowed -> threshold is the smallest score above 8).
    neg_scores = list(np.arange(-10, 10, dtype=float))
    # LF: 4 faces from 2 sources, all detected; DM: 4 faces from 2 sources, 1 detected.
    face_scores = [12.0, 11.0, 9.5, 10.0, 20.0, 8.0, -1.0, 0.5]
    groups = [None] * 20 + ["LF"] * 4 + ["DM"] * 4
    sources = [f"n{i}" for i in range(20)] + ["LF/a", "LF/a", "LF/b", "LF/b", "DM/a", "DM/a", "DM/b", "DM/b"]
    scores = np.array(neg_scores + face_scores)
    labels = np.array([0] * 20 + [1] * 8)
    return scores, labels, groups, sources


def test_audit_group_rates_gap_and_balanced_accuracy_by_hand():
    scores, labels, groups, sources = _toy()
    metrics, table = audit(scores, labels, groups, sources, seed=0, resamples=200)
    assert metrics["threshold"] == 9.0
    assert table["LF"]["tpr"] == 1.0
    assert table["DM"]["tpr"] == 0.25
    assert metrics["worst_group_tpr"] == 0.25
    assert metrics["gap"] == 0.75
    assert metrics["fpr"] == 0.05
    # faces detected 5/8, non-faces rejected 19/20
    assert metrics["balanced_accuracy"] == pytest.approx(0.5 * (5 / 8 + 19 / 20))
    # own threshold (logit > 0): DM faces 20, 8, 0.5 are faces, -1 is not
    assert table["DM"]["accuracy_at_0.5"] == 0.75
    expected_mean = np.mean(1 / (1 + np.exp(-np.array([20.0, 8.0, -1.0, 0.5]))))
    assert table["DM"]["mean_probability"] == pytest.approx(expected_mean)
    assert table["DM"]["count"] == 4
    assert worst_group(table) == "DM"
    assert set(table) == {"LF", "DM"}


def test_a_model_that_calls_everything_a_face_scores_zero_on_the_primary_metric():
    _, labels, groups, sources = _toy()
    metrics, table = audit(np.full(len(labels), 3.0), labels, groups, sources, seed=0, resamples=50)
    assert metrics["worst_group_tpr"] == 0.0
    assert metrics["balanced_accuracy"] == 0.5
    assert metrics["threshold"] is None
    assert all(row["tpr"] == 0.0 for row in table.values())
    # at its own threshold it does call every face a face
    assert all(row["accuracy_at_0.5"] == 1.0 for row in table.values())


def test_ece_by_hand():
    # confidences 0.9 (p=0.9, face, right), 0.9 (p=0.1, non-face, wrong), 0.6 (p=0.6, face, right)
    probs = np.array([0.9, 0.1, 0.6])
    labels = np.array([1, 1, 1])
    # bin of 0.9 (index 13: (13/15, 14/15]) -> accuracy 1/2, confidence 0.9, weight 2/3
    # bin of 0.6 (index 8: (8/15, 9/15]) -> accuracy 1, confidence 0.6, weight 1/3
    expected = (2 / 3) * abs(0.5 - 0.9) + (1 / 3) * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_ece_of_a_perfectly_confident_right_model_is_zero():
    assert expected_calibration_error(np.array([1.0, 0.0, 1.0]), np.array([1, 0, 1])) == 0.0


def test_bootstrap_resamples_source_faces_together_and_is_reproducible():
    # source a: 3 of 3 detected; source b: 0 of 1 detected
    detected = np.array([1, 1, 1, 0])
    sources = np.array(["a", "a", "a", "b"])
    first = bootstrap_tpr_interval(detected, sources, seed=7, resamples=500)
    assert first == bootstrap_tpr_interval(detected, sources, seed=7, resamples=500)
    # With two sources a resample holds {a,a}, {a,b} or {b,b}: rates 1, 3/4 or 0 only.
    assert first[0] == 0.0 and first[1] == 1.0
    rng = np.random.default_rng(7)
    picks = rng.integers(0, 2, size=(500, 2))
    hits, counts = np.array([3, 0]), np.array([3, 1])
    rates = hits[picks].sum(1) / counts[picks].sum(1)
    assert first == tuple(np.percentile(rates, [2.5, 97.5]))
    assert bootstrap_tpr_interval(detected, sources, seed=8, resamples=500) != (0.75, 0.75)


def test_bootstrap_of_a_group_detected_entirely_has_a_point_interval():
    assert bootstrap_tpr_interval(np.ones(6), np.array(list("aabbcc")), seed=1, resamples=100) == (1.0, 1.0)
