"""The cost model: what each option costs per month at a stated volume, and why.

Per approach and month at ``V`` queries:

    serving + training / amortisation_months + errors × cost_per_error + reviews × cost_per_review

**Serving.** API approaches pay their measured tokens at the provider's price (online list price
or the batch rate; cached input where the table gives it) plus the smallest machine that runs the
calling service. Self-hosted approaches are priced on a machine of the price table: the one they
were measured on, one declared for them (``hosting``), or a smaller machine of the same kind that
holds their memory (capacity scaled down by vCPUs, never up). Capacity is the service's own measured
capacity where the serve load benchmark has a result for the model and task (``capacity_texts_per_s``
of ``reports/serving/<model>.json``: micro-batched, under concurrent load), else the measured
per-request throughput at batch 1 (``capacity_b1_qps``: one worker answering one request at a
time, as a service without micro-batching does), else the evaluator's batch throughput. Peak load is
``V / (hours × 3600) × peak_factor``; the **dedicated** view pays ``ceil(peak / capacity)`` whole
machines all month, the **shared** view pays only the machine-hours the load uses (a fleet it
joins). The cheapest machine under the chosen view is taken; both views are reported.

**Errors and reviews.** With ``cost_per_error_usd``, errors = V × (1 − accuracy), with an interval
from the accuracy's Wilson interval. With ``review_coverage`` (and ``cost_per_review_usd``), the
least confident share is routed to a person at the confidence threshold chosen on the *validation*
record of the same setting; the reviewed answers are counted as corrected.

A cost that is not known stays unknown (with what is missing): never $0, never "infinitely dear".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from dispute_classifier.core.prices import Machine, PriceTable, money
from evaluation.decision.assumptions import VerdictConfig
from evaluation.runmeta import Category, RunMeta
from evaluation.runs import RunRecord


@dataclass
class CostLine:
    """Monthly cost of one option; `monthly` evaluates it at any volume."""

    run_id: str
    label: str
    per_query_usd: float | None
    """Marginal serving cost of one query (tokens, or machine-hours per query); None: unknown."""
    floor_monthly_usd: float = 0.0
    """Dedicated machines: one whole machine's month, paid whatever the volume."""
    fixed_monthly_usd: float | None = 0.0
    """Training cost spread over the amortisation period (None: unknown)."""
    basis: str = ""
    missing: str | None = None
    hardware: str | None = None
    capacity_qps: float | None = None
    """Queries/s one machine serves (None for API models)."""
    dedicated: bool = True
    """Whole machines (True) or the used share of a fleet (False)."""
    peak_factor: float = 3.0
    hours: float = 730.0
    error_rate: float = 0.0
    """Errors per query (after review) priced at ``cost_per_error``."""
    error_rate_ci: tuple[float, float] = (0.0, 0.0)
    review_rate: float = 0.0
    cost_per_error: float = 0.0
    cost_per_review: float = 0.0
    notes: list[str] = field(default_factory=list)

    def machines(self, volume: float) -> int:
        """Dedicated machines needed for the peak of ``volume`` queries a month."""
        if self.capacity_qps is None:
            return 0
        peak = volume / (self.hours * 3600) * self.peak_factor
        return max(1, math.ceil(peak / self.capacity_qps))

    def serving(self, volume: float) -> float | None:
        if self.per_query_usd is None:
            return None
        if self.capacity_qps is not None and self.dedicated:
            return self.machines(volume) * self.floor_monthly_usd
        return self.floor_monthly_usd + volume * self.per_query_usd

    def quality(self, volume: float, error_rate: float | None = None) -> float:
        """Errors and reviews a month, in $."""
        rate = self.error_rate if error_rate is None else error_rate
        return volume * (rate * self.cost_per_error + self.review_rate * self.cost_per_review)

    def monthly(self, volume: float) -> float | None:
        serving = self.serving(volume)
        if serving is None or self.fixed_monthly_usd is None:
            return None
        return self.fixed_monthly_usd + serving + self.quality(volume)

    def monthly_interval(self, volume: float) -> tuple[float, float] | None:
        """The monthly cost with the error rate at its interval's ends."""
        total = self.monthly(volume)
        if total is None:
            return None
        base = total - self.quality(volume)
        return base + self.quality(volume, self.error_rate_ci[0]), base + self.quality(volume, self.error_rate_ci[1])


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


def _memory_mb(run: RunRecord, cfg: VerdictConfig) -> float | None:
    added = run.metrics.get("model_rss_mb")
    return None if added is None else (added + cfg.service_base_memory_mb) * cfg.memory_headroom


SERVE_CAPACITY_FORMAT = "dispute-classifier/serve-capacity/1"


