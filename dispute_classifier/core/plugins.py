"""The registries: every approach and every LLM backend, with the facts about it.

An approach is registered once, by the module that implements it, with the facts the rest of
the project reads instead of re-deriving them from names (as lm-evaluation-harness registers
a model class with its names): its category (classical, prompted, rag, finetuned), the
settings sections it reads, how it is billed, and which setting ``--model`` names. The
verdict, the CLI, the experiment and the dashboard read these entries or the run records
that carry them; nothing else keeps a list of approaches.

Adding an approach is one module that calls `register_approach` (and, for a package outside
this project, one ``dispute_classifier.approaches`` entry point naming that module). The
built-in approaches live in `baselines` and `finetune`; the command layer imports them
(`dispute_classifier.resolution.approaches.load_approaches`).

Backends work the same way with `register_backend`: ``llm.backend=NAME`` picks one and
``llm.NAME.*`` are its settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from dispute_classifier.core.errors import UserError

if TYPE_CHECKING:  # types only: the registry itself imports no approach
    from dispute_classifier.core.backends.base import Backend
    from dispute_classifier.core.runconfig import RunConfig
    from dispute_classifier.core.types import Classifier

CATEGORIES: dict[str, str] = {
    "classical": "classical baseline",
    "prompted": "prompted LLM",
    "rag": "RAG",
    "finetuned": "fine-tuned LLM",
}
"""Category → how reports name it. The verdict's simplicity order is over these keys."""


@dataclass(frozen=True)
class Approach:
    """One approach and the facts about it."""

    name: str
    """What ``--approach`` and run records call it."""
    summary: str
    """One line for ``--help``."""
    category: str
    """classical, prompted, rag or finetuned (a key of `CATEGORIES`)."""
    build: Callable[["RunConfig"], "Classifier"]
    """Make the (unfitted) classifier from a run config; cheap: models load on first use."""
    sections: dict[str, type] = field(default_factory=dict)
    """Settings sections it reads (``--set SECTION.KEY=VALUE``), name → dataclass; recorded
    with the run and hashed for reuse."""
    model_setting: str | None = None
    """The setting that ``--model`` names, as a dotted key (``finetuned.model``); the special
    value ``llm`` means the chosen backend's ``llm.<backend>.model``."""
    billing: str = "self-hosted"
    """self-hosted (hardware $/hour over measured throughput) or backend (the LLM backend's:
    per token for a paid API, self-hosted for a local model). The run record stores the
    classifier's actual billing."""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise UserError(f"approach '{self.name}': category must be one of {', '.join(CATEGORIES)}, got '{self.category}'")


@dataclass(frozen=True)
class BackendEntry:
    """One LLM backend: how to build it and its settings."""

    name: str
    """What ``llm.backend`` calls it."""
    summary: str
    """One line for ``--help``."""
    config: type
    """Its settings dataclass (``llm.<name>.*``)."""
    build: Callable[[Any, Any], "Backend"]
    """``build(settings, prices)`` → the backend; nothing starts until it is used."""


_APPROACHES: dict[str, Approach] = {}
_SECTIONS: dict[str, type] = {}
_BACKENDS: dict[str, BackendEntry] = {}


def register_approach(approach: Approach, *, replace: bool = False) -> Approach:
    """Add ``approach`` to the registry (``replace`` to redefine one, e.g. in a test)."""
    if approach.name in _APPROACHES and not replace and _APPROACHES[approach.name] != approach:
        raise UserError(f"approach '{approach.name}' is registered twice")
    for name, cls in approach.sections.items():
        if _SECTIONS.get(name, cls) is not cls:
            raise UserError(
                f"approach '{approach.name}': settings section '{name}' is already registered with another type ({_SECTIONS[name].__name__})"
            )
    _SECTIONS.update(approach.sections)
    _APPROACHES[approach.name] = approach
    return approach


def unregister_approach(name: str) -> None:
    """Remove an approach (tests that register a toy one clean up with this)."""
    approach = _APPROACHES.pop(name, None)
    if approach is None:
        return
    used = {s for a in _APPROACHES.values() for s in a.sections}
    for section in approach.sections:
        if section not in used:
            _SECTIONS.pop(section, None)


def approaches() -> dict[str, Approach]:
    """Every registered approach, by name, in registration order."""
    return dict(_APPROACHES)


def get_approach(name: str) -> Approach:
    """The registered approach ``name``, or an error that lists the known ones."""
    if name not in _APPROACHES:
        known = ", ".join(_APPROACHES) or "none registered"
        raise UserError(f"unknown approach '{name}'; choose one of: {known}")
    return _APPROACHES[name]


def sections() -> dict[str, type]:
    """Every settings section any registered approach reads: name → dataclass."""
    return dict(_SECTIONS)


def register_backend(entry: BackendEntry, *, replace: bool = False) -> BackendEntry:
    """Add an LLM backend."""
    if entry.name in _BACKENDS and not replace and _BACKENDS[entry.name] != entry:
        raise UserError(f"backend '{entry.name}' is registered twice")
    _BACKENDS[entry.name] = entry
    return entry


def backends() -> dict[str, BackendEntry]:
    """Every registered backend, by name."""
    return dict(_BACKENDS)


def get_backend(name: str) -> BackendEntry:
    """The registered backend ``name``, or an error that lists the known ones."""
    if name not in _BACKENDS:
        raise UserError(
            f"unknown LLM backend '{name}'; choose one of: {', '.join(_BACKENDS) or 'none registered'} (set llm.backend or --backend)"
        )
    return _BACKENDS[name]


def category_of(meta: dict[str, Any]) -> str:
    """The category a run record states (written from the registry when it ran); records
    from before categories were stored fall back to the registry entry of their approach."""
    if meta.get("category"):
        return str(meta["category"])
    approach = _APPROACHES.get(str(meta.get("approach")))
    if approach is None:
        raise UserError(f"run {meta.get('run_id')}: approach '{meta.get('approach')}' has no category in its record and is not registered")
    return approach.category
