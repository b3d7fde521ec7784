"""Saved fine-tuned models: ``models/<name>/v<N>/`` folders referred to as ``NAME[:VERSION]``.

A version folder holds the LoRA adapter (never merged), the tokenizer with its chat template,
the recipe, the trainer's log and a model card. It counts as finished once ``model_card.json``
exists; a folder without it is a training run in progress (or interrupted: ``--resume``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from dispute_classifier.core.errors import UserError
from evaluation.runs import code_version, package_versions

CARD = "model_card.json"


def models_dir() -> Path:
    """``$DISPUTE_CLASSIFIER_MODELS`` or ``./models``."""
    return Path(os.environ.get("DISPUTE_CLASSIFIER_MODELS", "models"))


def _versions(name: str, root: Path | None = None) -> list[tuple[int, Path]]:
    folder = (root or models_dir()) / name
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = re.fullmatch(r"v(\d+)", p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def new_version(name: str, root: Path | None = None) -> Path:
    """Create the next version folder for ``name``."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise UserError(f"model name '{name}' may hold letters, digits, '.', '_' and '-' only")
    versions = _versions(name, root)
    n = versions[-1][0] + 1 if versions else 1
    path = (root or models_dir()) / name / f"v{n}"
    path.mkdir(parents=True)
    return path


def unfinished_version(name: str, root: Path | None = None) -> Path | None:
    """The newest version folder without a model card (an interrupted run), if any."""
    for _, path in reversed(_versions(name, root)):
        if not (path / CARD).is_file():
            return path
    return None


def resolve(ref: str, root: Path | None = None) -> Path:
    """``NAME`` (newest finished version) or ``NAME:VERSION`` (``3`` or ``v3``) → folder."""
    name, _, version = ref.partition(":")
    versions = [(n, p) for n, p in _versions(name, root) if (p / CARD).is_file()]
    if not versions:
        known = ", ".join(f"{n}:v{v}" for n, v, _ in list_models(root)) or "none yet"
        raise UserError(
            f"no saved model '{name}' under {root or models_dir()} (saved models: {known});"
            " train one with `dispute-classifier finetune train --recipe RECIPE`"
        )
    if not version:
        return versions[-1][1]
    wanted = int(version.lstrip("v")) if version.lstrip("v").isdigit() else None
    for n, p in versions:
        if n == wanted:
            return p
    raise UserError(f"model '{name}' has no finished version '{version}'; versions: {', '.join(f'v{n}' for n, _ in versions)}")


def read_card(path: Path) -> dict[str, Any]:
    try:
        return json.loads((path / CARD).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path / CARD}: unreadable model card ({exc})") from None


def list_models(root: Path | None = None) -> list[tuple[str, int, Path]]:
    base = root or models_dir()
    if not base.is_dir():
        return []
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        out.extend((folder.name, n, p) for n, p in _versions(folder.name, base) if (p / CARD).is_file())
    return out


TRAINING_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "accelerate", "datasets")
"""Libraries whose version changes what training produces (part of `training_key`)."""


def training_key() -> dict[str, Any]:
    """The code and library versions a saved model was trained with; a model trained by other
    code is not reused for an experiment (a fix must not hide behind an old model)."""
    return {"code": code_version(), "versions": package_versions(TRAINING_PACKAGES)}


def find_trained(recipe: dict[str, Any], root: Path | None = None) -> Path | None:
    """The newest finished version trained with exactly these recipe settings by this code and
    these library versions, if any."""
    key = training_key()
    for name, _, path in reversed(list_models(root)):
        card = read_card(path)
        if name == recipe["name"] and card.get("recipe") == recipe and card.get("training_key") == key:
            return path
    return None
