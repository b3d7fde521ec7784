"""The decision report: prompt, retrieve or fine-tune? Read from run records, never from models.

From the run records of one task and split (on the task's current data) it builds

- the leaderboard (accuracy with its 95 % interval, macro-F1, invalid rate, latency, cost),
- the seed's comparison set, with the rows nobody has run yet marked "not run",
- the **recommendation**: every approach with a run is a candidate. One is *adequate* when the
  paired 95 % interval of its accuracy difference to the most accurate approach, on their
  shared examples, lies above ``-margin_points`` (an equivalence test, not "p ≥ alpha").
  Two runs that share fewer than ``min_shared_examples`` examples, or whose interval straddles
  the margin, are *inconclusive*, with the number of shared examples that would settle it at
  the observed disagreement rate. The recommendation is the cheapest adequate approach at
  ``monthly_volume`` within the latency budget, ties broken by ``preference_order``;
- the **fine-tuning question** — yes / no / not yet decidable — comparing the best fine-tuned
  model (chosen on its *validation* record; test records only report) with what the rule
  picks without fine-tuning: yes when it beats that option by the margin with p < alpha, or
  is adequate against it and cheaper at the stated volume;
- the break-even monthly volume above which the fine-tuned model is cheaper than the best
  prompted API approach, as a formula and a curve;
- the stages of the experiment that produced the runs (ran, reused, skipped, failed, why).

The cost model, per approach and month at ``V`` queries: ``fixed + max(floor, V × per_query)``.
API approaches pay their measured tokens at the provider's price for the ``workload`` (online
list price, or the batch rate; cached input where the table gives it). Self-hosted
approaches keep one machine always on (``floor``) and pay the hourly price over the
throughput measured *on that hardware* once it is busy; fine-tuned ones add the one-off
training cost over ``amortisation_months`` (``fixed``). A cost that is not known stays
unknown: it never counts as $0 and never as "never pays".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_classifier.core import registry
from dispute_classifier.core.config import from_dict, to_dict
from dispute_classifier.core.costs import PriceTable, money
from dispute_classifier.core.errors import UserError
from evaluation.compare import latest_per_label, paired_test
from evaluation.metrics import bootstrap_ci
from evaluation.runs import RunRecord, now_iso

SCHEMA = "dispute-classifier/decision/2"
CATEGORY_NAMES = registry.CATEGORIES
Z95 = 1.959963984540054


@dataclass
class VerdictConfig:
    """The assumptions of the decision report (``report --config FILE`` or ``--set KEY=VALUE``)."""

    margin_points: float = 2.0
    """Accuracy points that count as a real difference: an approach within this of the most accurate one (by its paired 95 % interval) is adequate, and fine-tuning must win by this much (with p < alpha) unless it is cheaper."""
    alpha: float = 0.05
    """Significance level of the paired exact McNemar test (fine-tuning's win)."""
    min_shared_examples: int = 200
    """Fewest shared test examples on which two runs are compared at all; fewer is 'inconclusive', with the number that would settle it."""
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
        if not 0 < self.alpha < 1:
            raise UserError(f"alpha must be between 0 and 1, got {self.alpha} (set --set alpha=0.05)")
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


def config_from_assumptions(assumptions: dict[str, Any]) -> VerdictConfig:
    """The `VerdictConfig` a decision report was made with (its ``assumptions``)."""
    names = {f for f in VerdictConfig.__dataclass_fields__}
    return from_dict(VerdictConfig, {k: v for k, v in assumptions.items() if k in names})


def category(meta: dict[str, Any]) -> str:
    """classical, prompted, rag or finetuned: what the run record says (written from the
    approach's registry entry when it ran)."""
    return registry.category_of(meta)


def backend(meta: dict[str, Any]) -> str | None:
    """The LLM backend of a language-model run (``extra.llm.backend``), else None."""
    return ((meta.get("extra") or {}).get("llm") or {}).get("backend")


def is_api(meta: dict[str, Any]) -> bool:
    """A run billed per token by an API provider (not a self-hosted server)."""
    return meta.get("billing") == "api"


# ---------------------------------------------------------------------------- cost model


@dataclass
class CostLine:
    """Monthly cost of serving one approach: ``fixed + max(floor, volume × per_query)``."""

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


def training_cost(run: RunRecord, cfg: VerdictConfig, prices: PriceTable) -> tuple[float | None, str]:
    """One-off training cost of a fine-tuned run and where the number comes from (None: unknown)."""
    extra = run.meta.get("extra") or {}
    if cfg.training_cost_usd is not None:
        return cfg.training_cost_usd, "set in the verdict config"
    if extra.get("training_cost_usd") is not None:
        return float(extra["training_cost_usd"]), "recorded by the fine-tuning run"
    if extra.get("train_wall_s") and extra.get("hardware") in prices.hardware:
        hours = float(extra["train_wall_s"]) / 3600
        return hours * prices.hourly(extra["hardware"]), f"{hours:.2f} h of training on {extra['hardware']}"
    return None, "unknown: not recorded (set training_cost_usd)"


def api_model(meta: dict[str, Any]) -> str:
    """The plain API model id of a run (the price table's key), not its display label."""
    llm = (meta.get("extra") or {}).get("llm") or {}
    model = llm.get("model")
    if model in (None, "server default"):  # the endpoint chose: the name it answered with
        model = llm.get("served_model") or model
    return str(model or meta.get("model") or meta["approach"])


def cost_line(run: RunRecord, cfg: VerdictConfig, prices: PriceTable) -> CostLine:
    """How one run's approach would cost per month, priced with the configured table."""
    meta, m = run.meta, run.metrics
    if is_api(meta):
        model = api_model(meta)
        tokens_in, tokens_out = m.get("input_tokens_per_query", 0.0), m.get("output_tokens_per_query", 0.0)
        per_query = prices.token_cost(model, tokens_in, tokens_out, workload=cfg.workload, cached_share=cfg.cached_input_share)
        if per_query is not None:
            basis = f"{model} {prices.describe_rate(model, cfg.workload, cfg.cached_input_share)} × {tokens_in:.0f} in + {tokens_out:.1f} out tokens per query"
            return CostLine(run.label, per_query, basis=basis)
        return CostLine(run.label, None, basis=f"{model} has no price in {prices.path}", missing=f"a price for '{model}' in the price table (--set prices=FILE)")
    finetuned = category(meta) == "finetuned"
    measured_on = meta.get("hardware") or prices.default_hardware
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
        cost, source = training_cost(run, cfg, prices)
        fixed = None if cost is None else cost / cfg.amortisation_months
        basis += f"; training {'unknown' if cost is None else f'${cost:.2f}'} ({source}) over {cfg.amortisation_months} months"
        if cost is None:
            missing = (missing + "; " if missing else "") + "the training cost (set training_cost_usd)"
    return CostLine(run.label, per_query, hourly * cfg.hours_per_month, fixed, basis, missing)


def break_even_volume(ft: CostLine, api_per_query: float) -> float | None:
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


# ---------------------------------------------------------------------------- evidence


def shared_examples_needed(delta: float, discordant: float, margin: float) -> int | None:
    """Shared examples at which the 95 % interval of a paired difference ``delta`` (a share,
    not points) would clear ``-margin`` on one side, at the observed discordant rate (normal
    approximation: half-width = z·sd/√n, sd² = discordant − delta²). None when ``delta``
    sits on the margin (no sample size settles it)."""
    gap = abs(delta + margin)
    if gap < 1e-9:
        return None
    var = max(discordant - delta * delta, 1e-4)
    return int(math.ceil((Z95 * math.sqrt(var) / gap) ** 2))


def paired(challenger: RunRecord, incumbent: RunRecord, cfg: VerdictConfig) -> dict[str, Any]:
    """The paired evidence of ``challenger`` against ``incumbent`` on the examples both saw:
    accuracy difference in points with its bootstrap 95 % interval, McNemar p, and whether
    the challenger is *adequate* (interval above ``-margin``), *worse* (below it) or
    *inconclusive* (too few shared examples, or an interval that straddles the margin)."""
    out: dict[str, Any] = {"challenger": challenger.label, "incumbent": incumbent.label}
    test = paired_test(challenger, incumbent, shared_only=True)
    if "refused" in test:
        return {**out, "status": "not comparable", "reason": test["refused"]}
    a, b = challenger.correct_by_id(), incumbent.correct_by_id()
    ids = sorted(set(a) & set(b))
    diffs = [int(a[i]) - int(b[i]) for i in ids]  # +1 challenger right only, -1 incumbent right only
    n = len(ids)
    delta = sum(diffs) / n
    lo, hi = bootstrap_ci(diffs)
    discordant = (test["a_only"] + test["b_only"]) / n
    margin = cfg.margin_points / 100
    out.update(n_shared=n, delta_points=100 * delta, delta_ci95_points=[100 * lo, 100 * hi], p_value=test["p_value"],
               challenger_only=test["a_only"], incumbent_only=test["b_only"])
    needed = shared_examples_needed(delta, max(discordant, 1 / n), margin)
    if n < cfg.min_shared_examples:
        need = max(cfg.min_shared_examples, needed or 0)
        return {**out, "status": "inconclusive", "n_needed": need,
                "reason": f"only {n} shared examples (minimum {cfg.min_shared_examples}); about {need:,} would settle it at the observed disagreement rate ({100 * discordant:.1f} %)"}
    if lo > -margin:
        return {**out, "status": "adequate", "reason": f"{100 * delta:+.2f} points (95 % CI {100 * lo:+.2f} to {100 * hi:+.2f}) stays above −{cfg.margin_points:g}"}
    if hi < -margin:
        return {**out, "status": "worse", "reason": f"{100 * delta:+.2f} points (95 % CI {100 * lo:+.2f} to {100 * hi:+.2f}) is below −{cfg.margin_points:g}"}
    need_txt = f"about {needed:,}" if needed else "no realistic number of"
    return {**out, "status": "inconclusive", "n_needed": needed,
            "reason": f"{100 * delta:+.2f} points (95 % CI {100 * lo:+.2f} to {100 * hi:+.2f}) straddles −{cfg.margin_points:g}; {need_txt} shared examples would settle it"}


def best_run(runs: list[RunRecord]) -> RunRecord | None:
    """The most accurate run (macro-F1 breaks ties), or None."""
    return max(runs, key=lambda r: (r.metrics["accuracy"], r.metrics["macro_f1"]), default=None)


def _model_key(meta: dict[str, Any]) -> tuple[str, str]:
    return meta["approach"], str(meta.get("model"))


def _sweep_key(meta: dict[str, Any]) -> tuple[str, int] | None:
    extra = meta.get("extra") or {}
    if extra.get("sweep_study") is None or extra.get("sweep_trial") is None:
        return None
    return str(extra["sweep_study"]), int(extra["sweep_trial"])


def choose_on_validation(test_runs: list[RunRecord], validation_runs: list[RunRecord]) -> tuple[RunRecord | None, str]:
    """The run among ``test_runs`` whose model has the best *validation* record (so the test
    split only reports); the newest when none of them has one, and why, in words.

    A sweep's final model (refit on train+validation, so it has no validation record of its
    own) stands on the validation record of the trial whose settings it refit.
    """
    if not test_runs:
        return None, ""
    ordered = sorted(validation_runs, key=lambda r: r.meta.get("finished_at", ""))
    val = {_model_key(r.meta): r for r in ordered}
    trials = {_sweep_key(r.meta): r for r in ordered if _sweep_key(r.meta) and not r.meta["extra"].get("sweep_final")}

    def evidence(run: RunRecord) -> RunRecord | None:
        if (run.meta.get("extra") or {}).get("sweep_final"):
            return trials.get(_sweep_key(run.meta))
        return val.get(_model_key(run.meta))

    scored = [(v, r) for r in test_runs if (v := evidence(r)) is not None]
    if scored:
        v, chosen = max(scored, key=lambda t: (t[0].metrics["accuracy"], t[0].metrics["macro_f1"]))
        how = (f"chosen on validation: {v.metrics['accuracy'] * 100:.2f} % on {v.metrics['n']} validation examples"
               f" (best of {len(scored)} with a validation record)")
        if (chosen.meta.get("extra") or {}).get("sweep_final"):
            study, trial = _sweep_key(chosen.meta) or ("", 0)
            how += f"; the settings of trial {trial} of sweep '{study}', refit on train+validation"
        return chosen, how
    newest = max(test_runs, key=lambda r: r.meta.get("finished_at", ""))
    return newest, "no validation record for any version: the newest is used (not selected on test)"


COMPARISON_SET: list[tuple[str, Any, str]] = [
    ("base model, no prompt", lambda m: m["approach"] == "zero-shot", "--approach zero-shot"),
    ("base model, optimised prompt", lambda m: m["approach"] in ("prompt", "few-shot") and not is_api(m), "--approach prompt"),
    ("stronger API model, optimised prompt", lambda m: m["approach"] in ("prompt", "few-shot") and is_api(m), "--approach prompt --model gpt-4o-mini  # needs an API key"),
    ("RAG", lambda m: category(m) == "rag", "--approach rag"),
    ("fine-tuned", lambda m: category(m) == "finetuned", "--approach finetuned --model NAME"),
    ("classical: TF-IDF", lambda m: m["approach"] == "tfidf", "--approach tfidf"),
    ("classical: embeddings", lambda m: m["approach"] == "embedding", "--approach embedding"),
    ("classical: kNN", lambda m: m["approach"] == "knn", "--approach knn"),
]
"""The seed's comparison set: (row, which runs fill it, how to run one)."""


def leaderboard_row(run: RunRecord, cost: CostLine, volume: int) -> dict[str, Any]:
    """One leaderboard line of the decision report, with the monthly cost at ``volume``."""
    m, meta = run.metrics, run.meta
    return {
        "label": run.label, "run_id": run.run_id, "approach": meta["approach"], "category": category(meta),
        "model": meta.get("model"), "backend": backend(meta), "billing": meta.get("billing"),
        "n": m["n"], "limit": meta["data"].get("limit"), "overlap": bool(meta["data"].get("overlap")),
        "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"], "macro_f1": m["macro_f1"],
        "invalid_rate": m["invalid_rate"], "latency_p50_s": m["latency_p50_s"], "latency_p95_s": m["latency_p95_s"],
        "throughput_qps": m["throughput_qps"], "cost_per_1k_usd": m["cost_per_1k_usd"],
        "monthly_cost_usd": cost.monthly(volume), "cost_basis": cost.basis, "cost_missing": cost.missing,
    }


