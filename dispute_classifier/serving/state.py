"""What the service serves: one immutable `ServedVersion` per role, and the `ServiceState` that
swaps them.

A request reads ``state.champion`` once and puts that object into its job; the batcher
predicts with the job's version and the response names it. A reload builds new versions
completely (loaded, warmed up, profiled) and only then replaces the attribute, one assignment,
so no request ever sees half of a reload, and no response can name a version other than the one
that predicted it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from dispute_classifier.core.types import Classifier
from dispute_classifier.serving.settings import ServeConfig
from dispute_classifier.serving.telemetry import Metrics


@dataclass(frozen=True, eq=False)
class ServedVersion:
    """A loaded model version and everything the service says and logs about it."""

    ref: str
    """What the command line named (tfidf, name:2, name@champion)."""
    role: str
    """champion or shadow."""
    classifier: Classifier
    """The loaded model; predicts the texts of a micro-batch."""
    name: str
    """Model name in responses and the log."""
    version: str
    """Resolved version (vN for saved models, the fitted-model key for approaches)."""
    labels: tuple[str, ...]
    """Every label, in the order of ``probs``."""
    threshold: float
    """Abstain below this confidence."""
    profile: dict[str, Any] = field(default_factory=dict)
    """What monitoring compares this version's traffic with (as stored in the log)."""

    def describe(self) -> dict[str, Any]:
        """The version as ``GET /v1/models`` lists it."""
        return {
            "id": self.name,
            "object": "model",
            "version": self.version,
            "ref": self.ref,
            "role": self.role,
            "labels": list(self.labels),
            "min_confidence": self.threshold,
        }


Loader = Callable[[str, str], ServedVersion]
"""``loader(ref, role)``: resolve, load, warm up and profile one model (raises `UserError`)."""


@dataclass
class ServiceState:
    """Everything the app serves: settings, the served versions, the log, metrics."""

    cfg: ServeConfig
    champion: ServedVersion
    log: Any
    """The prediction log (`evaluation.predlog.PredictionLog` or anything with its methods)."""
    key: str | None = None
    """The API key requests must carry; None: no key (loopback only)."""
    shadow: ServedVersion | None = None
    metrics: Metrics = field(default_factory=Metrics)
    loader: Loader | None = None
    """How ``/v1/reload`` loads the versions the aliases now name; None: reload is not offered."""
    ready: bool = False
    """Models loaded, batchers running, not shutting down."""
    last_reload_error: str | None = None
    """Why the latest reload failed (the old versions kept serving); None after a good one."""
    batchers: dict[str, Any] = field(default_factory=dict)
    """role → its `batcher.Batcher` (set up when the app starts)."""
    drained: bool = True
    """False when shutting down left requests in a queue (``--drain-s`` ran out)."""

    def served(self) -> list[ServedVersion]:
        """The versions answering and shadowing now."""
        return [self.champion] + ([self.shadow] if self.shadow is not None else [])

    def swap(self, champion: ServedVersion, shadow: ServedVersion | None) -> None:
        """Serve these versions from the next request on (each attribute is one assignment)."""
        if shadow is not None:
            self.shadow = shadow
        self.champion = champion
        self.last_reload_error = None
