"""The monitoring profile of a served model: what ``monitor`` compares live traffic with, measured
on rows the model never trained on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dispute_classifier.core.plugins import get_approach
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import TaskSpec, load_data
from dispute_classifier.resolution.resolve import ResolvedClassifier

HELD_OUT_FOLDS = 5
"""Folds of the out-of-fold predictions an approach's monitoring profile is measured on."""


def held_out_predictions(approach: str, spec: TaskSpec, rows, folds: int = HELD_OUT_FOLDS, seed: int = 0) -> dict:
    """Out-of-fold predictions of ``approach`` on ``rows``: each row predicted by a copy fitted
    on the other folds (stratified), so none is predicted by a model that trained on it.
    Returns ``{"confidence", "correct", "label"}`` in row order."""
    from sklearn.model_selection import StratifiedKFold

    smallest = min(Counter(rows.labels).values())
    folds = max(2, min(folds, smallest))  # every fold needs every label once
    conf: list[float] = [0.0] * len(rows)
    label: list[str] = [""] * len(rows)
    for fit_idx, held_idx in StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows.texts, rows.labels):
        judge = get_approach(approach).build(RunConfig(task=spec.name, approach=approach))
        judge.fit([rows.texts[i] for i in fit_idx], [rows.labels[i] for i in fit_idx])
        for i, p in zip(held_idx, judge.predict([rows.texts[i] for i in held_idx])):
            conf[i], label[i] = p.confidence or 0.0, p.label
    return {"confidence": conf, "correct": [p == g for p, g in zip(label, rows.labels)], "label": label}


def model_profile(resolved: ResolvedClassifier, spec: TaskSpec, data_dir: Path | None = None, approach: str | None = None) -> dict:
    """What monitoring compares traffic with: the training label distribution, and predictions on
    rows the model never trained on (confidence, correctness and predicted label: for the
    isotonic calibration, the abstain threshold and the drift reference), and accuracy and
    confidences on the test split.

    A registered baseline returns the profile its card stored at registration (it is never
    re-measured: the registered model trained on the validation rows too). With ``approach`` (an
    approach served or registered by name, fitted on train+validation) the held-out predictions
    are out-of-fold over train+validation (`held_out_predictions`); a saved fine-tuned model
    predicts the validation split (held out when it was trained on train only, as recipes do).
    """
    card_profile = (resolved.card or {}).get("profile")
    if card_profile and card_profile.get("validation"):
        return card_profile
    data = load_data(spec, data_dir)
    fit_rows = data.fit_split("test")
    counts = Counter(fit_rows.labels)
    profile: dict = {"labels": spec.label_list, "train_distribution": {k: v / len(fit_rows) for k, v in counts.items()}}
    if approach is not None:
        profile["validation"] = held_out_predictions(approach, spec, fit_rows)
        profile["calibrated_on"] = f"{fit_rows.name} out of fold ({len(fit_rows):,} rows, {approach} refitted per fold)"
    elif "validation" in data.splits:
        val = data.split("validation")
        preds = resolved.classifier.predict(val.texts)
        profile["validation"] = {
            "confidence": [p.confidence or 0.0 for p in preds],
            "correct": [p.label == g for p, g in zip(preds, val.labels)],
            "label": [p.label for p in preds],
        }
        profile["calibrated_on"] = f"validation split ({len(val):,} rows)"
    test = data.split("test")
    preds = resolved.classifier.predict(test.texts)
    profile["test_accuracy"] = sum(p.label == g for p, g in zip(preds, test.labels)) / len(test) if len(test) else None
    profile["test_confidence"] = [p.confidence or 0.0 for p in preds]  # the estimate's own error on test
    return profile
