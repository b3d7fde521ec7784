"""Classifier resolution: turn a ``--model`` name into a ready `Classifier` (for classify).

A name is either a registered approach (`dispute_classifier.core.registry`) or a saved
fine-tuned model ``NAME[:VERSION]``. Approaches are fitted on the task's whole training
file (train + validation, never the test split); those whose classifier sets
``cache_fitted = True`` (the classical baselines) are pickled under
``<cache>/models/`` so the next call loads them instead of fitting again. The cache key
covers everything the fitted model depends on: the task's data hash, the approach, its
resolved settings and the versions of the libraries that pickle it.

Any other name is a saved fine-tuned model, served by the ``finetuned`` approach (its
settings take the name as ``finetuned.model``), which looks it up in `finetune.registry`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from dispute_classifier.commands.approaches import load_approaches
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.registry import get_approach
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import TaskSpec, cache_dir, load_data
from dispute_classifier.core.types import Classifier
from evaluation.runs import code_version, config_hash, package_versions
from finetune import registry

FINETUNED_APPROACH = "finetuned"
"""The approach that serves a saved fine-tuned model named by its settings' ``model`` field."""
_PICKLE_PACKAGES = ("scikit-learn", "numpy", "scipy", "sentence-transformers", "joblib")
"""Libraries whose version changes can break or alter an unpickled model."""


@dataclass
class ResolvedClassifier:
    """A classifier ready to predict, and how the output files name it."""

    classifier: Classifier
    name: str
    """Model name written to every output row: the classifier's ``name`` (the approach, or the
    fine-tuned model with its resolved version)."""
    version: str
    """Model version written to every output row: the fitted-model cache key for approaches,
    the saved version for fine-tuned models."""
    source: str
    """How it was obtained, for the terminal: ``cached``, ``fitted``, ``fitted, not cached`` or
    ``registry``."""
    card: dict | None = None
    """A registered baseline's model card (with the monitoring profile measured at registration on
    rows the model never trained on), else None."""


