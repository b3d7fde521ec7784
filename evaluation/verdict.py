"""The decision report: prompt, retrieve or fine-tune? Read from run records, never from models.

From the latest run of each approach on one task and split it builds

- the leaderboard (accuracy with its 95 % interval, macro-F1, invalid rate, latency, cost),
- the seed's comparison set, with the rows nobody has run yet marked "not run",
- a paired exact McNemar test of the best fine-tuned run against the best other run,
- the break-even monthly volume above which fine-tuning is cheaper than the best prompted
  API approach, as a formula and a curve,
- and the verdict. The seed's rule: prefer prompt, then RAG, then fine-tuning; a later,
  costlier option is recommended only when it *earns its place*: it beats the incumbent by
  ``margin_points`` with p < ``alpha``, or it matches the incumbent while being cheaper at
  the stated monthly volume. Every assumption is in `VerdictConfig` and printed beside it.

The cost model, per approach and month at ``V`` queries:
``fixed + max(floor, V × per_query)``. API approaches pay their measured tokens at list
price (no fixed part, no floor). Self-hosted approaches keep one machine always on
(``floor`` = hourly price × hours per month) and pay the hourly price over the measured
throughput once one machine is busy; fine-tuned ones add the one-off training cost spread
over ``amortisation_months`` (``fixed``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_classifier.core import registry
from dispute_classifier.core.config import to_dict
from dispute_classifier.core.errors import UserError
from evaluation.compare import latest_per_label, paired_test
from dispute_classifier.core.costs import PriceTable
from evaluation.metrics import bootstrap_ci
from evaluation.runs import RunRecord, now_iso

SCHEMA = "dispute-classifier/decision/1"
"""Approaches that prompt a language model without retrieval or training."""
CATEGORY_NAMES = registry.CATEGORIES


@dataclass
class VerdictConfig:
    """The assumptions of the decision report (``report --config FILE`` or ``--set KEY=VALUE``)."""

    margin_points: float = 2.0
    """Accuracy points by which fine-tuning (or any costlier option) must beat the best simpler approach, with p < alpha, to be recommended."""
    alpha: float = 0.05
    """Significance level of the paired exact McNemar test."""
    monthly_volume: int = 100_000
    """Queries per month the feature serves; monthly costs and the 'cheaper' rule are judged at this volume."""
    hosting_hardware: str | None = None
    """Hardware kind from the price table that hosts the fine-tuned model (default: the hardware its run was measured on); its throughput is taken as measured."""
    hours_per_month: float = 730.0
    """Hours per month a self-hosted model's machine is kept on (one machine is always on)."""
    amortisation_months: int = 12
    """Months over which the one-off training cost of a fine-tuned model is spread."""
    training_cost_usd: float | None = None
    """One-off training cost of the fine-tuned model (default: what its run records in extra.training_cost_usd)."""
    prices: str | None = None
    """Price table YAML (default: dispute_classifier/core/prices.yaml)."""
    simpler_order: list[str] = field(default_factory=lambda: ["prompted", "rag", "classical"])
    """Preference among the simpler approaches, most preferred first (the seed's rule: prompt, then RAG); a later one is chosen only when it earns its place as fine-tuning must."""

    def __post_init__(self) -> None:
        if self.margin_points < 0:
            raise UserError(f"margin_points must be 0 or more, got {self.margin_points} (set --set margin_points=2)")
        if not 0 < self.alpha < 1:
            raise UserError(f"alpha must be between 0 and 1, got {self.alpha} (set --set alpha=0.05)")
        if self.monthly_volume < 0:
            raise UserError(f"monthly_volume must be 0 or more, got {self.monthly_volume} (set --set monthly_volume=100000)")
        if self.amortisation_months < 1 or self.hours_per_month <= 0:
            raise UserError("amortisation_months and hours_per_month must be positive")
        unknown = [c for c in self.simpler_order if c not in ("prompted", "rag", "classical")]
        if unknown:
            raise UserError(f"simpler_order may name prompted, rag and classical only, got '{unknown[0]}'")


