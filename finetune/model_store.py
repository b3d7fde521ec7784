"""Saved models: ``models/<name>/v<N>/`` folders referred to as ``NAME[:VERSION|@ALIAS]``.

A fine-tuned version folder holds the LoRA adapter (never merged), the tokenizer with its chat
template, the recipe, the trainer's log and a model card. A registered baseline's folder
(``dispute-classifier models register tfidf``) holds the fitted classifier (``model.joblib``)
and a card whose ``kind`` is ``approach``. A version counts as finished once
``model_card.json`` exists; a folder without it is a training run in progress (or
interrupted: ``--resume``).

**Aliases** (MLflow's semantics: a named pointer such as ``champion`` to one version; a version
may carry several; no stages) live in ``models/<name>/aliases.json`` as an append-only list of
events, each with who, when and why. ``promote`` points an alias at a version; ``rollback``
points it back at the version it held before its latest promotion. Both read, append and
replace the history under an exclusive lock on ``models/<name>/aliases.lock`` and write a
unique temporary file that replaces the history atomically, so simultaneous promotes (40
processes in the tests) keep every event and readers never see half a file.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.locks import exclusive
from evaluation.runs import code_version, package_versions

CARD = "model_card.json"
ALIASES = "aliases.json"
_ALIAS_NAME = r"[A-Za-z][A-Za-z0-9_-]*"


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
    """``NAME`` (newest finished version), ``NAME:VERSION`` (``3`` or ``v3``) or
    ``NAME@ALIAS`` → folder."""
    if "@" in ref:
        name, _, alias = ref.partition("@")
        current = aliases(name, root)
        if alias not in current:
            known = ", ".join(f"@{a}" for a in current) or "none"
            raise UserError(
                f"model '{name}' has no alias '{alias}' (aliases: {known}); set one with `dispute-classifier models promote {name}:VERSION --alias {alias}`"
            )
        ref = f"{name}:{current[alias]}"
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


def _aliases_path(name: str, root: Path | None = None) -> Path:
    return (root or models_dir()) / name / ALIASES


def alias_events(name: str, root: Path | None = None) -> list[dict[str, Any]]:
    """Every promote and rollback of ``name``'s aliases, oldest first."""
    path = _aliases_path(name, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable alias history ({exc}); restore it from version control or delete it") from None
    return list(data.get("events", []))


def _alias_stacks(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    stacks: dict[str, list[int]] = {}
    for e in events:
        stack = stacks.setdefault(e["alias"], [])
        if e["action"] == "promote":
            stack.append(int(e["version"]))
        elif stack:
            stack.pop()
    return {alias: stack for alias, stack in stacks.items() if stack}


def aliases(name: str, root: Path | None = None) -> dict[str, int]:
    """Alias → the version it points at now."""
    return {alias: stack[-1] for alias, stack in _alias_stacks(alias_events(name, root)).items()}


def _lock_path(name: str, root: Path | None = None) -> Path:
    return (root or models_dir()) / name / "aliases.lock"


def _write_events(name: str, events: list[dict[str, Any]], root: Path | None) -> None:
    """Replace the alias history (call with the lock held)."""
    path = _aliases_path(name, root)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".aliases-", suffix=".tmp")  # unique per writer
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"name": name, "events": events}, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # readers see the old history or the new one, never half of it
    finally:
        Path(tmp).unlink(missing_ok=True)


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return "unknown"


def promote(ref: str, alias: str, why: str = "", root: Path | None = None) -> int:
    """Point ``alias`` of model NAME at version ``ref`` (NAME:VERSION); returns the version."""
    if not re.fullmatch(_ALIAS_NAME, alias) or alias.lstrip("v").isdigit():
        raise UserError(
            f"alias '{alias}' must start with a letter and hold letters, digits, '_' or '-' (for example champion); set --alias"
        )
    if ":" not in ref:
        raise UserError(f"promote needs NAME:VERSION, got '{ref}' (see `dispute-classifier models list`)")
    name = ref.partition(":")[0]
    version = int(resolve(ref, root).name[1:])
    with exclusive(_lock_path(name, root)):
        event = {"action": "promote", "alias": alias, "version": version, "by": _who(), "at": _now(), "why": why}
        _write_events(name, [*alias_events(name, root), event], root)
    return version


def rollback(name: str, alias: str, why: str = "", root: Path | None = None) -> tuple[int, int | None]:
    """Point ``alias`` back at the version it held before its latest promotion; returns
    (version it left, version it points at now or None when it no longer exists)."""
    if not (root or models_dir()).joinpath(name).is_dir():
        raise UserError(f"no saved model '{name}' under {root or models_dir()} to roll back (see `dispute-classifier models list`)")
    with exclusive(_lock_path(name, root)):  # the stack read and the event appended as one step
        events = alias_events(name, root)
        stacks = _alias_stacks(events)
        if alias not in stacks:
            raise UserError(f"model '{name}' has no alias '{alias}' to roll back (aliases: {', '.join(stacks) or 'none'})")
        left = stacks[alias][-1]
        now = stacks[alias][-2] if len(stacks[alias]) > 1 else None
        event = {"action": "rollback", "alias": alias, "version": now, "from_version": left, "by": _who(), "at": _now(), "why": why}
        _write_events(name, [*events, event], root)
    return left, now


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
