"""Classifier resolution: turn a ``--model`` name into a ready `Classifier` (classify, serve, models).

A name is either a registered approach (`dispute_classifier.core.plugins`), fitted on the task's
whole training file (train + validation, never the test split) through the fitted-model cache
(`fitted_cache`), a baseline registered with ``models register``, or a saved fine-tuned model
``NAME[:VERSION|@ALIAS]``, served by the ``finetuned`` approach (its settings take the name as
``finetuned.model``), which looks it up in `finetune.model_store`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.plugins import get_approach
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import TaskSpec, load_data
from dispute_classifier.core.types import Classifier
from dispute_classifier.resolution.approaches import load_approaches
from dispute_classifier.resolution.fitted_cache import fitted_key, fitted_path, load_cached, save_cached
from finetune import model_store

FINETUNED_APPROACH = "finetuned"
"""The approach that serves a saved fine-tuned model named by its settings' ``model`` field."""


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


def fit_approach(
    cfg: RunConfig, spec: TaskSpec, data_dir: Path | None = None, refit: bool = False, built: Classifier | None = None
) -> ResolvedClassifier:
    """Build approach ``cfg.approach`` (unless ``built``) and fit it on the task's training
    file, through the cache."""
    clf = built if built is not None else get_approach(cfg.approach).build(cfg)
    data = load_data(spec, data_dir)
    cacheable = clf.cache_fitted
    key = fitted_key(cfg.approach, cfg, data.data_hash)
    path = fitted_path(spec.name, cfg.approach, key)
    if cacheable and not refit:
        cached = load_cached(path)
        if cached is not None:
            return ResolvedClassifier(cached, cached.name, key, "cached")
    rows = data.fit_split("test")
    if cacheable:
        print(f"fitting {cfg.approach} on {spec.name} {rows.name} ({len(rows):,} rows)", file=sys.stderr)
    clf.fit(rows.texts, rows.labels)
    if cacheable:
        save_cached(clf, path)
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
        folder = model_store.resolve(ref)
    except UserError:
        if "@" in ref and (model_store.models_dir() / ref.partition("@")[0]).is_dir():
            raise  # a known model with an unknown alias: say so, not "unknown model"
        return None
    card = model_store.read_card(folder)
    if card.get("kind") != "approach":
        return None
    if card["task"] != spec.name:
        raise UserError(
            f"model {ref} was registered for task '{card['task']}', not '{spec.name}'; pass --task {card['task']} or register one for this task"
        )
    try:
        clf = joblib.load(folder / REGISTERED_MODEL)
    except Exception as exc:  # a missing, truncated or foreign pickle
        raise UserError(
            f"model {ref}: {folder / REGISTERED_MODEL} is unreadable ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''});"
            f" register it again with `dispute-classifier models register {card['approach']} --name {card['name']}`"
        ) from None
    return ResolvedClassifier(clf, card["name"], f"v{card['version']}", "registry", card=card)


def served_identity(resolved: ResolvedClassifier) -> tuple[str, str]:
    """(model, version) as the service and its log name a classifier: a saved model by its
    registry name and ``vN``, an approach by its name and fitted-model key."""
    card = getattr(resolved.classifier, "card", None)
    if isinstance(card, dict) and "version" in card:
        return str(card["name"]), f"v{card['version']}"
    return resolved.name, resolved.version