def config_from_assumptions(assumptions: dict[str, Any]) -> VerdictConfig:
    """The `VerdictConfig` a decision report was made with (its ``assumptions``)."""
    from dispute_classifier.core.config import from_dict

    names = {f for f in VerdictConfig.__dataclass_fields__}
    return from_dict(VerdictConfig, {k: v for k, v in assumptions.items() if k in names})


def category(meta: dict[str, Any]) -> str:
    """classical, prompted, rag or finetuned: what the run record says (written from the
    approach's registry entry when it ran)."""
    return registry.category_of(meta)


def backend(meta: dict[str, Any]) -> str | None:
    """``api`` or ``local`` for language-model runs (their ``extra.backend``), else None."""
    return (meta.get("extra") or {}).get("backend")


# ---------------------------------------------------------------------------- cost model


@dataclass
class CostLine:
    """Monthly cost of serving one approach: ``fixed + max(floor, volume × per_query)``."""

    label: str
    per_query_usd: float | None
    """Marginal cost of one query (None: unknown, e.g. an API model without a price)."""
    floor_monthly_usd: float = 0.0
    """Paid whatever the volume: one always-on machine for a self-hosted model."""
    fixed_monthly_usd: float = 0.0
    """One-off training cost spread over the amortisation period (fine-tuned models)."""
    basis: str = ""
    """Where the numbers come from, in words."""

    def monthly(self, volume: float) -> float | None:
        if self.per_query_usd is None:
            return None
        return self.fixed_monthly_usd + max(self.floor_monthly_usd, volume * self.per_query_usd)


def training_cost(run: RunRecord, cfg: VerdictConfig, prices: PriceTable) -> tuple[float, str]:
    """One-off training cost of a fine-tuned run and where the number comes from."""
    extra = run.meta.get("extra") or {}
    if cfg.training_cost_usd is not None:
        return cfg.training_cost_usd, "set in the verdict config"
    if extra.get("training_cost_usd") is not None:
        return float(extra["training_cost_usd"]), "recorded by the fine-tuning run"
    if extra.get("train_wall_s") and extra.get("hardware") in prices.hardware:
        hours = float(extra["train_wall_s"]) / 3600
        return hours * prices.hourly(extra["hardware"]), f"{hours:.2f} h of training on {extra['hardware']}"
    return 0.0, "unknown (not recorded), counted as $0"


def cost_line(run: RunRecord, cfg: VerdictConfig, prices: PriceTable) -> CostLine:
    """How one run's approach would cost per month, priced with the configured table."""
    meta, m = run.meta, run.metrics
    if meta.get("billing") == "api":
        model = meta.get("model") or meta["approach"]
        tokens_in, tokens_out = m.get("input_tokens_per_query", 0.0), m.get("output_tokens_per_query", 0.0)
        price = prices.api_price(model)
        if price is not None:
            per_query = prices.token_cost(model, tokens_in, tokens_out)
            basis = f"{model} list price ${price['input_per_mtok']}/${price['output_per_mtok']} per Mtok × {tokens_in:.0f} in + {tokens_out:.1f} out tokens per query"
        else:
            per_query = m.get("cost_per_query_usd")
            basis = f"{model} has no price in the table; " + ("recorded cost used" if per_query is not None else "cost unknown")
        return CostLine(run.label, per_query, basis=basis)
    finetuned = category(meta) == "finetuned"
    measured_on = meta.get("hardware") or prices.default_hardware
    hardware = (cfg.hosting_hardware if finetuned else None) or measured_on
    hourly = prices.hourly(hardware)
    qps = m.get("throughput_qps") or 0.0
    per_query = hourly / (qps * 3600) if qps > 0 else None
    fixed, basis = 0.0, f"{hardware} ${hourly:.2f}/h, always on, {qps:.1f} queries/s measured on {measured_on}"
    if finetuned:
        cost, source = training_cost(run, cfg, prices)
        fixed = cost / cfg.amortisation_months
        basis += f"; training ${cost:.2f} ({source}) over {cfg.amortisation_months} months"
    return CostLine(run.label, per_query, hourly * cfg.hours_per_month, fixed, basis)


