"""Learning curve and label-noise experiment: does more data help, and what does bad data cost?

    dispute-classifier curves --task disputes --approaches tfidf,embedding \\
        --sizes 100,250,500,1000,all --noise 0,0.1,0.2,0.3 --seeds 0,1,2

Every point trains on a seeded, stratified subset of the train split (``sizes``) whose labels
are partly flipped to another random label (``noise``), and is scored on the validation split
(``--split test`` only to report). For one seed the subsets are the same at every noise level
and the flipped rows of a lower level are among those of a higher one, so the curves differ by
the noise alone. Each point's accuracy carries the shared evaluator's metrics (bootstrap
interval included); the summary gives the mean and a t-interval over seeds. Where labels were
flipped, the label-issue finder (`evaluation.label_issues`) is run on the noisy subset and
scored: of the flipped rows, how many are among its k most suspect (k = number flipped).
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import Split, TaskData, stratified_sample
from dispute_classifier.core.types import Prediction
from evaluation.evaluate import compute_metrics
from evaluation.label_issues import Maker, find_in_rows, top_k_recall


@dataclass
class CurvesConfig:
    """The learning-curve and label-noise experiment (``dispute-classifier curves``)."""

    task: str = "disputes"
    """Task name or path to a task YAML."""
    approaches: list[str] = field(default_factory=lambda: ["tfidf", "embedding"])
    """Approaches trained at every point (comma-separated); finetuned trains --recipe."""
    sizes: list[str] = field(default_factory=lambda: ["100", "250", "500", "1000", "all"])
    """Training rows per point, drawn stratified from the train split (comma-separated; all = the whole split)."""
    noise: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3])
    """Shares of the training labels flipped to another random label (comma-separated)."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Seeds of the subsets and flips (comma-separated); the summary is over them."""
    split: str = "validation"
    """Split scored: validation (for decisions) or test (reporting only)."""
    skip_finder: bool = False
    """Do not run the label-issue finder on the noisy subsets."""
    finder_approaches: list[str] = field(default_factory=lambda: ["tfidf", "embedding"])
    """Approaches of the label-issue finder on the noisy subsets (comma-separated)."""
    folds: int = 5
    """Cross-validation folds of the label-issue finder."""
    recipe: str | None = None
    """Fine-tuning recipe trained at every point when --approaches includes finetuned."""
    recipe_overrides: list[str] = field(default_factory=list)
    """Recipe overrides for the finetuned approach (comma-separated KEY=VALUE, e.g. train.max_steps=20)."""
    out: str = "reports"
    """Folder for curves-<task>-<split>.json."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""

    def __post_init__(self) -> None:
        if self.split not in ("validation", "test"):
            raise UserError(f"--split must be validation or test, got '{self.split}'")
        for size in self.sizes:
            if size != "all" and not (str(size).isdigit() and int(size) > 0):
                raise UserError(f"--sizes takes positive row counts or all, got '{size}'")
        for share in self.noise:
            if not 0 <= share < 1:
                raise UserError(f"--noise takes shares in [0, 1), got {share}")
        if not (self.approaches and self.seeds and self.sizes and self.noise):
            raise UserError("--approaches, --sizes, --noise and --seeds each need at least one value")
        if "finetuned" in self.approaches and not self.recipe:
            raise UserError("approach finetuned trains a recipe at every point: name it with --recipe")


def training_subset(train: Split, size: str, seed: int) -> Split:
    """A seeded, stratified subset of ``size`` rows (``all``: the whole split)."""
    return train if size == "all" else stratified_sample(train, int(size), seed)


def flip_labels(labels: list[str], label_list: list[str], share: float, seed: int) -> tuple[list[str], list[int]]:
    """``labels`` with ``round(share * n)`` of them flipped to a different random label, and the
    flipped indices. For one seed, the rows flipped at a lower share are flipped at a higher one
    too, to the same label."""
    rng = random.Random(seed)
    order = list(range(len(labels)))
    rng.shuffle(order)
    replacement = [rng.choice([c for c in label_list if c != label]) for label in labels]
    flipped = sorted(order[: round(share * len(labels))])
    noisy = list(labels)
    for i in flipped:
        noisy[i] = replacement[i]
    return noisy, flipped


def _predict(clf: Any, texts: list[str]) -> list[Prediction]:
    """Predictions; from class probabilities where the classifier has them (cached embeddings,
    no latency to measure here)."""
    if callable(getattr(clf, "predict_proba", None)):
        classes, probs = clf.predict_proba(texts)
        return [Prediction(classes[int(row.argmax())], float(row.max())) for row in probs]
    return clf.predict(texts)


_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def mean_interval(values: list[float]) -> dict[str, Any]:
    """Mean, standard deviation and 95 % t-interval of the mean over seeds."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "sd": None, "ci95": [mean, mean], "n_seeds": len(values)}
    sd = statistics.stdev(values)
    half = _T95.get(len(values) - 1, 1.96) * sd / math.sqrt(len(values))
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "n_seeds": len(values)}


