"""The shared contract: every approach is a `Classifier` that returns `Prediction`s."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence, runtime_checkable

INVALID = "<invalid>"
"""The label recorded when a model's answer is not one of the task's labels."""


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

    @property
    def is_valid(self) -> bool:
        return self.label != INVALID


@runtime_checkable
class Classifier(Protocol):
    """The interface every approach implements (scikit-learn style).

    ``__init__`` stores parameters only; ``fit`` learns from training texts and returns
    ``self`` (a no-op for prompted models); ``predict`` returns one `Prediction` per text,
    in order.
    """

    name: str

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "Classifier": ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...
