"""The label-issue finder: out-of-fold probabilities of the train split, ranked by cleanlab."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import load_data, load_task
from evaluation.label_issues import (
    LabelIssueConfig,
    label_issues,
    rank_issues,
    top_k_recall,
)
from tests.conftest import REPO
from tests.quality.conftest import PLANTED

pytest.importorskip("cleanlab")


def _planted_in_train(data) -> set[str]:
    ids = {f"train:{i + 2}" for i in PLANTED}  # CSV row numbers count the header as row 1
    return ids & set(data.split("train").ids)


def test_planted_errors_rank_first(noisy_task):
    data = load_data(load_task(noisy_task))
    section = label_issues(data, LabelIssueConfig(issue_approaches=["tfidf"], issue_folds=3), seed=0)
    planted = _planted_in_train(data)
    assert planted, "the validation cut took every planted row; change the fixture"
    top = [r["id"] for r in section["rows"][: len(planted)]]
    assert set(top) == planted
    first = section["rows"][0]
    assert first["suggested"] != first["given"] and first["given_probability"] < first["suggested_probability"]
    assert section["n_rows"] == len(data.split("train")) and section["split"] == "train"
    # only the train split is looked at: no validation or test id is ever flagged
    assert {r["id"] for r in section["rows"]} <= set(data.split("train").ids)


def test_rank_issues_and_top_k_on_known_probabilities():
    labels = ["a", "a", "b", "b", "a", "b"]
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.1, 0.9], [0.2, 0.8], [0.05, 0.95], [0.85, 0.15]])  # rows 4 and 5 look wrong
    flagged, confidence = rank_issues(labels, probs, ["a", "b"])
    assert flagged[:2] == [4, 5]
    assert confidence[4] == pytest.approx(0.05)
    assert top_k_recall(confidence, [4, 5]) == {"k": 2, "found": 2, "precision": 1.0, "recall": 1.0}
    assert top_k_recall(confidence, [0, 5])["found"] == 1


def test_approach_without_probabilities_is_a_user_error(noisy_task):
    data = load_data(load_task(noisy_task))
    with pytest.raises(UserError, match="gives no class probabilities"):
        label_issues(data, LabelIssueConfig(issue_approaches=["knn"]))


def test_data_check_cli_writes_issues_to_json_and_markdown(noisy_task, tmp_path):
    out = tmp_path / "reports"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "dispute_classifier.commands.cli",
            "data",
            "check",
            "--task",
            str(noisy_task),
            "--out",
            str(out),
            "--label-issues",
            "--issue-approaches",
            "tfidf",
            "--issue-folds",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "suspected label errors in train:" in res.stdout
    report = json.loads((out / "data-check-toy.json").read_text())
    issues = report["label_issues"]
    assert issues["approaches"] == ["tfidf"] and issues["n_issues"] == len(issues["rows"]) >= 1
    assert {"given", "suggested", "text", "id", "rank"} <= set(issues["rows"][0])
    md = (out / "data-check-toy.md").read_text()
    assert "## Suspected label errors" in md and issues["rows"][0]["text"] in md