def break_even_volume(ft: CostLine, api_per_query: float) -> float | None:
    """Monthly volume above which ``ft`` costs less than an API at ``api_per_query`` per query.

    Fine-tuned: ``F + max(L, V × c_ft)`` (F amortised training, L one machine's month);
    API: ``V × c``. Below one machine's capacity ``L / c_ft`` the break-even is
    ``(F + L) / c``; past it, ``F / (c − c_ft)``. None when the API is at least as cheap per
    query as a busy machine (then self-hosting never catches up) or a cost is unknown.
    """
    c, c_ft = api_per_query, ft.per_query_usd
    if c is None or c_ft is None or c <= c_ft or c <= 0:
        return None
    fixed, floor = ft.fixed_monthly_usd, ft.floor_monthly_usd
    one_machine = (fixed + floor) / c
    capacity = floor / c_ft
    return one_machine if one_machine <= capacity else fixed / (c - c_ft)


def volume_grid(low: float = 1e2, high: float = 1e8, points: int = 25) -> list[float]:
    """Log-spaced monthly volumes for the cost curves."""
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    return [round(10 ** (math.log10(low) + i * step)) for i in range(points)]


# ---------------------------------------------------------------------------- decisions


def duel(challenger: RunRecord, incumbent: RunRecord, cfg: VerdictConfig, costs: dict[str, CostLine]) -> dict[str, Any]:
    """Does ``challenger`` earn its place over ``incumbent``? Paired on the examples both saw.

    It earns it when it wins (at least ``margin_points`` better with p < alpha) or matches
    (less than the margin worse and not significantly worse) while costing less per month
    at the configured volume.
    """
    out: dict[str, Any] = {"challenger": challenger.label, "incumbent": incumbent.label}
    test = paired_test(challenger, incumbent, shared_only=True)
    cost_c = costs[challenger.label].monthly(cfg.monthly_volume)
    cost_i = costs[incumbent.label].monthly(cfg.monthly_volume)
    out.update(monthly_cost_challenger_usd=cost_c, monthly_cost_incumbent_usd=cost_i)
    if "refused" in test:
        out.update(earns=False, outcome="not comparable", reason=f"no paired test: {test['refused']}")
        return out
    a, b = challenger.correct_by_id(), incumbent.correct_by_id()
    ids = sorted(set(a) & set(b))
    diffs = [int(a[i]) - int(b[i]) for i in ids]  # +1 challenger right only, -1 incumbent right only
    delta = 100 * sum(diffs) / len(ids)
    lo, hi = bootstrap_ci(diffs)
    p = test["p_value"]
    wins = delta >= cfg.margin_points and p < cfg.alpha
    matches = delta > -cfg.margin_points and not (p < cfg.alpha and delta < 0)
    cheaper = cost_c is not None and cost_i is not None and cost_c < cost_i
    out.update(
        n_shared=len(ids), delta_points=delta, delta_ci95_points=[100 * lo, 100 * hi], p_value=p,
        challenger_only=test["a_only"], incumbent_only=test["b_only"], wins=wins, matches=matches, cheaper=cheaper,
        earns=wins or (matches and cheaper),
    )
    sig = f"p={p:.3g}"
    if wins:
        out.update(outcome="clear win", reason=f"{delta:+.2f} points ({sig}) clears the {cfg.margin_points:g}-point margin")
    elif matches and cheaper:
        out.update(outcome="cheaper at volume", reason=f"{delta:+.2f} points ({sig}) is a match, and it costs ${cost_c:,.2f} vs ${cost_i:,.2f} a month at {cfg.monthly_volume:,} queries")
    elif delta > 0 and p >= cfg.alpha:
        out.update(outcome="win within noise", reason=f"{delta:+.2f} points but {sig} ≥ {cfg.alpha:g}: not distinguishable from noise, and not cheaper at {cfg.monthly_volume:,} queries/month")
    elif delta > 0:
        out.update(outcome="win below margin", reason=f"{delta:+.2f} points ({sig}) is real but under the {cfg.margin_points:g}-point margin, and not cheaper at {cfg.monthly_volume:,} queries/month")
    else:
        out.update(outcome="no gain", reason=f"{delta:+.2f} points ({sig})" + ("" if matches else ", significantly or clearly worse"))
    return out


