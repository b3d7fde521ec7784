"""The cost model: what each option costs per month at a stated volume.

Per approach and month at ``V`` queries: ``fixed + max(floor, V × per_query)``. API approaches
pay their measured tokens at the provider's price for the ``workload`` (online list price, or
the batch rate; cached input where the table gives it). Self-hosted approaches keep one machine
always on (``floor``) and pay the hourly price over the throughput measured *on that hardware*
once it is busy; fine-tuned ones add the one-off training cost over ``amortisation_months``
(``fixed``). A cost that is not known stays unknown: never $0, never "never pays".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispute_classifier.core.costs import PriceTable
from evaluation.decision.config import VerdictConfig
from evaluation.runmeta import Category, RunMeta
from evaluation.runs import RunRecord


@dataclass
class CostLine:
    """Monthly cost of serving one approach: ``fixed + max(floor, volume × per_query)``."""

    run_id: str
    label: str
    per_query_usd: float | None
    """Marginal cost of one query (None: unknown, e.g. an API model without a price)."""
    floor_monthly_usd: float = 0.0
    """Paid whatever the volume: one always-on machine for a self-hosted model."""
    fixed_monthly_usd: float | None = 0.0
    """One-off training cost spread over the amortisation period (None: unknown)."""
    basis: str = ""
    """Where the numbers come from, in words."""
    missing: str | None = None
    """What is missing when a cost is unknown, in words."""

    def monthly(self, volume: float) -> float | None:
        if self.per_query_usd is None or self.fixed_monthly_usd is None:
            return None
        return self.fixed_monthly_usd + max(self.floor_monthly_usd, volume * self.per_query_usd)


def training_cost(meta: RunMeta, cfg: VerdictConfig, prices: PriceTable) -> tuple[float | None, str]:
    """One-off training cost of a fine-tuned run and where the number comes from (None: unknown)."""
    if cfg.training_cost_usd is not None:
        return cfg.training_cost_usd, "set in the verdict config"
    t = meta.training
    if t is not None and t.cost_usd is not None:
        return t.cost_usd, "recorded by the fine-tuning run"
    if t is not None and t.wall_s and t.hardware in prices.hardware:
        hours = t.wall_s / 3600
        return hours * prices.hourly(t.hardware), f"{hours:.2f} h of training on {t.hardware}"
    return None, "unknown: not recorded (set training_cost_usd)"


def api_model(meta: RunMeta) -> str:
    """The plain API model id of a run (the price table's key), not its display label."""
    llm = meta.llm
    model = llm.model if llm else None
    if model in (None, "server default") and llm is not None:  # the endpoint chose: the name it answered with
        model = llm.served_model or model
    return str(model or meta.model or meta.approach)


def cost_line(run: RunRecord, cfg: VerdictConfig, prices: PriceTable) -> CostLine:
    """How one run's approach would cost per month, priced with the configured table."""
    meta, m = run.meta, run.metrics
    if meta.is_api:
        model = api_model(meta)
        tokens_in, tokens_out = m.get("input_tokens_per_query", 0.0), m.get("output_tokens_per_query", 0.0)
        per_query = prices.token_cost(model, tokens_in, tokens_out, workload=cfg.workload, cached_share=cfg.cached_input_share)
        if per_query is not None:
            basis = f"{model} {prices.describe_rate(model, cfg.workload, cfg.cached_input_share)} × {tokens_in:.0f} in + {tokens_out:.1f} out tokens per query"
            return CostLine(run.run_id, run.label, per_query, basis=basis)
        return CostLine(run.run_id, run.label, None, basis=f"{model} has no price in {prices.path}",
                        missing=f"a price for '{model}' in the price table (--set prices=FILE)")
    finetuned = meta.category is Category.FINETUNED
    measured_on = meta.hardware or prices.default_hardware
    hardware = cfg.hosting_hardware or measured_on
    hourly = prices.hourly(hardware)
    qps = m.get("throughput_qps") or 0.0
    missing = None
    if hardware != measured_on:
        if finetuned and cfg.hosting_throughput_qps:
            qps, where = cfg.hosting_throughput_qps, f"{cfg.hosting_throughput_qps:g} queries/s on {hardware} as stated"
        else:
            qps, where = 0.0, f"measured on {measured_on}, not on {hardware}"
            missing = f"a throughput measured on {hardware} (evaluate there, or set hosting_throughput_qps)"
    else:
        where = f"{qps:.1f} queries/s measured on {measured_on}"
    per_query = hourly / (qps * 3600) if qps > 0 else None
    fixed: float | None = 0.0
    basis = f"{hardware} ${hourly:.2f}/h, always on, {where}"
    if finetuned:
        cost, source = training_cost(meta, cfg, prices)
        fixed = None if cost is None else cost / cfg.amortisation_months
        basis += f"; training {'unknown' if cost is None else f'${cost:.2f}'} ({source}) over {cfg.amortisation_months} months"
        if cost is None:
            missing = (missing + "; " if missing else "") + "the training cost (set training_cost_usd)"
    return CostLine(run.run_id, run.label, per_query, hourly * cfg.hours_per_month, fixed, basis, missing)


def break_even_volume(ft: CostLine, api_per_query: float | None) -> float | None:
    """Monthly volume above which ``ft`` costs less than an API at ``api_per_query`` per query.

    Fine-tuned: ``F + max(L, V × c_ft)`` (F amortised training, L one machine's month);
    API: ``V × c``. Below one machine's capacity ``L / c_ft`` the break-even is
    ``(F + L) / c``; past it, ``F / (c − c_ft)``. ``math.inf`` when the API is at least as
    cheap per query as a busy machine (self-hosting never catches up); None when a cost is
    unknown (say what is missing instead).
    """
    c, c_ft, fixed = api_per_query, ft.per_query_usd, ft.fixed_monthly_usd
    if c is None or c_ft is None or fixed is None:
        return None
    if c <= c_ft or c <= 0:
        return math.inf
    floor = ft.floor_monthly_usd
    one_machine = (fixed + floor) / c
    capacity = floor / c_ft
    return one_machine if one_machine <= capacity else fixed / (c - c_ft)


def volume_grid(low: float = 1e2, high: float = 1e8, points: int = 25) -> list[float]:
    """Log-spaced monthly volumes for the cost curves."""
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    return [round(10 ** (math.log10(low) + i * step)) for i in range(points)]
