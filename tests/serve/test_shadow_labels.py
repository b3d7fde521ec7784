"""The shadow check needs labels: without them `monitor` reports only label-free numbers
(disagreement with a Wilson interval, each model's ESTIMATED accuracy) and no verdict; the
service flags a sample of disagreements for review; with labels on the disagreements it gives
the paired difference with an interval and only then says whether the test advantage holds."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from dispute_classifier.core.errors import UserError
from evaluation.monitoring import MonitorSettings, paired_difference_ci, summarize
from evaluation.predlog import PredictionLog, db_url, read_log, review_pick, text_hash

LABELS = ["refund", "fee", "fraud"]


def write_pair_log(path, review_rate: float, n: int = 600, seed: int = 0):
    """Champion right 85 % of the time, challenger 92 %; the challenger is MORE confident when
    wrong (so comparing confidences would pick the wrong winner). Returns (url, gold)."""
    rng = np.random.default_rng(seed)
    url = db_url(str(path))
    log = PredictionLog(url, review_rate=review_rate)
    profile = {
        "labels": LABELS,
        "train_distribution": {k: 1 / 3 for k in LABELS},
        "test_accuracy": 0.85,
        "validation": {"confidence": [0.9, 0.8, 0.7, 0.6] * 10, "correct": [True, True, True, False] * 10},
    }
    log.save_profile("champ", "v1", profile)
    log.save_profile("chall", "v2", {**profile, "test_accuracy": 0.92})
    gold = {}
    champion, shadow = [], []
    for i in range(n):
        g = LABELS[i % 3]
        wrong = LABELS[(i + 1) % 3]
        c_label = g if rng.random() < 0.85 else wrong
        s_label = g if rng.random() < 0.92 else LABELS[(i + 2) % 3]
        gold[f"r{i}"] = g
        base = {
            "ts": 1_800_000_000 + i,
            "request_id": f"r{i}",
            "input_index": 0,
            "abstain": False,
            "latency_ms": 3.0,
            "text_sha256": text_hash(f"t{i}"),
            "text": None,
            "probs": None,
        }
        champion.append({**base, "role": "champion", "model": "champ", "version": "v1", "label": c_label, "confidence": 0.8})
        shadow.append(
            {**base, "role": "shadow", "model": "chall", "version": "v2", "label": s_label, "confidence": 0.6 if s_label == g else 0.95}
        )
    log.write_predictions(champion)  # the champion answers first, the shadow is logged after it
    log.write_predictions(shadow)
    log.close()
    return url, gold


def test_label_free_report_has_no_verdict_and_names_estimates(tmp_path):
    url, _ = write_pair_log(tmp_path / "log.db", review_rate=0.0)
    shadow = summarize(read_log(url), MonitorSettings())["shadow"]
    lo, hi = shadow["disagreement_ci95"]
    assert lo < shadow["disagreement_rate"] < hi and shadow["paired"] == 600
    assert "live_advantage" not in shadow and shadow["verdict"].startswith("label-free, no verdict")
    # the estimates are confidences, and here they favour the wrong model: they are reported, not judged
    assert shadow["challenger_estimated_accuracy"] is not None and shadow["routed_to_review"] == 0


def test_review_sample_then_labels_give_the_paired_difference(tmp_path):
    url, gold = write_pair_log(tmp_path / "log.db", review_rate=0.5)
    log = read_log(url)
    champion = {(p["request_id"], p["input_index"]): p["label"] for p in log.predictions if p["role"] == "champion"}
    flagged = [p for p in log.predictions if p["review"]]
    disagreeing = [p for p in log.predictions if p["role"] == "shadow" and p["label"] != champion[(p["request_id"], 0)]]
    # exactly the disagreements that the hash samples, and about half of them
    assert {p["request_id"] for p in flagged} == {p["request_id"] for p in disagreeing if review_pick(p["request_id"], 0, 0.5)}
    assert 0.35 < len(flagged) / len(disagreeing) < 0.65 and all(p["role"] == "shadow" for p in flagged)

    labels = tmp_path / "review.csv"  # a person labels the routed disagreements only
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "label"])
        w.writerows((p["request_id"], gold[p["request_id"]]) for p in flagged)
    from dispute_classifier.commands.cli import main

    out = tmp_path / "m.json"
    assert main(["monitor", "--log-db", str(tmp_path / "log.db"), "--labels", str(labels), "--json", str(out)]) == 0
    shadow = json.loads(out.read_text())["shadow"]
    assert shadow["labeled_disagreements"] == len(flagged) and shadow["routed_to_review"] == len(flagged)
    true_adv = np.mean([gold[p["request_id"]] == p["label"] for p in log.predictions if p["role"] == "shadow"]) - np.mean(
        [gold[p["request_id"]] == p["label"] for p in log.predictions if p["role"] == "champion"]
    )
    lo, hi = shadow["live_advantage_ci95"]
    assert lo <= true_adv <= hi and lo > 0
    assert shadow["verdict"].startswith("challenger ahead") and "the test advantage holds" in shadow["verdict"]


def test_the_paired_interval_covers_and_wald_does_not_at_small_n():
    """Seeded simulation: 15 labelled disagreements, challenger right on 85 %, champion on 10 %
    (5 % neither). The paired interval (Tango's score interval, the decision report's) covers
    the true difference at least 93 % of the time; the plain Wald interval, the worse method,
    does not (84.0 %)."""
    rng = np.random.default_rng(7)
    n, p_s, p_c = 15, 0.85, 0.1
    outcome = rng.choice(3, p=[p_s, p_c, 1 - p_s - p_c], size=(4000, n))  # 0 challenger right, 1 champion right, 2 neither
    covered = wald = 0
    for row in outcome:
        s_right, c_right = (row == 0).tolist(), (row == 1).tolist()
        d, (lo, hi) = paired_difference_ci(s_right, c_right)
        covered += lo <= p_s - p_c <= hi
        a, b = np.mean(row == 0), np.mean(row == 1)
        se = np.sqrt(max(a + b - (a - b) ** 2, 0.0) / n)
        wald += (a - b) - 1.96 * se <= p_s - p_c <= (a - b) + 1.96 * se
    assert covered / 4000 >= 0.93
    assert wald / 4000 < 0.9
    assert paired_difference_ci([], []) == (0.0, (-1.0, 1.0))


def test_the_default_log_lives_under_the_run_folder(tmp_path, monkeypatch):
    from tests.conftest import REPO

    monkeypatch.delenv("DISPUTE_CLASSIFIER_PREDLOG", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_RUNS", str(tmp_path / "runs"))
    assert db_url() == f"sqlite:///{tmp_path / 'runs' / 'serve' / 'predictions.db'}"
    assert "*.db" in (REPO / ".gitignore").read_text().splitlines() and not (REPO / "predictions.db").exists()


def test_a_sqlite_log_of_another_version_is_refused(tmp_path):
    import sqlite3

    from dispute_classifier.core.errors import UserError

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # a log as the previous code wrote it: no meta table
        conn.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, ts FLOAT)")
    with pytest.raises(UserError, match="schema version 1, this code reads and writes version 2"):
        PredictionLog(db_url(str(old)))
    with pytest.raises(UserError, match="schema version 1"):
        read_log(db_url(str(old)))


def test_the_service_flags_sampled_disagreements_for_review(serve_app, tmp_path):
    """Through the real service: tfidf answers, knn shadows; with a review rate of 1 every
    disagreement (and nothing else) is flagged in the log."""
    import time

    client, state = serve_app(shadow="knn", review_rate=1.0)  # `serve --review-rate 1`
    assert state.log.review_rate == 1.0
    texts = [
        "please refund my order",
        "why this fee",
        "fraud, not my payment",
        "hello",
        "my card",
        "what is this",
        "money",
        "order charged",
        "payment 7",
        "I did not",
    ]
    assert client.post("/v1/classify", json={"input": texts}, headers={"X-Request-ID": "rv-1"}).status_code == 200
    deadline = time.time() + 60
    while time.time() < deadline:
        rows = read_log(db_url(str(tmp_path / "log.db"))).predictions
        if len(rows) == 2 * len(texts):
            break
        time.sleep(0.1)
    champion = {p["input_index"]: p["label"] for p in rows if p["role"] == "champion"}
    shadow = [p for p in rows if p["role"] == "shadow"]
    assert len(shadow) == len(texts)
    assert [p["review"] for p in shadow] == [p["label"] != champion[p["input_index"]] for p in shadow]
    assert any(p["review"] for p in shadow) and not all(p["review"] for p in shadow)  # both kinds occur
    assert not any(p["review"] for p in rows if p["role"] == "champion")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"review_rate": 0.5}, "--review-rate flags champion/shadow disagreements for review; it needs --shadow MODEL"),
        ({"review_rate": 1.5, "shadow": "knn"}, "--review-rate must be at least 0 and at most 1, got 1.5"),
        ({"review_rate": float("nan"), "shadow": "knn"}, "--review-rate must be at least 0 and at most 1"),
    ],
)
def test_review_rate_is_checked_before_anything_loads(settings, message):
    from dispute_classifier.serving.settings import ServeConfig

    with pytest.raises(UserError, match=re.escape(message)):
        ServeConfig(model="tfidf", **settings)