def _within_budget(run: RunRecord, cfg: VerdictConfig) -> bool:
    return cfg.max_p95_latency_ms is None or run.metrics["latency_p95_s"] * 1000 <= cfg.max_p95_latency_ms


def recommend(options: list[RunRecord], cfg: VerdictConfig, costs: dict[str, CostLine]) -> dict[str, Any]:
    """The rule: the cheapest adequate option at the stated volume within the latency budget,
    ties broken by the preference order. Returns the choice, the reference (most accurate with
    enough examples), every option's standing, and whether the choice is decided."""
    if not options:
        return {"choice": None, "reference": None, "standing": [], "decided": False, "undecided_by": []}
    full = [r for r in options if r.metrics["n"] >= cfg.min_shared_examples]
    reference = best_run(full or options)
    assert reference is not None
    standing = []
    for run in options:
        if run is reference:
            ev: dict[str, Any] = {"challenger": run.label, "incumbent": run.label, "status": "reference",
                                  "reason": "most accurate run" + ("" if full else f" (no run has {cfg.min_shared_examples}+ examples)")}
            if not full:
                ev.update(status="inconclusive", n_needed=cfg.min_shared_examples,
                          reason=f"most accurate run, but on only {run.metrics['n']} examples (minimum {cfg.min_shared_examples})")
        else:
            ev = paired(run, reference, cfg)
        ev["monthly_cost_usd"] = costs[run.label].monthly(cfg.monthly_volume)
        ev["within_latency_budget"] = _within_budget(run, cfg)
        ev["category"] = category(run.meta)
        standing.append((run, ev))
    order = {c: i for i, c in enumerate(cfg.preference_order)}

    def price_key(item: tuple[RunRecord, dict[str, Any]]) -> tuple[float, int, float]:
        run, ev = item
        cost = ev["monthly_cost_usd"]
        return (math.inf if cost is None else round(cost, 6), order.get(ev["category"], len(order)), -run.metrics["accuracy"])

    adequate = [(r, e) for r, e in standing if e["status"] in ("adequate", "reference") and e["within_latency_budget"]]
    chosen = min(adequate, key=price_key) if adequate else None
    choice = chosen[0] if chosen else None
    choice_key = price_key(chosen) if chosen else (math.inf, 99, 0.0)
    # Undecided when an option we cannot yet judge could undercut the choice.
    undecided_by = [e for r, e in standing if e["status"] in ("inconclusive", "not comparable") and e["within_latency_budget"]
                    and price_key((r, e)) < choice_key]
    return {"choice": choice, "reference": reference, "standing": [e for _, e in standing],
            "decided": choice is not None and not undecided_by, "undecided_by": undecided_by}


