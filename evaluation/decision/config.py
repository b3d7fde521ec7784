"""The assumptions a decision is made under (``report --config FILE`` or ``--set KEY=VALUE``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispute_classifier.core import registry
from dispute_classifier.core.config import from_dict
from dispute_classifier.core.errors import UserError

CATEGORY_NAMES = registry.CATEGORIES


@dataclass
class VerdictConfig:
    """The assumptions of the decision report."""

    margin_points: float = 2.0
    """Non-inferiority margin in accuracy points: an approach is adequate when its accuracy is shown to be no more than this below the most accurate one, worse when shown to be more than this below."""
    alpha: float = 0.025
    """One-sided level of the non-inferiority and superiority tests (Tango's score test on the paired examples); the intervals reported are two-sided at 1 − 2·alpha (95 % by default)."""
    power: float = 0.8
    """Power at which 'about n shared examples would settle it' is computed (score-test sample size at the observed disagreement rate)."""
    required_gain_points: float | None = None
    """Accuracy points by which the fine-tuned model must be shown better (interval's lower bound) to be a 'yes, more accurate'; default: the margin; 0 means significantly better at all."""
    min_shared_examples: int = 200
    """Fewest shared test examples on which a run can be called adequate; a run shown worse is worse at any number of examples."""
    monthly_volume: int = 100_000
    """Queries per month the feature serves; monthly costs are judged at this volume."""
    max_p95_latency_ms: float | None = None
    """Latency budget: approaches whose measured p95 latency per query is above it are not recommended (default: no budget)."""
    workload: str = "online"
    """online (list prices) or batch (API batch rates where the price table gives them, e.g. OpenAI's Batch API at half price)."""
    cached_input_share: float = 0.0
    """Share of API input tokens billed at the cached-input rate (the repeated instructions of a long prompt), where the price table gives one."""
    hosting_hardware: str | None = None
    """Hardware kind from the price table that hosts self-hosted models (default: the hardware each run was measured on)."""
    hosting_throughput_qps: float | None = None
    """Queries/s of the fine-tuned model on hosting_hardware when that is not where it was measured; without it the cost there is unknown."""
    hours_per_month: float = 730.0
    """Hours per month a self-hosted model's machine is kept on (one machine is always on)."""
    amortisation_months: int = 12
    """Months over which the one-off training cost of a fine-tuned model is spread."""
    training_cost_usd: float | None = None
    """One-off training cost of the fine-tuned model (default: what its run records; unknown stays unknown)."""
    prices: str | None = None
    """Price table YAML (default: dispute_classifier/core/prices.yaml)."""
    preference_order: list[str] = field(default_factory=lambda: ["classical", "prompted", "rag", "finetuned"])
    """Simplicity order that breaks ties between adequate approaches of equal monthly cost, simplest first."""

    def __post_init__(self) -> None:
        if self.margin_points < 0:
            raise UserError(f"margin_points must be 0 or more, got {self.margin_points} (set --set margin_points=2)")
        if not 0 < self.alpha < 0.5:
            raise UserError(f"alpha must be between 0 and 0.5 (one-sided), got {self.alpha} (set --set alpha=0.025)")
        if not 0.5 <= self.power < 1:
            raise UserError(f"power must be at least 0.5 and below 1, got {self.power} (set --set power=0.8)")
        if self.required_gain_points is not None and self.required_gain_points < 0:
            raise UserError(f"required_gain_points must be 0 or more, got {self.required_gain_points}")
        if self.min_shared_examples < 1:
            raise UserError(f"min_shared_examples must be at least 1, got {self.min_shared_examples}")
        if self.monthly_volume < 0:
            raise UserError(f"monthly_volume must be 0 or more, got {self.monthly_volume} (set --set monthly_volume=100000)")
        if self.amortisation_months < 1 or self.hours_per_month <= 0:
            raise UserError("amortisation_months and hours_per_month must be positive")
        if self.workload not in ("online", "batch"):
            raise UserError(f"workload must be online or batch, got '{self.workload}' (set --set workload=batch)")
        if not 0 <= self.cached_input_share <= 1:
            raise UserError(f"cached_input_share must be between 0 and 1, got {self.cached_input_share}")
        if self.max_p95_latency_ms is not None and self.max_p95_latency_ms <= 0:
            raise UserError(f"max_p95_latency_ms must be positive, got {self.max_p95_latency_ms}")
        if self.hosting_throughput_qps is not None and self.hosting_throughput_qps <= 0:
            raise UserError(f"hosting_throughput_qps must be positive, got {self.hosting_throughput_qps}")
        unknown = [c for c in self.preference_order if c not in CATEGORY_NAMES]
        if unknown or sorted(self.preference_order) != sorted(set(self.preference_order)):
            raise UserError(f"preference_order must list categories from {', '.join(CATEGORY_NAMES)} once each, got {self.preference_order}")

    @property
    def level(self) -> float:
        """Two-sided level of the reported intervals (0.95 at alpha 0.025)."""
        return 1 - 2 * self.alpha

    @property
    def gain_points(self) -> float:
        """The gain a fine-tuned model must show (its interval's lower bound) to be more accurate."""
        return self.margin_points if self.required_gain_points is None else self.required_gain_points


def config_from_assumptions(assumptions: dict[str, Any]) -> VerdictConfig:
    """The `VerdictConfig` a decision report was made with (its ``assumptions``)."""
    names = set(VerdictConfig.__dataclass_fields__)
    return from_dict(VerdictConfig, {k: v for k, v in assumptions.items() if k in names})
