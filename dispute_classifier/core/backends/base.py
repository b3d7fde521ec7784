"""The `Backend` protocol, the ``llm`` settings section, and the built-in backends.

A backend turns chat prompts (from `dispute_classifier.core.prompts`) into `Prediction`s whose
label is one of the task's labels. The built-ins are ``api`` (any OpenAI-compatible
endpoint; offline, a project-started llama.cpp server) and ``local`` (in-process
transformers). A new backend is one module that calls
`dispute_classifier.core.plugins.register_backend`; ``llm.backend=NAME`` selects it and
``llm.NAME.*`` are its settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence, runtime_checkable

from dispute_classifier.core import plugins
from dispute_classifier.core.backends.api import ApiBackend, ApiConfig
from dispute_classifier.core.backends.local import LocalBackend, LocalConfig
from dispute_classifier.core.types import Prediction


@runtime_checkable
class Backend(Protocol):
    """What every LLM backend offers the prompted approaches."""

    billing: str
    """``api`` (per token at the provider's price) or ``self-hosted``."""

    @property
    def model_id(self) -> str:
        """The plain model id (the price table's key for an API model)."""
        ...

    @property
    def where(self) -> str:
        """Where the model runs, in a word or two (llama.cpp, OpenAI, transformers, a host)."""
        ...

    @property
    def model_label(self) -> str:
        """Model and where it runs, for display."""
        ...

    def start(self) -> "Backend":
        """Load or start what is needed, so start-up is not timed as prediction."""
        ...

    def close(self) -> None:
        """Stop what ``start`` started."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance for the run record: at least ``backend`` and ``model``."""
        ...

    def classify(self, prompts: Sequence[list[dict[str, str]]], labels: Sequence[str]) -> list[Prediction]:
        """One prediction per chat prompt, in order."""
        ...

    def estimate_cost(self, prompts: Sequence[list[dict[str, str]]], labels: Sequence[str]) -> float | None:
        """What answering ``prompts`` would cost in $, before sending them (None: not billed per token)."""
        ...


plugins.register_backend(
    plugins.BackendEntry(
        "api",
        "OpenAI-compatible endpoint (OpenAI, vLLM, Ollama; offline a llama.cpp server started for the run)",
        ApiConfig,
        lambda cfg, prices: ApiBackend(cfg, prices=prices),
    )
)
plugins.register_backend(
    plugins.BackendEntry(
        "local",
        "in-process transformers model, answers scored over the label set",
        LocalConfig,
        lambda cfg, prices: LocalBackend(cfg),
    )
)


@dataclass
class LlmConfig:
    """Which LLM answers the prompts of the prompted approaches."""

    backend: str = "api"
    """api (OpenAI-compatible endpoint; offline a llama.cpp server started for the run) or local (in-process transformers), or any registered backend."""
    sections: dict[str, Any] = field(default_factory=dict)
    """Each backend's settings by name (llm.api.*, llm.local.*)."""

    @staticmethod
    def dynamic_sections() -> dict[str, type]:
        return {name: entry.config for name, entry in plugins.backends().items()}

    def __post_init__(self) -> None:
        plugins.get_backend(self.backend)

    def settings(self, name: str | None = None) -> Any:
        """Settings of backend ``name`` (default: the chosen one)."""
        name = name or self.backend
        if name not in self.sections:
            self.sections[name] = plugins.get_backend(name).config()
        return self.sections[name]


def make_backend(llm: LlmConfig, prices: Any = None) -> Backend:
    """The configured backend (nothing is loaded or started until it is used)."""
    return plugins.get_backend(llm.backend).build(llm.settings(), prices)
