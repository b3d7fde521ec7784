"""Classification metrics, bootstrap intervals and the exact McNemar test.

Implemented on NumPy so that the numbers are explicit and testable against scikit-learn;
invalid outputs (`INVALID`) count as wrong and never as a class of their own.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts ``[gold, predicted]`` over ``labels``; predictions outside ``labels`` are dropped
    from the matrix (they are still errors for accuracy and recall)."""
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred):
        if g in index and p in index:
            cm[index[g], index[p]] += 1
    return cm


def per_class(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label (0 where undefined, as scikit-learn's
    ``zero_division=0``)."""
    out: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, pred) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, pred) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, pred) if g == label and p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return out


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean F1 over the task's labels that occur in ``gold`` or ``pred`` — what
    scikit-learn's ``f1_score(average="macro", zero_division=0)`` averages over; a wrongly
    predicted label counts with F1 0. Invalid answers are errors, never a label."""
    seen = set(gold) | set(pred)
    used = [label for label in labels if label in seen]
    stats = per_class(gold, pred, used)
    return float(np.mean([stats[label]["f1"] for label in used])) if used else 0.0


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred)) / len(gold)


def bootstrap_ci(correct: Sequence[bool], n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``correct`` (accuracy)."""
    arr = np.asarray(correct, dtype=np.float64)
    if arr.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_resamples, arr.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, float]:
    """Exact (binomial) McNemar test on paired outcomes.

    ``b`` counts examples A got right and B wrong, ``c`` the reverse; under the null both are
    equally likely, so the two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))`` for
    ``X ~ Binomial(b + c, 1/2)``.
    """
    if len(correct_a) != len(correct_b):
        raise ValueError("McNemar needs paired outcomes of equal length")
    b = sum(1 for x, y in zip(correct_a, correct_b) if x and not y)
    c = sum(1 for x, y in zip(correct_a, correct_b) if y and not x)
    n = b + c
    if n == 0:
        p = 1.0
    else:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        p = min(1.0, 2 * tail)
    return {"a_only": b, "b_only": c, "p_value": p}


def expected_calibration_error(confidences: Sequence[float | None], correct: Sequence[bool], bins: int = 10) -> float | None:
    """ECE over equal-width confidence bins; None when no prediction has a confidence. An
    answer without a confidence (an invalid output) counts at confidence 0 — it is an answer
    the model gave, and leaving it out would flatter the calibration."""
    if all(c is None for c in confidences):
        return None
    pairs = [(0.0 if c is None else c, ok) for c, ok in zip(confidences, correct)]
    if not pairs:
        return None
    conf = np.array([c for c, _ in pairs])
    ok = np.array([o for _, o in pairs], dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - ok[mask].mean())
    return float(ece)


def coverage_curve(
    confidences: Sequence[float | None], correct: Sequence[bool], levels: Sequence[float] = (1.0, 0.95, 0.9, 0.8, 0.7, 0.5)
) -> list[dict[str, float]]:
    """Accuracy on the most confident share of examples, for each coverage level.

    This is the escalation trade-off: answer the confident ``coverage`` share automatically and
    route the rest to a person. A threshold can only keep or drop tied confidences together,
    so ties are never split: the kept share is the largest one at most ``coverage`` that a
    threshold (``confidence >= threshold``) can make, and ``kept`` says what it really is.
    """
    pairs = sorted(((c if c is not None else 0.0, ok) for c, ok in zip(confidences, correct)), key=lambda t: -t[0])
    n = len(pairs)
    out = []
    for level in levels:
        k = min(n, int(math.floor(level * n + 1e-9)))
        while 0 < k < n and pairs[k - 1][0] == pairs[k][0]:
            k -= 1  # the k-th and the next share a confidence: no threshold separates them
        kept = pairs[:k]
        out.append(
            {
                "coverage": level,
                "kept": k / n if n else 0.0,
                "accuracy": float(np.mean([ok for _, ok in kept])) if kept else 0.0,
                "threshold": float(kept[-1][0]) if kept else 1.0,
            }
        )
    return out


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else 0.0
