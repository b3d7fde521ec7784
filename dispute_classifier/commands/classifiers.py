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
from dataclasses import dataclass, replace
from pathlib import Path

from dispute_classifier.commands.approaches import load_approaches
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.registry import get_approach
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import TaskSpec, cache_dir, load_data
from dispute_classifier.core.types import Classifier
from evaluation.runs import code_version, config_hash, package_versions

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