def best_run(runs: list[RunRecord]) -> RunRecord | None:
    """The most accurate run (macro-F1 breaks ties), or None."""
    return max(runs, key=lambda r: (r.metrics["accuracy"], r.metrics["macro_f1"]), default=None)


COMPARISON_SET: list[tuple[str, Any, str]] = [
    ("base model, no prompt", lambda m: m["approach"] == "zero-shot", "--approach zero-shot"),
    ("base model, optimised prompt", lambda m: m["approach"] in ("prompt", "few-shot") and backend(m) != "api", "--approach prompt"),
    ("stronger API model, optimised prompt", lambda m: m["approach"] in ("prompt", "few-shot") and backend(m) == "api", "--approach prompt  # with an API model: needs an API key"),
    ("RAG", lambda m: category(m) == "rag", "--approach rag"),
    ("fine-tuned", lambda m: category(m) == "finetuned", "--approach finetuned"),
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
        "n": m["n"], "limit": meta["data"].get("limit"),
        "accuracy": m["accuracy"], "accuracy_ci95": m["accuracy_ci95"], "macro_f1": m["macro_f1"],
        "invalid_rate": m["invalid_rate"], "latency_p50_s": m["latency_p50_s"], "latency_p95_s": m["latency_p95_s"],
        "throughput_qps": m["throughput_qps"], "cost_per_1k_usd": m["cost_per_1k_usd"],
        "monthly_cost_usd": cost.monthly(volume), "cost_basis": cost.basis,
    }