def served_capacity(run: RunRecord, folder: str | Path | None) -> tuple[float, Path] | None:
    """The serve load benchmark's measured capacity (texts/s) for the run's model on its task, and
    the file it comes from; None when the folder holds no result for it. A fine-tuned run's model
    (``finetuned:NAME:vN``) matches the service's ``NAME`` at version ``vN``."""
    if not folder or not Path(folder).is_dir():
        return None
    meta = run.meta
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("format") != SERVE_CAPACITY_FORMAT or data.get("task") != meta.task or not data.get("capacity_texts_per_s"):
            continue
        if (data.get("settings") or {}).get("set"):  # served with other settings (int8) than the run evaluated
            continue
        names = {data.get("model"), f"finetuned:{data.get('model')}:{data.get('version')}", f"{data.get('model')}:{data.get('version')}"}
        if meta.model in names:
            return float(data["capacity_texts_per_s"]), path
    return None


def _capacity(run: RunRecord, cfg: VerdictConfig) -> tuple[float | None, str]:
    """The run's capacity in queries/s per machine, and how it was measured."""
    m = run.metrics
    served = served_capacity(run, cfg.serving_capacity)
    if served is not None:
        return served[0], f"served, measured by the load benchmark ({served[1].name})"
    if m.get("capacity_b1_qps"):
        return m["capacity_b1_qps"], "measured at batch 1"
    return m.get("throughput_qps") or None, "batch throughput"


def _candidates(
    run: RunRecord, cfg: VerdictConfig, prices: PriceTable, capacity: float | None
) -> tuple[list[tuple[str, float]], str | None]:
    """(hardware, capacity q/s) the run could be served on, and what is missing when none.
    ``capacity``: the run's own measured capacity on the machine it ran on (`_capacity`)."""
    meta = run.meta
    measured_on = meta.hardware or prices.default_hardware
    declared = cfg.hosting_for(meta.approach, meta.category.value)
    if declared is not None:
        hw, qps = declared
        if hw == measured_on and qps is None:
            qps = capacity
        if qps is None:
            return [], f"a throughput on {hw} (measure it there, or state it: --set hosting.{meta.approach}.throughput_qps=N)"
        return [(hw, qps)], None
    if capacity is None:
        return [], f"a throughput measured on {measured_on}"
    out = [(measured_on, capacity)]
    here = prices.machines.get(measured_on, Machine())
    need = _memory_mb(run, cfg)
    for name, machine in prices.machines.items():
        smaller = (
            machine.kind == here.kind == "cpu" and machine.vcpus and here.vcpus and machine.vcpus <= here.vcpus and name != measured_on
        )
        if smaller and need is not None and machine.memory_gib and machine.memory_gib * 1024 >= need:
            out.append((name, capacity * machine.vcpus / here.vcpus))  # type: ignore[operator]
    return out, None


def _within_latency(run: RunRecord, cfg: VerdictConfig) -> bool:
    if cfg.max_p95_latency_ms is None:
        return True
    p95 = run.metrics.get("latency_b1_p95_s") or run.metrics["latency_p95_s"]
    return p95 * 1000 <= cfg.max_p95_latency_ms


def _quality(line: CostLine, run: RunRecord, cfg: VerdictConfig, review: tuple[float, float, float] | None) -> None:
    m = run.metrics
    line.cost_per_error, line.cost_per_review = cfg.cost_per_error_usd, cfg.cost_per_review_usd
    lo, hi = m["accuracy_ci95"]
    line.error_rate, line.error_rate_ci = 1 - m["accuracy"], (1 - hi, 1 - lo)
    if review is not None:
        kept, kept_accuracy, threshold = review
        line.review_rate = 1 - kept
        scale = kept * (1 - kept_accuracy) / line.error_rate if line.error_rate else 0.0
        line.error_rate, line.error_rate_ci = kept * (1 - kept_accuracy), (line.error_rate_ci[0] * scale, line.error_rate_ci[1] * scale)
        line.notes.append(f"{line.review_rate:.1%} routed to review below confidence {threshold:.3f} (chosen on validation)")
    if cfg.cost_per_error_usd or cfg.cost_per_review_usd:
        line.basis += f"; errors {line.error_rate:.2%} of queries × {money(cfg.cost_per_error_usd)}"
        if line.review_rate:
            line.basis += f", reviews {line.review_rate:.1%} × {money(cfg.cost_per_review_usd)}"