def finetune_question(ft: RunRecord | None, base: RunRecord | None, cfg: VerdictConfig, costs: dict[str, CostLine], why_ft: str) -> dict[str, Any]:
    """Yes / no / not yet decidable: does the fine-tuned model earn its place over ``base``,
    the option the rule picks without fine-tuning?"""
    if ft is None:
        return {"answer": "not yet decidable", "reason": "no fine-tuned run on this split: run the fine-tuned stage (`dispute-classifier experiment`)"}
    if base is None:
        return {"answer": "not yet decidable", "finetuned": ft.label, "selection": why_ft,
                "reason": "no option without fine-tuning is decided yet to compare it with"}
    ev = paired(ft, base, cfg)
    out = {"finetuned": ft.label, "selection": why_ft, "against": base.label, **{k: v for k, v in ev.items() if k not in ("challenger", "incumbent")}}
    cost_ft, cost_b = costs[ft.label].monthly(cfg.monthly_volume), costs[base.label].monthly(cfg.monthly_volume)
    out.update(monthly_cost_finetuned_usd=cost_ft, monthly_cost_against_usd=cost_b)
    if ev["status"] == "not comparable":
        return {**out, "answer": "not yet decidable", "reason": f"not comparable: {ev['reason']}"}
    if not _within_budget(ft, cfg):
        return {**out, "answer": "no", "reason": f"its p95 latency {ft.metrics['latency_p95_s'] * 1000:.0f} ms is over the {cfg.max_p95_latency_ms:g} ms budget"}
    lo, hi = ev["delta_ci95_points"]
    delta, p = ev["delta_points"], ev["p_value"]
    enough = ev["n_shared"] >= cfg.min_shared_examples
    cheaper = None if cost_ft is None or cost_b is None else cost_ft < cost_b
    costs_txt = f"{money(cost_ft)} vs {money(cost_b)} a month at {cfg.monthly_volume:,} queries" if cheaper is not None else "monthly cost unknown: " + "; ".join(
        m for m in (costs[ft.label].missing, costs[base.label].missing) if m)
    if enough and delta >= cfg.margin_points and p < cfg.alpha:
        return {**out, "answer": "yes", "outcome": "clear win", "reason": f"{delta:+.2f} points (p={p:.3g}) beats {base.label} by the {cfg.margin_points:g}-point margin"}
    if enough and ev["status"] == "adequate" and cheaper:
        return {**out, "answer": "yes", "outcome": "equivalent and cheaper", "reason": f"{ev['reason']} and it is cheaper: {costs_txt}"}
    could_win = hi >= cfg.margin_points
    could_be_adequate_and_cheaper = ev["status"] == "inconclusive" and cheaper is not False
    cost_unknown_matters = ev["status"] == "adequate" and cheaper is None
    if not enough or could_be_adequate_and_cheaper or cost_unknown_matters or (could_win and delta < cfg.margin_points and p >= cfg.alpha and ev["status"] != "worse"):
        why = ev["reason"] if ev["status"] == "inconclusive" else (costs_txt if cost_unknown_matters else f"{delta:+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f}, p={p:.3g}): a {cfg.margin_points:g}-point win is not excluded")
        if could_win and ev["status"] != "inconclusive" and not cost_unknown_matters:
            discordant = (ev["challenger_only"] + ev["incumbent_only"]) / ev["n_shared"]
            need = shared_examples_needed(delta / 100, max(discordant, 1 / ev["n_shared"]), -cfg.margin_points / 100)
            why += f"; about {need:,} shared examples would settle it" if need else ""
        return {**out, "answer": "not yet decidable", "reason": why}
    if ev["status"] == "worse":
        return {**out, "answer": "no", "outcome": "worse", "reason": ev["reason"]}
    return {**out, "answer": "no", "outcome": "not worth it", "reason": f"{delta:+.2f} points (p={p:.3g}) is no {cfg.margin_points:g}-point win, and it is not cheaper: {costs_txt}"}


