import random

import numpy as np
import pytest
from sklearn import metrics as skm

from dispute_classifier.core.types import INVALID
from evaluation import metrics as M

LABELS = ["a", "b", "c"]


def _random_case(seed: int, n: int = 200):
    rng = random.Random(seed)
    gold = [rng.choice(LABELS) for _ in range(n)]
    pred = [g if rng.random() < 0.7 else rng.choice(LABELS + [INVALID]) for g in gold]
    return gold, pred


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed):
    gold, pred = _random_case(seed)
    assert M.accuracy(gold, pred) == pytest.approx(skm.accuracy_score(gold, pred))
    assert M.macro_f1(gold, pred, LABELS) == pytest.approx(skm.f1_score(gold, pred, labels=LABELS, average="macro", zero_division=0))
    p, r, f, s = skm.precision_recall_fscore_support(gold, pred, labels=LABELS, zero_division=0)
    ours = M.per_class(gold, pred, LABELS)
    for i, label in enumerate(LABELS):
        assert ours[label]["precision"] == pytest.approx(p[i])
        assert ours[label]["recall"] == pytest.approx(r[i])
        assert ours[label]["f1"] == pytest.approx(f[i])
        assert ours[label]["support"] == s[i]
    assert (M.confusion_matrix(gold, pred, LABELS) == skm.confusion_matrix(gold, pred, labels=LABELS)).all()


def test_invalid_prediction_counts_as_error_not_class():
    gold = ["a", "b"]
    pred = ["a", INVALID]
    assert M.accuracy(gold, pred) == 0.5
    assert M.per_class(gold, pred, LABELS)["b"]["recall"] == 0.0
    assert M.confusion_matrix(gold, pred, LABELS).sum() == 1


def test_mcnemar_hand_computed():
    # b = 1 (A right, B wrong), c = 6: p = 2 * P(X <= 1), X ~ Bin(7, 1/2) = 2 * 8/128
    a = [True] * 10 + [True] + [False] * 6
    b = [True] * 10 + [False] + [True] * 6
    res = M.mcnemar_exact(a, b)
    assert (res["a_only"], res["b_only"]) == (1, 6)
    assert res["p_value"] == pytest.approx(0.125)
    # 0 vs 5: p = 2 / 32
    assert M.mcnemar_exact([False] * 5, [True] * 5)["p_value"] == pytest.approx(0.0625)
    # no discordant pairs, and balanced ones, give p = 1
    assert M.mcnemar_exact([True, False], [True, False])["p_value"] == 1.0
    assert M.mcnemar_exact([True, False], [False, True])["p_value"] == 1.0


def test_mcnemar_matches_scipy_binomtest():
    from scipy.stats import binomtest

    rng = random.Random(3)
    a = [rng.random() < 0.8 for _ in range(300)]
    b = [rng.random() < 0.7 for _ in range(300)]
    res = M.mcnemar_exact(a, b)
    expected = binomtest(res["a_only"], res["a_only"] + res["b_only"], 0.5).pvalue
    assert res["p_value"] == pytest.approx(expected)


def test_bootstrap_interval():
    correct = [True] * 90 + [False] * 10
    lo, hi = M.bootstrap_ci(correct, seed=0)
    assert lo < 0.9 < hi
    assert 0.8 < lo and hi < 0.97
    assert M.bootstrap_ci(correct, seed=0) == (lo, hi)  # seeded
    big_lo, big_hi = M.bootstrap_ci(correct * 10, seed=0)
    assert big_hi - big_lo < hi - lo  # more data, narrower interval
    assert M.bootstrap_ci([True] * 20) == (1.0, 1.0)
    # the normal approximation's half-width for p=0.9, n=100 is 1.96*0.03 = 0.0588
    assert (hi - lo) / 2 == pytest.approx(0.0588, abs=0.012)


def test_ece_and_coverage():
    assert M.expected_calibration_error([1.0, 1.0], [True, True]) == pytest.approx(0.0)
    assert M.expected_calibration_error([0.9, 0.9], [False, False]) == pytest.approx(0.9)
    assert M.expected_calibration_error([None], [True]) is None
    curve = M.coverage_curve([0.9, 0.8, 0.3, 0.2], [True, True, False, True], levels=(1.0, 0.5))
    assert curve[0]["accuracy"] == 0.75
    assert curve[1] == {"coverage": 0.5, "kept": 0.5, "accuracy": 1.0, "threshold": 0.8}


def test_percentile():
    assert M.percentile([1, 2, 3, 4], 50) == pytest.approx(float(np.percentile([1, 2, 3, 4], 50)))
    assert M.percentile([], 95) == 0.0


def test_macro_f1_counts_a_wrongly_predicted_label_as_scikit_learn_does():
    gold, pred = ["a", "a", "b"], ["a", "c", "b"]
    # labels seen in gold or predictions: a (F1 2/3), b (1), c (0) -> 0.556, as scikit-learn
    assert M.macro_f1(gold, pred, LABELS) == pytest.approx(skm.f1_score(gold, pred, average="macro", zero_division=0))
    assert M.macro_f1(gold, pred, LABELS) == pytest.approx((2 / 3 + 1 + 0) / 3)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_macro_f1_on_subsets_matches_scikit_learn(seed):
    rng = random.Random(seed)
    gold = [rng.choice(["a", "b"]) for _ in range(30)]  # label c never in gold
    pred = [g if rng.random() < 0.6 else rng.choice(LABELS + [INVALID]) for g in gold]
    expected = skm.f1_score(gold, pred, labels=[x for x in LABELS if x in set(gold) | set(pred)], average="macro", zero_division=0)
    assert M.macro_f1(gold, pred, LABELS) == pytest.approx(expected)


def test_ece_counts_invalid_answers_at_zero_confidence():
    # two confident right answers and one invalid answer without a confidence
    ece = M.expected_calibration_error([1.0, 1.0, None], [True, True, False])
    # bins: [0, .1] holds the invalid answer (conf 0, acc 0): gap 0; (.9, 1] conf 1 acc 1: gap 0
    assert ece == pytest.approx(0.0)
    ece = M.expected_calibration_error([0.9, 0.9, None], [True, False, False])
    # independent computation: bin (.8,.9]: 2/3 weight, |0.9 - 0.5| ; bin [0,.1]: 1/3 weight, |0 - 0|
    assert ece == pytest.approx(2 / 3 * 0.4)
    assert M.expected_calibration_error([None, None], [True, False]) is None


def test_coverage_never_splits_tied_confidences():
    conf = [0.9, 0.7, 0.7, 0.7, 0.2]
    ok = [True, True, False, True, False]
    curve = {c["coverage"]: c for c in M.coverage_curve(conf, ok, levels=(1.0, 0.6, 0.4))}
    # 60 % would cut the three tied 0.7s: a threshold keeps all of them (80 %) or none (20 %)
    assert curve[0.6]["kept"] == pytest.approx(0.2) and curve[0.6]["threshold"] == 0.9
    assert curve[0.4]["kept"] == pytest.approx(0.2)
    assert curve[1.0]["kept"] == 1.0 and curve[1.0]["accuracy"] == pytest.approx(0.6)
    for c in curve.values():  # what a threshold really keeps is never more than stated
        assert sum(x >= c["threshold"] for x in conf) / len(conf) == pytest.approx(c["kept"]) and c["kept"] <= c["coverage"]
