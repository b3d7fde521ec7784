"""The Monitoring page renders a prediction log with AppTest: the headline numbers, the drift
flag, the charts and the shadow verdict; without a log it says what to run."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("sqlalchemy")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.dashboard.conftest import APP  # noqa: E402
from tests.dashboard.test_app import charts, page_text  # noqa: E402

LABELS = ["refund", "fee", "fraud"]


def write_log(path, drifted: bool) -> str:
    """A log as `serve` writes it: profiles of two models, champion and shadow predictions."""
    from evaluation.predlog import PredictionLog, db_url, text_hash

    url = db_url(str(path))
    log = PredictionLog(url)
    profile = {
        "labels": LABELS,
        "train_distribution": {k: 1 / 3 for k in LABELS},
        "test_accuracy": 0.9,
        "threshold": 0.5,
        "validation": {"confidence": [0.95, 0.9, 0.85, 0.6, 0.55, 0.4] * 5, "correct": [True, True, True, True, False, False] * 5},
    }
    log.save_profile("tfidf", "k1", profile)
    log.save_profile("knn", "k2", {**profile, "test_accuracy": 0.92})
    rows = []
    for i in range(60):
        label = "fee" if drifted else LABELS[i % 3]
        conf = [0.95, 0.9, 0.85, 0.6, 0.55, 0.4][i % 6]  # as confident as on validation: no confidence shift
        for role, model, version in (("champion", "tfidf", "k1"), ("shadow", "knn", "k2")):
            rows.append(
                {
                    "ts": 1_800_000_000 + i,
                    "request_id": f"r{i}",
                    "input_index": 0,
                    "role": role,
                    "model": model,
                    "version": version,
                    "label": label if role == "champion" or i % 4 else "refund",
                    "confidence": conf,
                    "probs": json.dumps({label: conf}),
                    "abstain": False,
                    "latency_ms": 5.0 + i % 7,
                    "text_sha256": text_hash(f"text {i}"),
                    "text": None,
                }
            )
    log.write_predictions(rows)
    log.write_error(1_800_000_010, "bad", 422, "empty_text", "input[0] is empty")
    log.close()
    return url


def open_monitoring(monkeypatch, url: str) -> AppTest:
    monkeypatch.setenv("DISPUTE_CLASSIFIER_PREDLOG", url)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    at.switch_page("views/monitoring.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_monitoring_page_shows_windows_drift_and_shadow(tmp_path, monkeypatch):
    at = open_monitoring(monkeypatch, write_log(tmp_path / "log.db", drifted=True))
    text = page_text(at)
    assert "Predictions: 60" in text and "Test accuracy: 90.0%" in text
    assert "Drift flagged in 1 of 1 window(s)" in text
    assert "Shadow: knn:k2 against tfidf:k1" in text and "Verdict:" in text
    assert "Error rate: 1.6%" in text  # 1 refused request next to 60 answered
    assert charts(at) == 2


def test_monitoring_page_without_drift(tmp_path, monkeypatch):
    at = open_monitoring(monkeypatch, write_log(tmp_path / "log.db", drifted=False))
    assert "No drift flagged" in page_text(at)


def test_monitoring_page_without_a_log_says_what_to_run(tmp_path, monkeypatch):
    at = open_monitoring(monkeypatch, f"sqlite:///{tmp_path / 'missing.db'}")
    assert "dispute-classifier serve" in page_text(at) and charts(at) == 0
