"""The monitoring loop on real logged predictions: serve (champion + shadow), replay the test
split and a drifted file through the running service, then `monitor` flags the drift, puts the
estimated accuracy next to the true one, and judges the shadow pair."""

from __future__ import annotations

import csv
import json
import time

import pytest

from dispute_classifier.commands.cli import main
from evaluation.monitoring import MonitorSettings, psi, summarize, threshold_for
from evaluation.predlog import db_url, read_log


def write_rows(path, rows, header=("id", "text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def wait_for_rows(db, n, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(read_log(db_url(str(db))).predictions) >= n:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} predictions logged in {timeout} s")


def test_replay_then_monitor_flags_drift_and_reports_estimated_and_true_accuracy(start_server, toy_task, tmp_path, capsys):
    from tests.conftest import TOY_TRAIN

    db = tmp_path / "loop.db"
    server = start_server("--model", "tfidf", "--shadow", "knn", "--log-db", str(db))
    normal = write_rows(tmp_path / "normal.csv", [(f"n{i}", t, label) for i, (t, label) in enumerate(TOY_TRAIN)])
    labels = tmp_path / "labels.csv"
    assert main(["replay", str(normal), "--url", server.url, "--id-column", "id", "--labels-out", str(labels), "--concurrency", "4"]) == 0
    assert "30 answered" in capsys.readouterr().out
    wait_for_rows(db, 60)  # champion + shadow
    assert (
        main(
            ["monitor", "--log-db", str(db), "--labels", str(labels), "--min-window-predictions", "20", "--json", str(tmp_path / "m.json")]
        )
        == 0
    )
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["overall"]["label_drift"] is False and "LABEL DRIFT" not in out
    assert report["overall"]["true_accuracy"] == 1.0 and report["overall"]["labeled"] == 30
    assert 0.5 <= report["overall"]["estimated_accuracy"] <= 1.0
    shadow = report["shadow"]
    assert shadow["paired"] == 30 and shadow["challenger"].startswith("knn:") and "verdict:" in out
    assert 0 <= shadow["disagreement_ci95"][0] <= shadow["disagreement_rate"] <= shadow["disagreement_ci95"][1] <= 1

    drifted = write_rows(tmp_path / "drifted.csv", [(f"d{i}", f"another fee of {i} euros was charged", "fee") for i in range(40)])
    assert main(["replay", str(drifted), "--url", server.url, "--batch-size", "8"]) == 0
    capsys.readouterr()
    wait_for_rows(db, 140)
    assert main(["monitor", "--log-db", str(db), "--min-window-predictions", "20", "--window-minutes", "0.02"]) == 0
    out = capsys.readouterr().out
    summary = summarize(read_log(db_url(str(db))), MonitorSettings(min_window_predictions=20))
    assert summary["overall"]["label_drift"] is True and summary["overall"]["label_psi"] > 0.2
    assert "LABEL DRIFT" in out


def test_monitor_without_a_log_says_what_to_run(tmp_path, capsys):
    assert main(["monitor", "--log-db", str(tmp_path / "none.db")]) == 2
    assert "start `dispute-classifier serve`" in capsys.readouterr().err


def test_psi_and_threshold():
    assert psi({"a": 0.5, "b": 0.5}, {"a": 50, "b": 50}) == pytest.approx(0.0)
    assert psi({"a": 0.5, "b": 0.5}, {"a": 100}) > 1
    # right on the top 3 of 4: 75 % overall; 100 % at or above 0.8
    assert threshold_for([0.9, 0.85, 0.8, 0.3], [True, True, True, False], 0.95) == 0.8
    assert threshold_for([0.9, 0.3], [True, True], 0.95) == 0.0


@pytest.mark.parametrize(
    ("flag", "value"), [("--alpha", "1.5"), ("--alpha", "nan"), ("--window-minutes", "inf"), ("--min-window-predictions", "0")]
)
def test_bad_monitor_settings_are_one_line_errors(flag, value, capsys):
    assert main(["monitor", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"(set {flag})" in err and "Traceback" not in err