def run_curves(
    config: CurvesConfig,
    data: TaskData,
    makers: dict[str, Maker],
    finder_makers: dict[str, Maker] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every point of the experiment and the summary over seeds, as plain data."""
    train, target = data.split("train"), data.split(config.split)
    labels = data.spec.label_list
    points: list[dict[str, Any]] = []
    finder: list[dict[str, Any]] = []
    for seed in config.seeds:
        for size in config.sizes:
            subset = training_subset(train, size, seed)
            for share in config.noise:
                noisy, flipped = flip_labels(subset.labels, labels, share, seed)
                for name, make in makers.items():
                    t0 = time.perf_counter()
                    clf = make().fit(subset.texts, noisy)
                    fit_s = time.perf_counter() - t0
                    preds = _predict(clf, target.texts)
                    close = getattr(clf, "close", None)
                    if callable(close):
                        close()
                    m = compute_metrics(target.labels, preds, labels, time.perf_counter() - t0 - fit_s, None)
                    points.append(
                        {
                            "approach": name,
                            "size": size,
                            "n_train": len(subset),
                            "noise": share,
                            "n_flipped": len(flipped),
                            "seed": seed,
                            "accuracy": m["accuracy"],
                            "accuracy_ci95": m["accuracy_ci95"],
                            "macro_f1": m["macro_f1"],
                            "fit_s": round(fit_s, 2),
                        }
                    )
                    log(
                        f"{name:<10} size {size:>5} ({len(subset)}) noise {share:.2f} seed {seed}: accuracy {m['accuracy'] * 100:.2f}% ({fit_s:.1f} s fit)"
                    )
                if flipped and finder_makers:
                    found = find_in_rows(subset.texts, noisy, labels, finder_makers, config.folds, seed)
                    at_k = top_k_recall(found["self_confidence"], flipped)
                    flagged = set(found["flagged"])
                    hits = len(flagged & set(flipped))
                    finder.append(
                        {
                            "size": size,
                            "n_train": len(subset),
                            "noise": share,
                            "seed": seed,
                            "n_flipped": len(flipped),
                            **at_k,
                            "n_flagged": len(flagged),
                            "flagged_precision": hits / len(flagged) if flagged else None,
                            "flagged_recall": hits / len(flipped),
                        }
                    )
                    log(
                        f"finder     size {size:>5} noise {share:.2f} seed {seed}: {at_k['found']} of {len(flipped)} flipped rows in its top {at_k['k']}; flags {len(flagged)}"
                    )
    return {
        "task": data.spec.name,
        "split": config.split,
        "data_hash": data.data_hash,
        "n_eval": len(target),
        "config": {k: v for k, v in vars(config).items() if k not in ("out", "data_dir")},
        "finder_approaches": list(finder_makers or {}),
        "points": points,
        "summary": summarise(points),
        "finder": finder,
        "finder_summary": summarise_finder(finder),
    }


def summarise(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean accuracy and its interval over seeds for each approach, size and noise."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["approach"], p["size"], p["noise"]), []).append(p)
    return [
        {
            "approach": a,
            "size": s,
            "noise": n,
            "n_train": round(statistics.fmean(p["n_train"] for p in ps)),
            **{f"accuracy_{k}": v for k, v in mean_interval([p["accuracy"] for p in ps]).items()},
        }
        for (a, s, n), ps in groups.items()
    ]


def summarise_finder(finder: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finder's precision and recall at k, mean over seeds, per size and noise."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for f in finder:
        groups.setdefault((f["size"], f["noise"]), []).append(f)
    return [
        {
            "size": s,
            "noise": n,
            "n_flipped": round(statistics.fmean(f["n_flipped"] for f in fs)),
            "precision_at_k": statistics.fmean(f["precision"] for f in fs),
            "recall_at_k": statistics.fmean(f["recall"] for f in fs),
            "n_flagged": round(statistics.fmean(f["n_flagged"] for f in fs)),
            "flagged_recall": statistics.fmean(f["flagged_recall"] for f in fs),
        }
        for (s, n), fs in groups.items()
    ]


def write_curves(result: dict[str, Any], out_dir: Path) -> Path:
    """Write ``curves-<task>-<split>.json`` (what the dashboard's Curves page reads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"curves-{result['task']}-{result['split']}.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return path
