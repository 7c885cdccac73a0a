"""Detection metrics on anomaly scores (higher = more anomalous), numpy only."""
from __future__ import annotations

import numpy as np


def roc(normal: np.ndarray, anomalous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) at every distinct threshold, from (0, 0) to (1, 1).

    Tied scores move both rates in one step, so ties count as half right, as in the
    Mann-Whitney form of the AUC.
    """
    normal, anomalous = np.asarray(normal, np.float64), np.asarray(anomalous, np.float64)
    if len(normal) == 0 or len(anomalous) == 0:
        raise ValueError("need at least one normal and one anomalous score")
    scores = np.concatenate([normal, anomalous])
    labels = np.concatenate([np.zeros(len(normal)), np.ones(len(anomalous))])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(labels)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return np.r_[0.0, fp / len(normal)], np.r_[0.0, tp / len(anomalous)]


def auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    fpr, tpr = roc(normal, anomalous)
    return _area(fpr, tpr)


def pauc(normal: np.ndarray, anomalous: np.ndarray, max_fpr: float = 0.1) -> float:
    """Area under the ROC for FPR in [0, max_fpr], divided by max_fpr (DCASE 2020 Task 2's
    definition: 1.0 is perfect, chance is max_fpr / 2)."""
    fpr, tpr = roc(normal, anomalous)
    cut = np.searchsorted(fpr, max_fpr, side="right")
    x = np.r_[fpr[:cut], max_fpr]
    y = np.r_[tpr[:cut], np.interp(max_fpr, fpr, tpr)]
    return _area(x, y) / max_fpr


def tpr_at_fpr(normal: np.ndarray, anomalous: np.ndarray, max_fpr: float = 0.01) -> float:
    """The best true-positive rate of any threshold whose false-positive rate is <= max_fpr."""
    fpr, tpr = roc(normal, anomalous)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def confusion(normal: np.ndarray, anomalous: np.ndarray, threshold: float) -> dict:
    """Counts at a fixed threshold (score > threshold = anomalous)."""
    normal, anomalous = np.asarray(normal), np.asarray(anomalous)
    return {
        "true_positives": int((anomalous > threshold).sum()),
        "false_negatives": int((anomalous <= threshold).sum()),
        "false_positives": int((normal > threshold).sum()),
        "true_negatives": int((normal <= threshold).sum()),
    }


def summary(normal: np.ndarray, anomalous: np.ndarray) -> dict:
    return {
        "auc": auc(normal, anomalous),
        "pauc": pauc(normal, anomalous),
        "tpr_at_1pct_fpr": tpr_at_fpr(normal, anomalous),
        "normal": int(len(normal)),
        "anomalous": int(len(anomalous)),
    }


def _area(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid rule (np.trapezoid is numpy >= 2 only)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
