"""The assumptions a decision is made under (``report --config FILE`` or ``--set KEY=VALUE``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispute_classifier.core import plugins
from dispute_classifier.core.config import from_dict
from dispute_classifier.core.errors import UserError

CATEGORY_NAMES = plugins.CATEGORIES


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
    hosting: dict[str, Any] = field(default_factory=dict)
    """Hardware declared per approach or category, e.g. {finetuned: gpu-l4} or {finetuned: {hardware: gpu-l4, throughput_qps: 50}}; the others stay on what they were measured on."""
    hosting_hardware: str | None = None
    """Hardware that hosts the fine-tuned model (shorthand for hosting.finetuned; the other approaches are not moved)."""
    hosting_throughput_qps: float | None = None
    """Queries/s of the fine-tuned model on hosting_hardware when that is not where it was measured; without it the cost there is unknown."""
    serving_capacity: str | None = "reports/serving"
    """Folder of the serve load benchmark's result files (<model>.json: benchmarks/test_bench_serve.py): a run whose model and task have one is priced at the service's measured capacity_texts_per_s (micro-batched, under concurrent load) instead of the evaluator's batch-1 figure; none: always the evaluator's."""
    cost_view: str = "dedicated"
    """dedicated (whole machines a new service pays for) or shared (the machine-hours the load uses in a fleet it joins); both are reported."""
    peak_factor: float = 3.0
    """Peak load over the month's average: machines are sized for volume / seconds × peak_factor."""
    service_base_memory_mb: float = 250.0
    """Memory of a serving process before its model (Python, the web stack); added to the model's measured memory."""
    memory_headroom: float = 1.25
    """Memory a machine must have over the service's need (a machine is never filled)."""
    cost_per_error_usd: float = 0.0
    """What one wrong answer costs the business (a misrouted dispute: agent time, a chargeback); 0 leaves accuracy out of the money."""
    cost_per_review_usd: float = 0.0
    """What one answer routed to a person costs (with review_coverage)."""
    review_coverage: float | None = None
    """Share of queries answered automatically; the rest (least confident, threshold chosen on validation) go to review. None: no review."""
    min_saving_usd: float = 1.0
    """Monthly differences below this are a tie (decided by the preference order), not 'cheaper'."""
    min_saving_share: float = 0.01
    """Monthly differences below this share of the cheaper cost are a tie too."""
    hours_per_month: float = 730.0
    """Hours per month a dedicated machine is kept on."""
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
        if self.cost_view not in ("dedicated", "shared"):
            raise UserError(f"cost_view must be dedicated or shared, got '{self.cost_view}' (set --set cost_view=shared)")
        if self.peak_factor < 1 or self.memory_headroom < 1 or self.service_base_memory_mb < 0:
            raise UserError("peak_factor and memory_headroom must be at least 1, service_base_memory_mb 0 or more")
        if self.cost_per_error_usd < 0 or self.cost_per_review_usd < 0 or self.min_saving_usd < 0 or not 0 <= self.min_saving_share < 1:
            raise UserError("cost_per_error_usd, cost_per_review_usd and min_saving_usd must be 0 or more, min_saving_share in [0, 1)")
        if self.review_coverage is not None and not 0 < self.review_coverage <= 1:
            raise UserError(f"review_coverage must be in (0, 1], got {self.review_coverage} (e.g. --set review_coverage=0.9)")
        for key, value in self.hosting.items():
            if not isinstance(value, (str, dict)) or (isinstance(value, dict) and "hardware" not in value):
                raise UserError(f"hosting.{key} must be a hardware name or {{hardware: NAME, throughput_qps: N}}, got {value!r}")
        unknown = [c for c in self.preference_order if c not in CATEGORY_NAMES]
        if unknown or sorted(self.preference_order) != sorted(set(self.preference_order)):
            raise UserError(
                f"preference_order must list categories from {', '.join(CATEGORY_NAMES)} once each, got {self.preference_order}"
            )

    @property
    def level(self) -> float:
        """Two-sided level of the reported intervals (0.95 at alpha 0.025)."""
        return 1 - 2 * self.alpha

    def hosting_for(self, approach: str, category: str) -> tuple[str, float | None] | None:
        """(hardware, stated throughput or None) declared for an approach (or its category), else None."""
        declared = self.hosting.get(approach, self.hosting.get(category))
        if declared is None and category == "finetuned" and self.hosting_hardware:
            return self.hosting_hardware, self.hosting_throughput_qps
        if declared is None:
            return None
        if isinstance(declared, str):
            return declared, None
        qps = declared.get("throughput_qps")
        return str(declared["hardware"]), None if qps is None else float(qps)

    def tie(self, a: float, b: float) -> bool:
        """Whether two monthly costs are the same for the decision (the difference is immaterial)."""
        return abs(a - b) < max(self.min_saving_usd, self.min_saving_share * min(a, b))

    @property
    def gain_points(self) -> float:
        """The gain a fine-tuned model must show (its interval's lower bound) to be more accurate."""
        return self.margin_points if self.required_gain_points is None else self.required_gain_points


def config_from_assumptions(assumptions: dict[str, Any]) -> VerdictConfig:
    """The `VerdictConfig` a decision report was made with (its ``assumptions``)."""
    names = set(VerdictConfig.__dataclass_fields__)
    return from_dict(VerdictConfig, {k: v for k, v in assumptions.items() if k in names})