def build_report(runs: list[RunRecord], task: str, split: str, cfg: VerdictConfig | None = None, skipped: list[str] | None = None) -> dict[str, Any]:
    """The decision report (plain data) from run records of ``task`` on ``split``."""
    cfg = cfg or VerdictConfig()
    prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
    runs = latest_per_label([r for r in runs if r.meta["task"] == task and r.meta["split"] == split])
    runs.sort(key=lambda r: (-r.metrics["accuracy"], -r.metrics["macro_f1"]))
    costs = {r.label: cost_line(r, cfg, prices) for r in runs}
    by_cat = {c: [r for r in runs if category(r.meta) == c] for c in CATEGORY_NAMES}

    comparison = []
    for row, matches, how in COMPARISON_SET:
        best = best_run([r for r in runs if matches(r.meta)])
        comparison.append({"row": row, "status": "run" if best else "not run", "label": best.label if best else None,
                           "accuracy": best.metrics["accuracy"] if best else None,
                           "how": None if best else f"dispute-classifier evaluate --task {task} {how}"})

    # The simpler approaches: climb the preference ladder only where the next option earns it.
    ladder: list[dict[str, Any]] = []
    choice: RunRecord | None = None
    for cat in cfg.simpler_order:
        cand = best_run(by_cat[cat])
        if cand is None:
            continue
        if choice is None:
            choice = cand
            continue
        step = duel(cand, choice, cfg, costs)
        ladder.append(step)
        if step["earns"]:
            choice = cand
    best_simpler = best_run([r for c in cfg.simpler_order for r in by_cat[c]])
    best_ft = best_run(by_cat["finetuned"])
    mcnemar = duel(best_ft, best_simpler, cfg, costs) if best_ft and best_simpler else None

    reasons: list[str] = []
    if best_ft is None and choice is None:
        recommended, headline = None, f"No runs yet for {task}/{split}: run `dispute-classifier experiment --task {task}` first."
    elif best_ft is None:
        recommended = choice
        headline = f"Use {choice.label} ({CATEGORY_NAMES[category(choice.meta)]}) — no fine-tuned run yet, so fine-tuning is not judged."
        reasons.append("Run the fine-tuned stage (`dispute-classifier experiment`) to decide whether fine-tuning earns its cost.")
    elif best_simpler is None:
        recommended = best_ft
        headline = f"Use {best_ft.label}: it is the only approach run; run the simpler ones before trusting this."
    elif mcnemar and mcnemar["earns"]:
        recommended = best_ft
        headline = f"Fine-tune: {best_ft.label} — {mcnemar['outcome']} over {best_simpler.label}."
        reasons.append(mcnemar["reason"])
    else:
        recommended = choice
        headline = f"Do not fine-tune: use {choice.label} ({CATEGORY_NAMES[category(choice.meta)]})."
        reasons.append(f"{best_ft.label} vs {best_simpler.label}: {mcnemar['outcome'] if mcnemar else 'not compared'} — {mcnemar['reason'] if mcnemar else ''}")
    for step in ladder:
        reasons.append(f"{step['challenger']} vs {step['incumbent']}: {step['outcome']} — {step['reason']}" + (" (chosen)" if step["earns"] else ""))

    # Break-even of the best fine-tuned model against the best prompted API approach.
    api_runs = [r for r in by_cat["prompted"] + by_cat["rag"] if r.meta.get("billing") == "api" and costs[r.label].per_query_usd is not None]
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
            finetuned=best_ft.label, api=best_api.label, volume=volume,
            terms={"T_usd": ft.fixed_monthly_usd * cfg.amortisation_months, "m_months": cfg.amortisation_months,
                   "H_usd_per_hour": ft.floor_monthly_usd / cfg.hours_per_month, "h_hours": cfg.hours_per_month,
                   "c_ft_usd": ft.per_query_usd, "c_api_usd": api.per_query_usd},
            note=(f"fine-tuning is cheaper above {volume:,.0f} queries/month" if volume is not None
                  else f"{best_api.label} costs no more per query than a busy machine for the fine-tuned model: fine-tuning never pays for itself on cost"),
        )
        reasons.append(break_even["note"] + f" (against {best_api.label})")

    return {
        "schema": SCHEMA, "task": task, "split": split, "created_at": now_iso(),
        "assumptions": {
            **to_dict(cfg), "prices": str(prices.path),
            "training_cost": None if best_ft is None else dict(zip(("usd", "source"), training_cost(best_ft, cfg, prices))),
            "hosting_hardware": None if best_ft is None else (cfg.hosting_hardware or best_ft.meta.get("hardware") or prices.default_hardware),
        },
        "leaderboard": [leaderboard_row(r, costs[r.label], cfg.monthly_volume) for r in runs],
        "comparison_set": comparison,
        "mcnemar": mcnemar,
        "ladder": ladder,
        "break_even": break_even,
        "verdict": {
            "recommendation": recommended.label if recommended else None,
            "category": category(recommended.meta) if recommended else None,
            "finetune": bool(best_ft is not None and recommended is best_ft),
            "headline": headline,
            "reasons": reasons,
        },
        "skipped": skipped or [],
    }


# ---------------------------------------------------------------------------- output


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def _usd(x: float | None) -> str:
    return "unknown" if x is None else f"${x:,.2f}" if x >= 0.01 else f"${x:.2e}"


