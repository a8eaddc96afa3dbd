"""The bias-audit metrics of the vision lab: pure functions of scores, labels and groups (no torch)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame

GROUPS = ("LF", "LM", "DF", "DM")
TARGET_FPR = 0.05
ECE_BINS = 15
BOOTSTRAP_RESAMPLES = 1000


def threshold_at_fpr(scores: np.ndarray, labels: np.ndarray, target_fpr: float = TARGET_FPR) -> float:
    """The smallest observed score (or +inf) such that at most ``target_fpr`` of the non-faces score >= it.

    A face is detected when its score is >= the threshold. Because the candidates are the observed scores, a face
    that ties with the non-face that would push the false-positive rate over the target is not detected: a model
    that gives every image the same score detects nothing, instead of everything for free.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    negatives = np.sort(scores[labels == 0])[::-1]
    if negatives.size == 0:
        raise ValueError("the false-positive rate needs at least one non-face")
    allowed = math.floor(target_fpr * negatives.size + 1e-9)
    if allowed >= negatives.size:
        return float(np.min(scores))
    # Every threshold above this non-face score keeps the false positives within the allowed count.
    boundary = negatives[allowed]
    above = scores[scores > boundary]
    return float(np.min(above)) if above.size else math.inf


def detections(scores: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(scores, dtype=np.float64) >= threshold


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE of the predicted class: confidence max(p, 1-p) in ``n_bins`` equal-width bins of (0, 1].

    The model predicts "face" when p > 0.5 (as the lab's rounding does); a bin's gap is |accuracy - mean
    confidence|, weighted by the share of images in the bin.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    predicted = probs > 0.5
    confidence = np.where(predicted, probs, 1.0 - probs)
    correct = predicted == labels
    # Bin b holds confidences in (b/n, (b+1)/n]; a confidence of exactly 0 can only come from a rounding edge.
    index = np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        members = index == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def bootstrap_tpr_interval(
    detected: np.ndarray, sources: np.ndarray, *, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """95% percentile interval of one group's detection rate, resampling source faces with replacement.

    All augmentations of a source face move together, since they are not independent evidence. The threshold is
    held fixed: the interval covers the sampling of faces only.
    """
    detected = np.asarray(detected, dtype=np.float64)
    sources = np.asarray(sources)
    names = sorted(set(sources.tolist()))
    hits = np.array([detected[sources == name].sum() for name in names])
    counts = np.array([(sources == name).sum() for name in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(names), size=(resamples, len(names)))
    rates = hits[picks].sum(axis=1) / counts[picks].sum(axis=1)
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)


def _rate(y_true, y_pred) -> float:
    return float(np.mean(np.asarray(y_pred) == np.asarray(y_true)))


def _mean_of(y_true, y_pred, values) -> float:
    return float(np.mean(values))


def _count(y_true, y_pred) -> float:
    return float(len(y_true))


def audit(
    scores: np.ndarray,
    labels: np.ndarray,
    groups: list[str | None],
    sources: list[str],
    *,
    seed: int,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[dict[str, float | None], dict[str, dict[str, float | None]]]:
    """Split-level metrics and per-group tables from face logits, labels (1 face, 0 non-face) and face groups."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    group_arr = np.array([g if g is not None else "" for g in groups], dtype=object)
    source_arr = np.array(sources, dtype=object)
    probs = 1.0 / (1.0 + np.exp(-scores))
    threshold = threshold_at_fpr(scores, labels)
    detected = detections(scores, threshold)

    faces = labels == 1
    face_groups = group_arr[faces]
    frame = MetricFrame(
        metrics={
            "tpr": _rate,
            "mean_probability": _mean_of,
            "accuracy_at_0.5": _rate,
            "count": _count,
        },
        y_true=np.ones(int(faces.sum()), dtype=int),
        y_pred=detected[faces].astype(int),
        sensitive_features=list(face_groups),
        sample_params={"mean_probability": {"values": probs[faces]}},
    )
    # "accuracy_at_0.5" needs the model's own decisions; a second frame keeps each metric a plain function.
    own = MetricFrame(
        metrics=_rate,
        y_true=np.ones(int(faces.sum()), dtype=int),
        y_pred=(scores[faces] > 0).astype(int),
        sensitive_features=list(face_groups),
    )
    by_group = frame.by_group
    table: dict[str, dict[str, float | None]] = {}
    for group in GROUPS:
        if group not in by_group.index:
            continue
        members = face_groups == group
        low, high = bootstrap_tpr_interval(
            detected[faces][members], source_arr[faces][members], seed=seed, resamples=resamples
        )
        table[group] = {
            "tpr": float(by_group.loc[group, "tpr"]),
            "tpr_ci_low": low,
            "tpr_ci_high": high,
            "mean_probability": float(by_group.loc[group, "mean_probability"]),
            "accuracy_at_0.5": float(own.by_group.loc[group]),
            "count": float(by_group.loc[group, "count"]),
        }
    tprs = [row["tpr"] for row in table.values()]
    negatives = labels == 0
    tpr_all = float(detected[faces].mean()) if faces.any() else 0.0
    tnr = float((~detected[negatives]).mean())
    metrics: dict[str, float | None] = {
        "worst_group_tpr": min(tprs) if tprs else None,
        "gap": (max(tprs) - min(tprs)) if tprs else None,
        "balanced_accuracy": 0.5 * (tpr_all + tnr),
        "tpr": tpr_all,
        "fpr": float(detected[negatives].mean()),
        "threshold": threshold if math.isfinite(threshold) else None,
        "accuracy_at_0.5": float(((scores > 0).astype(int) == labels).mean()),
        "ece": expected_calibration_error(probs, labels),
    }
    return metrics, table


def worst_group(table: dict[str, dict[str, Any]]) -> str | None:
    """The group with the lowest detection rate (the first in GROUPS order on a tie)."""
    present = [g for g in GROUPS if g in table]
    if not present:
        return None
    return min(present, key=lambda g: table[g]["tpr"])
