"""The learning-curve and label-noise experiment, on a small task written inside the test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import load_data, load_task
from evaluation.curves import CurvesConfig, flip_labels, mean_interval, run_curves
from evaluation.label_issues import approach_maker
from tests.conftest import REPO

pytest.importorskip("cleanlab")


def test_flips_are_seeded_nested_and_always_change_the_label():
    labels = ["a", "b", "c"] * 20
    low, flipped_low = flip_labels(labels, ["a", "b", "c"], 0.1, seed=3)
    high, flipped_high = flip_labels(labels, ["a", "b", "c"], 0.3, seed=3)
    assert len(flipped_low) == 6 and len(flipped_high) == 18
    assert set(flipped_low) <= set(flipped_high)
    assert all(low[i] != labels[i] for i in flipped_low) and all(high[i] == low[i] for i in flipped_low)
    assert all(low[i] == labels[i] for i in range(60) if i not in flipped_low)
    assert flip_labels(labels, ["a", "b", "c"], 0.1, seed=3) == (low, flipped_low)
    assert flip_labels(labels, ["a", "b", "c"], 0.1, seed=4)[1] != flipped_low


def test_mean_interval_over_seeds():
    out = mean_interval([0.8, 0.9, 1.0])
    assert out["mean"] == pytest.approx(0.9) and out["ci95"][0] < 0.9 < out["ci95"][1]
    assert mean_interval([0.5])["ci95"] == [0.5, 0.5]


def test_points_summary_and_finder(noisy_task):
    data = load_data(load_task(noisy_task))
    cfg = CurvesConfig(task=str(noisy_task), approaches=["tfidf"], sizes=["15", "all"], noise=[0.0, 0.25], seeds=[0, 1], folds=3)
    result = run_curves(
        cfg,
        data,
        {"tfidf": approach_maker("tfidf", str(noisy_task))},
        {"tfidf": approach_maker("tfidf", str(noisy_task))},
        log=lambda _: None,
    )
    assert len(result["points"]) == 2 * 2 * 2 and result["split"] == "validation"
    assert {p["n_train"] for p in result["points"] if p["size"] == "all"} == {len(data.split("train"))}
    assert all(0 <= p["accuracy"] <= 1 and len(p["accuracy_ci95"]) == 2 for p in result["points"])
    assert {(s["size"], s["noise"]) for s in result["summary"]} == {("15", 0.0), ("15", 0.25), ("all", 0.0), ("all", 0.25)}
    assert all(s["accuracy_n_seeds"] == 2 for s in result["summary"])
    assert len(result["finder"]) == 2 * 2  # only noisy points are scored
    assert all(f["k"] == f["n_flipped"] > 0 and 0 <= f["recall"] <= 1 for f in result["finder"])


def test_config_checks():
    with pytest.raises(UserError, match="--sizes"):
        CurvesConfig(sizes=["ten"])
    with pytest.raises(UserError, match="--noise"):
        CurvesConfig(noise=[1.5])
    with pytest.raises(UserError, match="--recipe"):
        CurvesConfig(approaches=["finetuned"])


def test_cli_writes_report_and_warns_on_test(noisy_task, tmp_path):
    out = tmp_path / "reports"
    base = [
        sys.executable,
        "-m",
        "dispute_classifier.commands.cli",
        "curves",
        "--task",
        str(noisy_task),
        "--approaches",
        "tfidf",
        "--sizes",
        "20,all",
        "--noise",
        "0,0.2",
        "--seeds",
        "0",
        "--finder-approaches",
        "tfidf",
        "--folds",
        "3",
        "--out",
        str(out),
    ]
    res = subprocess.run(base, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    result = json.loads((out / "curves-toy-validation.json").read_text())
    assert result["config"]["sizes"] == ["20", "all"] and result["config"]["noise"] == [0.0, 0.2]
    assert "tfidf      size    20 noise 0.20" in res.stdout and "finder" in res.stdout
    res = subprocess.run(base + ["--split", "test", "--skip-finder"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0 and "for reporting only" in res.stderr
    assert json.loads((out / "curves-toy-test.json").read_text())["finder"] == []
    bad = subprocess.run(base + ["--sizes", "0"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode == 2 and "--sizes" in bad.stderr and "Traceback" not in bad.stderr