def to_markdown(report: dict[str, Any]) -> str:
    """A readable decision report."""
    v, a = report["verdict"], report["assumptions"]
    lines = [f"# Decision: task `{report['task']}`, split `{report['split']}`", "", f"**{v['headline']}**", ""]
    lines += [f"- {r}" for r in v["reasons"]]
    lines += ["", "## Assumptions (change with `dispute-classifier report --set KEY=VALUE`)", ""]
    lines += [f"- margin: {a['margin_points']:g} accuracy points, significance: p < {a['alpha']:g} (paired exact McNemar)",
              f"- monthly volume: {a['monthly_volume']:,} queries",
              f"- fine-tuned hosting: {a['hosting_hardware'] or 'n/a'}, {a['hours_per_month']:g} h/month; training cost amortised over {a['amortisation_months']} months"
              + (f" (training ${a['training_cost']['usd']:.2f}, {a['training_cost']['source']})" if a["training_cost"] else ""),
              f"- price table: {a['prices']}"]
    lines += ["", "## Leaderboard", "", "| approach | kind | n | accuracy (95 % CI) | macro-F1 | invalid | p50 / p95 ms | $ per 1k | $ per month |",
              "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["leaderboard"]:
        lo, hi = r["accuracy_ci95"]
        lines.append(f"| {r['label']} | {r['category']} | {r['n']} | {_pct(r['accuracy'])} ({lo*100:.1f}–{hi*100:.1f}) | {_pct(r['macro_f1'])} | "
                     f"{_pct(r['invalid_rate'])} | {r['latency_p50_s']*1000:.1f} / {r['latency_p95_s']*1000:.1f} | {_usd(r['cost_per_1k_usd'])} | {_usd(r['monthly_cost_usd'])} |")
    lines += ["", "## The comparison set", "", "| row | status | run | accuracy |", "| --- | --- | --- | ---: |"]
    for c in report["comparison_set"]:
        lines.append(f"| {c['row']} | {c['status']} | {c['label'] or '`' + c['how'] + '`'} | {_pct(c['accuracy'])} |")
    lines += ["", "## Fine-tuned vs best other approach (paired exact McNemar)", ""]
    mc = report["mcnemar"]
    if mc is None:
        lines.append("Not run: needs a fine-tuned run and at least one other run.")
    elif "p_value" in mc:
        lo, hi = mc["delta_ci95_points"]
        lines.append(f"{mc['challenger']} vs {mc['incumbent']} on {mc['n_shared']} shared examples: {mc['delta_points']:+.2f} points "
                     f"(95 % CI {lo:+.2f} to {hi:+.2f}), right only {mc['challenger_only']} / {mc['incumbent_only']}, p = {mc['p_value']:.4g}: {mc['outcome']}.")
    else:
        lines.append(mc["reason"])
    be = report["break_even"]
    lines += ["", "## Break-even volume", "", f"`{be['formula']}`", "", be["note"] + "."]
    if be.get("terms"):
        t = be["terms"]
        lines += ["", f"T = {_usd(t['T_usd'])}, m = {t['m_months']}, H = {_usd(t['H_usd_per_hour'])}/h, h = {t['h_hours']:g}, "
                      f"c_ft = {_usd(t['c_ft_usd'])}, c_api = {_usd(t['c_api_usd'])}"]
    labels = list(dict.fromkeys(p["label"] for p in be["curve"]))
    if labels:
        shown = [v for v in sorted({p["volume"] for p in be["curve"]}) if v in (100, 1000, 10000, 100000, 1000000, 10000000, 100000000)]
        cost = {(p["label"], p["volume"]): p["monthly_usd"] for p in be["curve"]}
        lines += ["", "$ per month by monthly volume:", "", "| approach | " + " | ".join(f"{v:,}" for v in shown) + " |", "| --- |" + " ---: |" * len(shown)]
        lines += [f"| {label} | " + " | ".join(_usd(cost.get((label, v))) for v in shown) + " |" for label in labels]
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