def build_report(
    runs: list[RunRecord], task: str, split: str, cfg: VerdictConfig | None = None, skipped: list[str] | None = None,
    *, data_hash: str | None = None, stages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The decision report (plain data) from run records of ``task`` on ``split``.

    ``data_hash`` (the task's current data) excludes runs made on other data; ``stages`` (what
    an experiment did) are reported, and the runs of a failed stage are never used in its place.
    """
    cfg = cfg or VerdictConfig()
    prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
    task_runs = [r for r in runs if r.meta["task"] == task]
    excluded: list[str] = []
    if data_hash is not None:
        other = [r for r in task_runs if r.meta["data"].get("data_hash") != data_hash]
        if other:
            excluded.append(f"{len(other)} run(s) made on other data (task files or splits changed since) are left out")
        task_runs = [r for r in task_runs if r.meta["data"].get("data_hash") == data_hash]
    failed = {(s.get("approach"), s.get("limit")) for s in stages or [] if s.get("status") == "failed"}
    produced = {str(s.get("run")) for s in stages or [] if s.get("run")}
    stale = [r for r in task_runs if (r.meta["approach"], r.meta["data"].get("limit")) in failed and str(r.path) not in produced]
    if stale:
        excluded.append(f"{len(stale)} older run(s) of failed stages are not used in their place: " + ", ".join(sorted({r.label for r in stale})))
        task_runs = [r for r in task_runs if r not in stale]
    runs_split = latest_per_label([r for r in task_runs if r.meta["split"] == split])
    validation = latest_per_label([r for r in task_runs if r.meta["split"] == "validation"])
    runs_split.sort(key=lambda r: (-r.metrics["accuracy"], -r.metrics["macro_f1"]))
    costs = {r.label: cost_line(r, cfg, prices) for r in runs_split}
    overlapping = [r for r in runs_split if r.meta["data"].get("overlap")]

    comparison = []
    for row, matches, how in COMPARISON_SET:
        best = best_run([r for r in runs_split if matches(r.meta)])
        comparison.append({"row": row, "status": "run" if best else "not run", "label": best.label if best else None,
                           "accuracy": best.metrics["accuracy"] if best else None,
                           "how": None if best else f"dispute-classifier evaluate --task {task} {how}"})

    # Fine-tuned versions compete as one option: the one chosen on validation.
    finetuned = [r for r in runs_split if category(r.meta) == "finetuned"]
    best_ft, why_ft = choose_on_validation(finetuned, [r for r in validation if category(r.meta) == "finetuned"])
    options = [r for r in runs_split if category(r.meta) != "finetuned"] + ([best_ft] if best_ft else [])
    rule = recommend(options, cfg, costs)
    without_ft = recommend([r for r in options if category(r.meta) != "finetuned"], cfg, costs)
    base = without_ft["choice"] if without_ft["decided"] else None
    question = finetune_question(best_ft, base if base else without_ft["choice"], cfg, costs, why_ft)
    if best_ft is not None and without_ft["choice"] is not None and not without_ft["decided"] and question["answer"] != "not yet decidable":
        question = {**question, "answer": "not yet decidable",
                    "reason": f"the option without fine-tuning is not settled yet ({without_ft['undecided_by'][0]['challenger']}: {without_ft['undecided_by'][0]['reason']})"}

    choice = rule["choice"]
    reasons: list[str] = []
    if not runs_split:
        headline = f"No runs yet for {task}/{split}: run `dispute-classifier experiment --task {task}` first."
    elif choice is None:
        headline = ("Not yet decidable: no approach is shown adequate"
                    + (f" within the {cfg.max_p95_latency_ms:g} ms latency budget" if cfg.max_p95_latency_ms else "") + ".")
    elif not rule["decided"]:
        first = rule["undecided_by"][0]
        theirs, ours = first["monthly_cost_usd"], costs[choice.label].monthly(cfg.monthly_volume)
        if theirs is not None and ours is not None and round(theirs, 6) == round(ours, 6):
            how = f"adequate at the same cost and preferred ({first['category']} before {category(choice.meta)})"
        elif theirs is not None and ours is not None:
            how = f"adequate and cheaper by {money(ours - theirs)} a month ({money(theirs)} against {money(ours)})"
        else:
            how = "adequate and cheaper"
        headline = (f"Not yet decidable: {choice.label} is the cheapest approach shown adequate, but {first['challenger']} might be"
                    f" {how} — {first['reason']}.")
    else:
        headline = f"Use {choice.label} ({CATEGORY_NAMES[category(choice.meta)]}): the cheapest adequate approach at {cfg.monthly_volume:,} queries/month."
    headline += f" Fine-tune? {question['answer']}."
    if rule["reference"] is not None:
        reasons.append(f"reference: {rule['reference'].label}, {rule['reference'].metrics['accuracy'] * 100:.2f} % on {rule['reference'].metrics['n']} examples")
    for ev in rule["standing"]:
        cost = ev["monthly_cost_usd"]
        budget = "" if ev["within_latency_budget"] else "; over the latency budget"
        reasons.append(f"{ev['challenger']}: {ev['status']} — {ev['reason']}; {money(cost)}/month{budget}")
    reasons.append(f"fine-tune: {question['answer']} — {question['reason']}")
    if overlapping:
        reasons.append("warning: evaluated on rows the model was fitted on (forced): " + ", ".join(r.label for r in overlapping))
    reasons += excluded

    # Break-even of the chosen fine-tuned model against the best prompted API approach.
    api_runs = [r for r in runs_split if category(r.meta) in ("prompted", "rag") and is_api(r.meta) and costs[r.label].per_query_usd is not None]
    best_api = best_run(api_runs)
    volumes = volume_grid()
    break_even: dict[str, Any] = {
        "formula": "fine-tuned $/month = T/m + max(H × h, V × c_ft);  API $/month = V × c_api;  "
                   "break-even V* = (T/m + H × h) / c_api while one machine serves V* (V* ≤ H × h / c_ft), else (T/m) / (c_api − c_ft); "
                   "never when c_api ≤ c_ft",
        "curve": [{"volume": v, "label": label, "monthly_usd": line.monthly(v)} for label, line in costs.items() for v in volumes if line.monthly(v) is not None],
    }
    if best_ft is None or best_api is None:
        missing = "a fine-tuned run" if best_ft is None else "a prompted API run (configure an API key and run the prompt stage with an API model)"
        break_even.update(volume=None, note=f"not computed: needs {missing}")
    else:
        ft, api = costs[best_ft.label], costs[best_api.label]
        volume = break_even_volume(ft, api.per_query_usd)  # type: ignore[arg-type]
        break_even.update(
            finetuned=best_ft.label, api=best_api.label, volume=None if volume in (None, math.inf) else volume,
            never=volume == math.inf,
            terms={"T_usd": None if ft.fixed_monthly_usd is None else ft.fixed_monthly_usd * cfg.amortisation_months, "m_months": cfg.amortisation_months,
                   "H_usd_per_hour": ft.floor_monthly_usd / cfg.hours_per_month, "h_hours": cfg.hours_per_month,
                   "c_ft_usd": ft.per_query_usd, "c_api_usd": api.per_query_usd},
            note=(f"unknown: needs {ft.missing}" if volume is None
                  else f"{best_api.label} costs no more per query than a busy machine for the fine-tuned model: fine-tuning never pays for itself on cost" if volume == math.inf
                  else f"fine-tuning is cheaper above {volume:,.0f} queries/month"),
        )
        reasons.append(break_even["note"] + f" (against {best_api.label})")

    tc = None if best_ft is None else dict(zip(("usd", "source"), training_cost(best_ft, cfg, prices)))
    return {
        "schema": SCHEMA, "task": task, "split": split, "created_at": now_iso(), "data_hash": data_hash,
        "rule": ("Candidates: every approach with a run. Adequate: the paired 95 % interval of its accuracy difference to the most"
                 f" accurate approach stays above −{cfg.margin_points:g} points on at least {cfg.min_shared_examples} shared examples."
                 f" Recommended: the cheapest adequate approach at {cfg.monthly_volume:,} queries/month"
                 + (f" within a p95 latency of {cfg.max_p95_latency_ms:g} ms" if cfg.max_p95_latency_ms else "")
                 + f", ties broken by {' → '.join(cfg.preference_order)}. Fine-tune when the fine-tuned model (chosen on validation)"
                 f" beats that choice by {cfg.margin_points:g} points with p < {cfg.alpha:g}, or is adequate against it and cheaper."),
        "assumptions": {
            **to_dict(cfg), "prices": str(prices.path), "training_cost": tc,
            "hosting_hardware": cfg.hosting_hardware,
        },
        "leaderboard": [leaderboard_row(r, costs[r.label], cfg.monthly_volume) for r in runs_split],
        "comparison_set": comparison,
        "standing": rule["standing"],
        "finetune": question,
        "break_even": break_even,
        "stages": stages or [],
        "excluded": excluded,
        "verdict": {
            "recommendation": choice.label if choice else None,
            "category": category(choice.meta) if choice else None,
            "decided": rule["decided"],
            "finetune": question["answer"],
            "headline": headline,
            "reasons": reasons,
        },
        "skipped": skipped or [],
    }


# ---------------------------------------------------------------------------- output


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def to_markdown(report: dict[str, Any]) -> str:
    """A readable decision report."""
    v, a, fq = report["verdict"], report["assumptions"], report["finetune"]
    lines = [f"# Decision: task `{report['task']}`, split `{report['split']}`", "", f"**{v['headline']}**", ""]
    lines += [f"- {r}" for r in v["reasons"]]
    lines += ["", "## The rule", "", report["rule"]]
    lines += ["", "## Assumptions (change with `dispute-classifier report --set KEY=VALUE`)", ""]
    lines += [f"- margin: {a['margin_points']:g} accuracy points; minimum shared examples: {a['min_shared_examples']}; significance: p < {a['alpha']:g} (paired exact McNemar)",
              f"- monthly volume: {a['monthly_volume']:,} queries; workload: {a['workload']}"
              + (f", cached input share {a['cached_input_share']:g}" if a.get("cached_input_share") else "")
              + (f"; latency budget p95 ≤ {a['max_p95_latency_ms']:g} ms" if a.get("max_p95_latency_ms") else "; no latency budget"),
              f"- self-hosted on: {a['hosting_hardware'] or 'the hardware each run was measured on'}, {a['hours_per_month']:g} h/month; training cost amortised over {a['amortisation_months']} months"
              + (f" (training {money(a['training_cost']['usd'])}, {a['training_cost']['source']})" if a["training_cost"] else ""),
              f"- simplicity order for ties: {' → '.join(a['preference_order'])}",
              f"- price table: {a['prices']}"]
    if report["stages"]:
        lines += ["", "## Stages", "", "| stage | status | detail |", "| --- | --- | --- |"]
        lines += [f"| {s['stage']} | {s['status']} | {s['detail']} |" for s in report["stages"]]
    lines += ["", "## Leaderboard", "", "| approach | kind | n | accuracy (95 % CI) | macro-F1 | invalid | p50 / p95 ms | $ per 1k | $ per month |",
              "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["leaderboard"]:
        lo, hi = r["accuracy_ci95"]
        lines.append(f"| {r['label']}{' ⚠ overlap' if r.get('overlap') else ''} | {r['category']} | {r['n']} | {_pct(r['accuracy'])} ({lo*100:.1f}–{hi*100:.1f}) | {_pct(r['macro_f1'])} | "
                     f"{_pct(r['invalid_rate'])} | {r['latency_p50_s']*1000:.1f} / {r['latency_p95_s']*1000:.1f} | {money(r['cost_per_1k_usd'])} | {money(r['monthly_cost_usd'])} |")
    lines += ["", "## Each approach against the most accurate one (paired, shared examples)", "",
              "| approach | standing | shared n | Δ points (95 % CI) | $ per month | why |", "| --- | --- | ---: | --- | ---: | --- |"]
    for e in report["standing"]:
        ci = f"{e['delta_points']:+.2f} ({e['delta_ci95_points'][0]:+.2f} to {e['delta_ci95_points'][1]:+.2f})" if "delta_points" in e else "—"
        lines.append(f"| {e['challenger']} | {e['status']} | {e.get('n_shared', '—')} | {ci} | {money(e['monthly_cost_usd'])} | {e['reason']} |")
    lines += ["", "## The comparison set", "", "| row | status | run | accuracy |", "| --- | --- | --- | ---: |"]
    for c in report["comparison_set"]:
        lines.append(f"| {c['row']} | {c['status']} | {c['label'] or '`' + c['how'] + '`'} | {_pct(c['accuracy'])} |")
    lines += ["", "## Fine-tune?", "", f"**{fq['answer']}** — {fq['reason']}"]
    if fq.get("selection"):
        lines += ["", f"Fine-tuned model: {fq['finetuned']} ({fq['selection']}); compared with {fq.get('against') or 'nothing yet'}."]
    if "p_value" in fq:
        lo, hi = fq["delta_ci95_points"]
        lines.append(f"On {fq['n_shared']} shared examples: {fq['delta_points']:+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f}),"
                     f" right only {fq['challenger_only']} / {fq['incumbent_only']}, p = {fq['p_value']:.4g}.")
    be = report["break_even"]
    lines += ["", "## Break-even volume", "", f"`{be['formula']}`", "", be["note"] + "."]
    if be.get("terms"):
        t = be["terms"]
        lines += ["", f"T = {money(t['T_usd'])}, m = {t['m_months']}, H = {money(t['H_usd_per_hour'])}/h, h = {t['h_hours']:g}, "
                      f"c_ft = {money(t['c_ft_usd'])}, c_api = {money(t['c_api_usd'])}"]
    labels = list(dict.fromkeys(p["label"] for p in be["curve"]))
    if labels:
        shown = [v for v in sorted({p["volume"] for p in be["curve"]}) if v in (100, 1000, 10000, 100000, 1000000, 10000000, 100000000)]
        cost = {(p["label"], p["volume"]): p["monthly_usd"] for p in be["curve"]}
        lines += ["", "$ per month by monthly volume:", "", "| approach | " + " | ".join(f"{v:,}" for v in shown) + " |", "| --- |" + " ---: |" * len(shown)]
        lines += [f"| {label} | " + " | ".join(money(cost.get((label, v))) for v in shown) + " |" for label in labels]
    if report["excluded"]:
        lines += ["", "## Left out", ""] + [f"- {e}" for e in report["excluded"]]
    if report["skipped"]:
        lines += ["", f"Skipped {len(report['skipped'])} unreadable run folder(s):"] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def report_paths(out_dir: Path, task: str, split: str) -> tuple[Path, Path]:
    """Where the decision report of a task and split is written (and where the dashboard looks)."""
    stem = f"decision-{Path(task).stem}-{split}"
    return Path(out_dir) / f"{stem}.json", Path(out_dir) / f"{stem}.md"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    js, md = report_paths(out_dir, report["task"], report["split"])
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    md.write_text(to_markdown(report), encoding="utf-8")
    return js, md


def read_report(path: Path) -> dict[str, Any]:
    """Read a decision report JSON; errors name the file."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no decision report; run `dispute-classifier report` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt decision report ({exc}); run `dispute-classifier report` again") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise UserError(f"{path}: not a decision report (expected schema {SCHEMA}); run `dispute-classifier report` again")
    return report
