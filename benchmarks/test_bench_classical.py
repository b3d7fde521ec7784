"""Throughput of the evaluator and the classical baselines (examples/s).

    make bench                      # or: pytest benchmarks --benchmark-only
Runs on the disputes task when $DISPUTE_CLASSIFIER_DATA is set, on generated data otherwise.
"""

import os
import random
from pathlib import Path

import pytest

from dispute_classifier.core.types import Prediction
from evaluation.evaluate import compute_metrics


def _texts() -> tuple[list[str], list[str], list[str], list[str]]:
    path = os.environ.get("DISPUTE_CLASSIFIER_DATA")
    if path and (Path(path) / "train.csv").is_file():
        from dispute_classifier.core.task import load_data, load_task

        data = load_data(load_task("disputes"), Path(path))
        fit, test = data.fit_split("test"), data.split("test")
        return fit.texts, fit.labels, test.texts, test.labels
    rng = random.Random(0)
    words = "card payment refund fee charged twice transfer cash atm rate exchange not received".split()
    labels = [f"label{i}" for i in range(8)]
    make = lambda n: [" ".join(rng.choices(words, k=10)) for _ in range(n)]  # noqa: E731
    return make(800), [rng.choice(labels) for _ in range(800)], make(200), [rng.choice(labels) for _ in range(200)]


@pytest.fixture(scope="module")
def data():
    return _texts()


def test_tfidf_predict_throughput(benchmark, data):
    from baselines.classical import TfidfClassifier

    fit_x, fit_y, test_x, _ = data
    clf = TfidfClassifier().fit(fit_x, fit_y)
    preds = benchmark(clf.predict, test_x)
    assert len(preds) == len(test_x)
    benchmark.extra_info["examples"] = len(test_x)


def test_embedding_predict_throughput(benchmark, data):
    from baselines.classical import EmbeddingClassifier

    fit_x, fit_y, test_x, _ = data
    clf = EmbeddingClassifier().fit(fit_x, fit_y)
    sample = test_x[:128]
    preds = benchmark.pedantic(clf.predict, args=(sample,), rounds=3, iterations=1)
    assert len(preds) == len(sample)
    benchmark.extra_info["examples"] = len(sample)


def test_metrics_throughput(benchmark, data):
    _, _, _, gold = data
    labels = sorted(set(gold))
    preds = [Prediction(g if i % 7 else labels[0], 0.8) for i, g in enumerate(gold)]
    metrics = benchmark(compute_metrics, gold, preds, labels, 1.0, 0.0001)
    assert metrics["n"] == len(gold)
    benchmark.extra_info["examples"] = len(gold)