def cost_line(run: RunRecord, cfg: VerdictConfig, prices: PriceTable, review: tuple[float, float, float] | None = None) -> CostLine:
    """How one run's approach would cost per month, priced with the configured table.
    ``review``: (kept share, accuracy on it, threshold) when low-confidence answers go to a person."""
    meta, m = run.meta, run.metrics
    line = CostLine(
        run.run_id, run.label, None, peak_factor=cfg.peak_factor, hours=cfg.hours_per_month, dedicated=cfg.cost_view == "dedicated"
    )
    llm = meta.llm
    if meta.is_api:
        model = api_model(meta)
        tokens_in, tokens_out = m.get("input_tokens_per_query", 0.0), m.get("output_tokens_per_query", 0.0)
        host = prices.cheapest_machine() or prices.default_hardware
        line.floor_monthly_usd, line.hardware = prices.hourly(host) * cfg.hours_per_month, host
        if llm is not None and llm.usage_reported is False:
            line.missing = "token usage: the endpoint returned no usage, so tokens (and money) are unknown"
        elif (
            per_query := prices.token_cost(model, tokens_in, tokens_out, workload=cfg.workload, cached_share=cfg.cached_input_share)
        ) is None:
            line.missing = f"a price for '{model}' in the price table (--set prices=FILE)"
        else:
            line.per_query_usd = per_query
        line.basis = (
            f"{model} {prices.describe_rate(model, cfg.workload, cfg.cached_input_share)} × {tokens_in:.0f} in + {tokens_out:.1f} out"
            f" tokens per query, plus the calling service on {host}"
        )
        line.dedicated = False  # tokens scale with volume; the calling service is one small machine
        _quality(line, run, cfg, review)
        return line
    if (
        llm is not None
        and llm.backend == "api"
        and not llm.project_started
        and meta.hardware is None
        and cfg.hosting_for(meta.approach, meta.category.value) is None
    ):
        line.missing = f"the hardware of the remote endpoint {llm.where or ''} (evaluate with --hardware NAME, or --set hosting.{meta.approach}.hardware=NAME)"
        line.basis = "a self-hosted endpoint this project did not start: its machine is not known"
        return line
    capacity, measured_how = _capacity(run, cfg)  # once: it may read the serving benchmark's folder
    candidates, missing = _candidates(run, cfg, prices, capacity)
    if missing:
        line.missing, line.basis = missing, f"measured on {meta.hardware or prices.default_hardware}"
        return line
    volume = cfg.monthly_volume

    def price(option: tuple[str, float]) -> float:
        trial = CostLine(
            run.run_id,
            run.label,
            prices.hourly(option[0]) / (option[1] * 3600),
            prices.hourly(option[0]) * cfg.hours_per_month,
            capacity_qps=option[1],
            dedicated=line.dedicated,
            peak_factor=cfg.peak_factor,
            hours=cfg.hours_per_month,
        )
        return trial.serving(volume) or math.inf

    hw, qps = min(candidates, key=lambda o: (price(o), o[0]))
    hourly = prices.hourly(hw)
    line.hardware, line.capacity_qps = hw, qps
    line.per_query_usd, line.floor_monthly_usd = hourly / (qps * 3600), hourly * cfg.hours_per_month
    if not line.dedicated:
        line.floor_monthly_usd = 0.0
    machines = line.machines(volume)
    peak = volume / (cfg.hours_per_month * 3600) * cfg.peak_factor
    dedicated = machines * hourly * cfg.hours_per_month
    shared = volume * hourly / (qps * 3600)
    line.basis = (
        f"{hw} ${hourly:.4g}/h, {qps:.1f} queries/s per machine ({measured_how}"
        f"{'' if hw == (meta.hardware or prices.default_hardware) else ', scaled from ' + str(meta.hardware or prices.default_hardware)});"
        f" peak {peak:.2f} q/s → {machines} machine(s), {peak / (machines * qps):.1%} busy; dedicated {money(dedicated)}, shared {money(shared)} a month"
    )
    if not _within_latency(run, cfg):
        line.notes.append("over the latency budget at batch 1")
    if meta.category is Category.FINETUNED:
        cost, source = training_cost(meta, cfg, prices)
        line.fixed_monthly_usd = None if cost is None else cost / cfg.amortisation_months
        line.basis += f"; training {'unknown' if cost is None else f'${cost:.2f}'} ({source}) over {cfg.amortisation_months} months"
        if cost is None:
            line.missing = "the training cost (set training_cost_usd)"
    _quality(line, run, cfg, review)
    return line


def break_even_volume(ft: CostLine, api: CostLine) -> float | None:
    """Monthly volume above which ``ft`` costs less than ``api`` (by bisection over the two cost
    curves, so machines, reviews and errors all count); ``math.inf`` when it never does, None when a
    cost is unknown."""
    if ft.monthly(0) is None or api.monthly(0) is None:
        return None
    cheaper = lambda v: ft.monthly(v) < api.monthly(v)  # noqa: E731
    if cheaper(1):
        return 1.0
    top = 1e10
    if not cheaper(top):
        return math.inf
    lo, hi = 1.0, top
    while hi / lo > 1.0001:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if cheaper(mid) else (mid, hi)
    return hi


def volume_grid(low: float = 1e2, high: float = 1e8, points: int = 25) -> list[float]:
    """Log-spaced monthly volumes for the cost curves."""
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    return [round(10 ** (math.log10(low) + i * step)) for i in range(points)]
