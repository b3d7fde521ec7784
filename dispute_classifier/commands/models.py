"""``dispute-classifier models list | register | promote | rollback | show``: versions and aliases
of saved models, fine-tuned and registered baselines alike (`finetune.model_store`)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dispute_classifier.core.config import to_dict
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.resolution.approaches import load_approaches
from dispute_classifier.resolution.profile import model_profile
from dispute_classifier.resolution.resolve import REGISTERED_MODEL, fit_approach
from evaluation.runs import now_iso
from finetune import model_store


@dataclass
class RegisterConfig:
    """Fit an approach and save it as the next version of a registered model."""

    approach: str
    """Approach to fit on the task's whole training file (tfidf, embedding, knn, ...)."""
    task: str = "disputes"
    """Task name or path to a task YAML."""
    name: str | None = None
    """Registered model name (default: the approach name)."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""


@dataclass
class AliasConfig:
    """Move an alias of a registered model."""

    ref: str
    """NAME:VERSION to promote, or NAME to roll back."""
    alias: str
    """The alias (for example champion or challenger); a version may carry several."""
    reason: str = ""
    """Why, recorded with who and when in models/NAME/aliases.json."""


def register(cfg: RegisterConfig) -> Path:
    """Fit ``cfg.approach`` (through the fitted-model cache), measure its monitoring profile and
    save both as the next version of ``cfg.name``; returns the version folder."""
    import joblib

    approaches = load_approaches()
    if cfg.approach not in approaches:
        raise UserError(f"unknown approach '{cfg.approach}'; choose one of: {', '.join(approaches)}")
    spec = load_task(cfg.task)
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    run_cfg = RunConfig(task=spec.name, approach=cfg.approach)
    resolved = fit_approach(run_cfg, spec, data_dir)
    if not resolved.classifier.cache_fitted:
        raise UserError(
            f"approach '{cfg.approach}' cannot be saved as a file (only fitted baselines such as tfidf can); serve it by name instead"
        )
    profile = model_profile(resolved, spec, data_dir, approach=cfg.approach)
    folder = model_store.new_version(cfg.name or cfg.approach)
    joblib.dump(resolved.classifier, folder / REGISTERED_MODEL)
    card = {
        "kind": "approach",
        "name": folder.parent.name,
        "version": int(folder.name[1:]),
        "approach": cfg.approach,
        "task": spec.name,
        "data_hash": load_data(spec, data_dir).data_hash,
        "fit_split": "train+validation",
        "settings": to_dict(run_cfg.approach_settings()),
        "fitted_key": resolved.version,
        "created": now_iso(),
        "evaluations": {"test": {"accuracy": profile["test_accuracy"]}},
        "profile": profile,
    }
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(card, f, indent=2)
    os.replace(tmp, folder / model_store.CARD)  # the card last: the version counts once it exists
    return folder


def describe_version(name: str, version: int, path: Path, aliases: list[str]) -> str:
    """One line about a saved version: kind, task, test accuracy, aliases, folder."""

    card = model_store.read_card(path)
    kind = f"{card['approach']} baseline" if card.get("kind") == "approach" else f"{card.get('recipe', {}).get('head', '?')}-head fine-tune"
    evals = ", ".join(f"{s} {e['accuracy'] * 100:.2f}%" for s, e in card.get("evaluations", {}).items() if e.get("accuracy") is not None)
    tags = "  " + " ".join(f"@{a}" for a in aliases) if aliases else ""
    return f"{name}:v{version}  task {card['task']}  {kind}  {evals}{tags}  {path}"


def list_lines() -> list[str]:
    """``models list``: every finished version with its aliases."""

    models = model_store.list_models()
    if not models:
        return [
            f"no saved models under {model_store.models_dir()}; register a baseline with `dispute-classifier models register tfidf`"
            " or train one with `dispute-classifier finetune train --recipe smollm2-135m-lora-cpu`"
        ]
    out = []
    for name, version, path in models:
        tags = [a for a, v in model_store.aliases(name).items() if v == version]
        out.append(describe_version(name, version, path, tags))
    return out


def show_lines(ref: str) -> list[str]:
    """``models show NAME[:VERSION|@ALIAS]``: the version it resolves to, its aliases and the
    alias history of the model."""

    path = model_store.resolve(ref)
    name, version = path.parent.name, int(path.name[1:])
    tags = [a for a, v in model_store.aliases(name).items() if v == version]
    card = model_store.read_card(path)
    lines = [f"{ref} -> {describe_version(name, version, path, tags)}"]
    if card.get("kind") == "approach":
        lines.append(
            f"  fitted on {card['fit_split']} of {card['task']} (data {card['data_hash'][:12]}), settings {json.dumps(card['settings'])}"
        )
    events = model_store.alias_events(name)
    if events:
        lines.append("  alias history:")
        for e in events:
            target = f"v{e['version']}" if e.get("version") is not None else "(removed)"
            came = f" from v{e['from_version']}" if e.get("from_version") is not None else ""
            lines.append(
                f"    {e['at']}  {e['action']:<8} @{e['alias']} -> {target}{came}  by {e['by']}" + (f": {e['why']}" if e.get("why") else "")
            )
    return lines


def promote(cfg: AliasConfig) -> str:
    """Point the alias at NAME:VERSION; returns the line to print."""

    version = model_store.promote(cfg.ref, cfg.alias, cfg.reason)
    return f"{cfg.ref.partition(':')[0]}@{cfg.alias} -> v{version}"


def rollback(cfg: AliasConfig) -> str:
    """Point the alias back at its previous version; returns the line to print."""

    name = cfg.ref.partition(":")[0].partition("@")[0]
    left, now = model_store.rollback(name, cfg.alias, cfg.reason)
    return f"{name}@{cfg.alias}: v{left} -> " + (f"v{now}" if now is not None else "removed (it had no earlier version)")