def fitted_key(approach: str, cfg: RunConfig, data_hash: str) -> str:
    """Cache key of a fitted approach: data, approach, resolved settings, library versions and
    the project's code version (a fix to an approach must not serve the old fitted model)."""
    versions = {k: v for k, v in package_versions().items() if k in _PICKLE_PACKAGES}
    for name in _PICKLE_PACKAGES:  # not all are tracked by the run records
        if name not in versions:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pass
    payload = {"data": data_hash, "approach": approach, "config": config_hash(cfg.approach_settings()), "versions": versions, "code": code_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fitted_path(task: str, approach: str, key: str) -> Path:
    return cache_dir() / "models" / f"{task}-{approach}-{key}.joblib"


def _load_cached(path: Path) -> Classifier | None:
    import joblib

    try:
        return joblib.load(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign pickle: fit again rather than fail
        print(f"warning: fitted-model cache {path} is unreadable ({exc}); fitting again", file=sys.stderr)
        return None


def _save_cached(clf: Classifier, path: Path) -> None:
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        joblib.dump(clf, tmp)
        os.replace(tmp, path)  # readers never see half a model
    finally:
        Path(tmp).unlink(missing_ok=True)


def fit_approach(cfg: RunConfig, spec: TaskSpec, data_dir: Path | None = None, refit: bool = False, built: Classifier | None = None) -> ResolvedClassifier:
    """Build approach ``cfg.approach`` (unless ``built``) and fit it on the task's training
    file, through the cache."""
    clf = built if built is not None else get_approach(cfg.approach).build(cfg)
    data = load_data(spec, data_dir)
    cacheable = clf.cache_fitted
    key = fitted_key(cfg.approach, cfg, data.data_hash)
    path = fitted_path(spec.name, cfg.approach, key)
    if cacheable and not refit:
        cached = _load_cached(path)
        if cached is not None:
            return ResolvedClassifier(cached, cached.name, key, "cached")
    rows = data.fit_split("test")
    if cacheable:
        print(f"fitting {cfg.approach} on {spec.name} {rows.name} ({len(rows):,} rows)", file=sys.stderr)
    clf.fit(rows.texts, rows.labels)
    if cacheable:
        _save_cached(clf, path)
    return ResolvedClassifier(clf, clf.name, key, "fitted" if cacheable else "fitted, not cached")


def resolve_classifier(name: str, spec: TaskSpec, cfg: RunConfig, data_dir: Path | None = None, refit: bool = False) -> ResolvedClassifier:
    """The one place ``--model`` is turned into a classifier: an approach name (fitted and
    cached as needed) or a saved fine-tuned model ``NAME[:VERSION|@ALIAS]``. ``cfg`` is not
    changed: the resolved settings are a new config."""
    approaches = load_approaches()
    if ":" not in name and "@" not in name and name in approaches:
        return fit_approach(replace(cfg, approach=name), spec, data_dir, refit)
    registered = load_registered(name, spec)
    if registered is not None:
        return registered
    unknown = (
        f"unknown model '{name}'; approaches: {', '.join(approaches)}, or a saved fine-tuned model"
        " NAME[:VERSION|@ALIAS] (see `dispute-classifier models list`)"
    )
    cfg = replace(cfg, approach=FINETUNED_APPROACH, sections=dict(cfg.sections))
    cfg.sections[FINETUNED_APPROACH] = replace(cfg.section(FINETUNED_APPROACH), model=name)
    try:
        clf = get_approach(FINETUNED_APPROACH).build(cfg)  # looks the name up in the registry
    except UserError as exc:
        raise UserError(f"{unknown}. {exc}") from None
    # "Fitting" a saved model only checks that it was trained on this task's labels.
    return fit_approach(cfg, spec, data_dir, refit, built=clf)


REGISTERED_MODEL = "model.joblib"
"""The fitted classifier inside a registered baseline's version folder."""


def load_registered(ref: str, spec: TaskSpec) -> ResolvedClassifier | None:
    """A baseline registered with `dispute-classifier models register` (``NAME[:VERSION|@ALIAS]``),
    or None when ``ref`` names no such version (a fine-tuned model, or nothing)."""
    import joblib


    try:
        folder = registry.resolve(ref)
    except UserError:
        if "@" in ref and (registry.models_dir() / ref.partition("@")[0]).is_dir():
            raise  # a known model with an unknown alias: say so, not "unknown model"
        return None
    card = registry.read_card(folder)
    if card.get("kind") != "approach":
        return None
    if card["task"] != spec.name:
        raise UserError(f"model {ref} was registered for task '{card['task']}', not '{spec.name}'; pass --task {card['task']} or register one for this task")
    try:
        clf = joblib.load(folder / REGISTERED_MODEL)
    except Exception as exc:  # a missing, truncated or foreign pickle
        raise UserError(f"model {ref}: {folder / REGISTERED_MODEL} is unreadable ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''});"
                        f" register it again with `dispute-classifier models register {card['approach']} --name {card['name']}`") from None
    return ResolvedClassifier(clf, card["name"], f"v{card['version']}", "registry", card=card)


def served_identity(resolved: ResolvedClassifier) -> tuple[str, str]:
    """(model, version) as the service and its log name a classifier: a saved model by its
    registry name and ``vN``, an approach by its name and fitted-model key."""
    card = getattr(resolved.classifier, "card", None)
    if isinstance(card, dict) and "version" in card:
        return str(card["name"]), f"v{card['version']}"
    return resolved.name, resolved.version


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
        profile["validation"] = {"confidence": [p.confidence or 0.0 for p in preds], "correct": [p.label == g for p, g in zip(preds, val.labels)],
                                 "label": [p.label for p in preds]}
        profile["calibrated_on"] = f"validation split ({len(val):,} rows)"
    test = data.split("test")
    preds = resolved.classifier.predict(test.texts)
    profile["test_accuracy"] = sum(p.label == g for p, g in zip(preds, test.labels)) / len(test) if len(test) else None
    profile["test_confidence"] = [p.confidence or 0.0 for p in preds]  # the estimate's own error on test
    return profile
