"""Clean, then train: the label-issue finder's suspects are dropped or relabelled in the fit
rows only (never the scored rows), and the run records what was changed."""

from __future__ import annotations

import random

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import load_data, load_task
from evaluation.cleaning import cleaned_fit_rows
from evaluation.evaluate import evaluate_config
from tests.conftest import TOY_LABELS, task_folder, write_task

WORDS = {"refund": "refund my order money back", "fee": "charged a fee pounds", "fraud": "did not make payment fraud"}


def _noisy_task(tmp_path, monkeypatch):
    """60 training rows a bag of words separates, 6 of them given a wrong label (ids known)."""
    rng = random.Random(0)
    rows, flipped = [], []
    for label, words in WORDS.items():
        for i in range(20):
            text = " ".join(rng.sample(words.split(), 3)) + f" {i}"
            rows.append((text, label))
    for k in range(0, 60, 10):  # every tenth row gets the next label
        text, label = rows[k]
        wrong = list(WORDS)[(list(WORDS).index(label) + 1) % 3]
        rows[k] = (text, wrong)
        flipped.append(text)
    return write_task(task_folder(tmp_path, monkeypatch), train=rows, labels=TOY_LABELS), flipped


def test_drop_removes_planted_errors_from_the_fit_rows_only(tmp_path, monkeypatch):
    task, flipped = _noisy_task(tmp_path, monkeypatch)
    data = load_data(load_task(task))
    before = data.fit_split("validation")
    cleaned, info = cleaned_fit_rows(data, "validation", "drop", approaches=("tfidf",), folds=3)
    rows = cleaned.fit_split("validation")
    assert info["rows_before"] == len(before) and info["rows_after"] == len(rows) == len(before) - info["suspects"]
    planted = {before.ids[i] for i, t in enumerate(before.texts) if t in flipped}
    assert planted and planted <= set(info["changed_ids"]), "the finder should catch the planted label errors"
    assert not set(info["changed_ids"]) & set(data.split("validation").ids), "scored rows never enter the cleaning"
    assert cleaned.split("validation").ids == data.split("validation").ids
    assert data.fit_split("validation").ids == before.ids, "the original data is unchanged"
    # the test split's fit rows (train + validation) are untouched by a validation cleaning
    assert cleaned.fit_split("test").ids == data.fit_split("test").ids


def test_relabel_gives_suspects_the_suggested_label(tmp_path, monkeypatch):
    task, flipped = _noisy_task(tmp_path, monkeypatch)
    data = load_data(load_task(task))
    cleaned, info = cleaned_fit_rows(data, "validation", "relabel", approaches=("tfidf",), folds=3)
    rows = cleaned.fit_split("validation")
    assert len(rows) == info["rows_before"]
    fixed = {t: lab for t, lab in zip(rows.texts, rows.labels)}
    for text in flipped:
        if text in fixed:
            expected = next(lab for lab, words in WORDS.items() if set(text.split()[:3]) <= set(words.split()))
            assert fixed[text] == expected


def test_a_cleaned_run_is_its_own_setting_and_records_the_cleaning(tmp_path, monkeypatch):
    task, _ = _noisy_task(tmp_path, monkeypatch)
    data = load_data(load_task(task))
    plain, _ = evaluate_config(
        RunConfig(task=str(task), approach="tfidf", split="validation", runs_dir=str(tmp_path / "runs")), data, progress=False
    )
    run, _ = evaluate_config(
        RunConfig(task=str(task), approach="tfidf", split="validation", runs_dir=str(tmp_path / "runs"), clean_train="drop"),
        data,
        progress=False,
    )
    assert run.meta.extra["cleaning"]["mode"] == "drop" and run.meta.extra["cleaning"]["suspects"] > 0
    assert run.meta.config_hash != plain.meta.config_hash and "label issues dropped" in run.meta.model
    with pytest.raises(UserError, match="clean_train must be none, drop or relabel"):
        RunConfig(clean_train="fix")
