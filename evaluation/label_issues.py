"""Suspected label errors in the training split, found by confident learning.

    dispute-classifier data check --task disputes --label-issues

Each training row gets out-of-fold predicted probabilities: the split is cut into seeded,
stratified folds and every fold is predicted by baselines fitted on the other folds (only the
train split is used, never validation or test). The probabilities of several approaches are
averaged. cleanlab's ``find_label_issues`` then flags the rows whose given label the models
find implausible, ranked by self-confidence (the out-of-fold probability of the given label,
lowest first). A flagged row is a row for a person to read, not a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from dispute_classifier.core import plugins
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import TaskData


@dataclass
class LabelIssueConfig:
    """The label-issue finder of ``data check --label-issues``."""

    issue_approaches: list[str] = field(default_factory=lambda: ["tfidf", "embedding"])
    """Approaches whose out-of-fold probabilities are averaged (comma-separated; each must give
    class probabilities: tfidf, embedding)."""
    issue_folds: int = 5
    """Cross-validation folds over the train split (stratified, seeded by --seed)."""
    issue_max_rows: int = 200
    """Most suspected rows written to the report (the count covers all of them)."""

    def __post_init__(self) -> None:
        if not self.issue_approaches:
            raise UserError("--issue-approaches is empty; name at least one, e.g. tfidf")
        if self.issue_folds < 2:
            raise UserError(f"--issue-folds must be at least 2, got {self.issue_folds}")


Maker = Callable[[], Any]
"""Makes an unfitted classifier with ``fit(texts, labels)`` and ``predict_proba(texts)``."""


def approach_maker(name: str, task: str) -> Maker:
    """A maker of the registered approach ``name`` with its default settings; it must give
    class probabilities (``predict_proba``)."""

    entry = plugins.get_approach(name)

    def make() -> Any:
        clf = entry.build(RunConfig(task=task, approach=name))
        if not callable(getattr(clf, "predict_proba", None)):
            raise UserError(f"approach '{name}' gives no class probabilities; use tfidf or embedding for label issues")
        return clf

    return make


def out_of_fold_probabilities(
    make: Maker,
    texts: Sequence[str],
    labels: Sequence[str],
    label_list: Sequence[str],
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """One row per text, one column per label of ``label_list``: each row predicted by a model
    fitted on the other folds only (seeded, stratified folds)."""
    from sklearn.model_selection import StratifiedKFold

    index = {label: j for j, label in enumerate(label_list)}
    probs = np.zeros((len(texts), len(label_list)))
    smallest = min(np.unique(np.asarray(labels), return_counts=True)[1])
    folds = max(2, min(folds, int(smallest))) if smallest >= 2 else 2
    for fit_idx, held_idx in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels):
        clf = make().fit([texts[i] for i in fit_idx], [labels[i] for i in fit_idx])
        classes, p = clf.predict_proba([texts[i] for i in held_idx])
        for j, c in enumerate(classes):
            probs[held_idx, index[c]] = p[:, j]
    return probs


def rank_issues(labels: Sequence[str], probs: np.ndarray, label_list: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """(indices cleanlab flags as label issues, ranked by self-confidence, most suspect first;
    every row's self-confidence: the probability of its given label)."""
    from cleanlab.filter import find_label_issues

    index = {label: j for j, label in enumerate(label_list)}
    given = np.array([index[label] for label in labels])
    present = sorted(set(given.tolist()))  # cleanlab wants every column to be a label that occurs
    column = {j: k for k, j in enumerate(present)}
    sub = probs[:, present]
    totals = sub.sum(axis=1, keepdims=True)
    sub = np.where(totals > 0, sub / np.where(totals > 0, totals, 1), 1 / len(present))
    dense = np.array([column[j] for j in given])
    flagged = find_label_issues(dense, sub, return_indices_ranked_by="self_confidence")
    self_confidence = sub[np.arange(len(dense)), dense]
    return [int(i) for i in flagged], self_confidence


def top_k_recall(scores: np.ndarray, truly_wrong: Sequence[int], k: int | None = None) -> dict[str, float]:
    """Of the ``truly_wrong`` rows (planted label flips), how many are among the ``k`` rows
    with the lowest self-confidence (``k`` defaults to their number): precision and recall at k."""
    wrong = set(truly_wrong)
    k = len(wrong) if k is None else k
    if k == 0:
        return {"k": 0, "found": 0, "precision": float("nan"), "recall": float("nan")}
    top = set(np.argsort(scores, kind="stable")[:k].tolist())
    found = len(top & wrong)
    return {"k": k, "found": found, "precision": found / k, "recall": found / len(wrong) if wrong else float("nan")}


def find_in_rows(
    texts: Sequence[str],
    labels: Sequence[str],
    label_list: Sequence[str],
    makers: dict[str, Maker],
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Out-of-fold probabilities of every maker, averaged, and what cleanlab flags in them:
    ``probs``, ``flagged`` (ranked), ``self_confidence`` and each approach's out-of-fold accuracy."""
    per: dict[str, np.ndarray] = {
        name: out_of_fold_probabilities(make, texts, labels, label_list, folds, seed) for name, make in makers.items()
    }
    probs = sum(per.values()) / len(per)
    gold = np.array([list(label_list).index(label) for label in labels])
    accuracy = {name: float((p.argmax(axis=1) == gold).mean()) for name, p in per.items()}
    if len(per) > 1:
        accuracy["average"] = float((probs.argmax(axis=1) == gold).mean())
    flagged, self_confidence = rank_issues(labels, probs, label_list)
    return {"probs": probs, "flagged": flagged, "self_confidence": self_confidence, "oof_accuracy": accuracy}


def label_issues(data: TaskData, config: LabelIssueConfig | None = None, seed: int = 0) -> dict[str, Any]:
    """The ``label_issues`` section of the data report: suspected rows of the train split with
    their given label, the suggested (most probable) label and the text."""
    config = config or LabelIssueConfig()
    train = data.split("train")
    labels = data.spec.label_list
    makers = {name: approach_maker(name, str(data.spec.path or data.spec.name)) for name in config.issue_approaches}
    found = find_in_rows(train.texts, train.labels, labels, makers, config.issue_folds, seed)
    probs = found["probs"]
    rows = []
    for rank, i in enumerate(found["flagged"][: config.issue_max_rows], start=1):
        suggested = int(probs[i].argmax())
        rows.append(
            {
                "rank": rank,
                "id": train.ids[i],
                "text": train.texts[i],
                "given": train.labels[i],
                "suggested": labels[suggested],
                "given_probability": round(float(probs[i, labels.index(train.labels[i])]), 4),
                "suggested_probability": round(float(probs[i, suggested]), 4),
            }
        )
    return {
        "split": "train",
        "n_rows": len(train),
        "approaches": list(config.issue_approaches),
        "folds": config.issue_folds,
        "seed": seed,
        "method": "cleanlab find_label_issues on averaged out-of-fold probabilities, ranked by self-confidence",
        "oof_accuracy": found["oof_accuracy"],
        "n_issues": len(found["flagged"]),
        "rows": rows,
    }
