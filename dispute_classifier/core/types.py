"""The shared contract: every approach is a `Classifier` that returns `Prediction`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, Sequence, runtime_checkable

INVALID = "<invalid>"
"""The label recorded when a model's answer is not one of the task's labels."""


class Billing(str, Enum):
    """How an approach is paid for: per token by an API provider, or by the hour of the
    machine that hosts it. A ``str`` enum, so a classifier may still declare ``"api"``."""

    API = "api"
    SELF_HOSTED = "self-hosted"


@dataclass
class Usage:
    """What one prediction cost."""

    input_tokens: int = 0
    """Prompt tokens sent to a language model (0 for classical models)."""
    output_tokens: int = 0
    """Tokens the model generated or scored for the answer."""
    latency_s: float = 0.0
    """Wall time for this example; batch models report their batch time divided by its size."""
    cost_usd: float | None = None
    """Money spent on this query when the backend bills per token; None means the evaluator
    derives it from measured throughput and the hardware's hourly price (self-hosted), or that
    it is unknown (an API model missing from the price table)."""


@dataclass
class Prediction:
    """One answer: a label from the task's label set, or `INVALID`."""

    label: str
    """The predicted label, or `INVALID` when the model's answer is outside the label set."""
    confidence: float | None = None
    """Probability the model gives to `label` (None when the approach has none)."""
    usage: Usage = field(default_factory=Usage)
    """Tokens, latency and cost of this prediction."""
    raw: str | None = None
    """The model's raw answer text, kept for invalid outputs and error analysis."""
    probs: dict[str, float] | None = None
    """Probability of every label (None when the approach gives only the top label's)."""

    @property
    def is_valid(self) -> bool:
        return self.label != INVALID


@runtime_checkable
class Classifier(Protocol):
    """The interface every approach implements (scikit-learn style).

    ``__init__`` stores parameters only; ``fit`` learns from training texts and returns
    ``self`` (a no-op for prompted models); ``predict`` returns one `Prediction` per text,
    in order. The other members are capabilities every classifier declares; `ClassifierBase`
    gives each its default, so an approach overrides only what it has.
    """

    name: str
    """Short name (the approach, or the saved model with its version)."""
    billing: str
    """``self-hosted`` (hardware $/hour over measured throughput) or ``api`` (per-token cost in each prediction's usage)."""
    hardware: str | None
    """Hardware kind (price-table key) the classifier runs on, when it knows it."""
    cache_fitted: bool
    """Whether a fitted instance may be pickled and reused (classify's fitted-model cache)."""

    @property
    def model_name(self) -> str | None:
        """The model behind the approach for display and records (None: the approach name)."""
        ...

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "Classifier": ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...

    def run_info(self) -> dict[str, Any]:
        """Provenance merged into the run record's ``extra`` after predicting."""
        ...

    def estimate_cost(self, texts: Sequence[str]) -> float | None:
        """What classifying ``texts`` would cost in $, when the classifier can tell."""
        ...

    def fitted_rows(self) -> dict[str, Any] | None:
        """For a model trained elsewhere (a saved fine-tuned model): the task, data hash and
        split names it was trained on, so the evaluator can refuse an overlapping split."""
        ...

    def close(self) -> None:
        """Release what the classifier started (a server, a model)."""
        ...


class ClassifierBase:
    """Defaults for every optional capability of `Classifier`; approaches subclass it."""

    name: str = "classifier"
    billing: str = "self-hosted"
    hardware: str | None = None
    cache_fitted: bool = False

    @property
    def model_name(self) -> str | None:
        return None

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "ClassifierBase":
        return self

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        raise NotImplementedError

    def run_info(self) -> dict[str, Any]:
        return {}

    def estimate_cost(self, texts: Sequence[str]) -> float | None:
        return None

    def fitted_rows(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        return None
