"""Where the answer depends on volume: the break-even of fine-tuning against the best API run, and
the volumes at which the cheapest adequate option changes."""

from __future__ import annotations

import math
from typing import Any

from evaluation.decision.assumptions import VerdictConfig
from evaluation.decision.costs import CostLine, break_even_volume, volume_grid
from evaluation.decision.evidence import best_run
from evaluation.runmeta import Category
from evaluation.runs import RunRecord


def break_even(best_ft: RunRecord | None, runs: list[RunRecord], costs: dict[str, CostLine], cfg: VerdictConfig) -> dict[str, Any]:
    """Break-even monthly volume of the chosen fine-tuned model against the best prompted API run."""
    api_runs = [
        r
        for r in runs
        if r.meta.category in (Category.PROMPTED, Category.RAG) and r.meta.is_api and costs[r.run_id].per_query_usd is not None
    ]
    best_api = best_run(api_runs)
    out: dict[str, Any] = {
        "formula": "monthly $ = serving + training / m + V × (error rate × cost per error + review rate × cost per review);"
        " serving = ceil(V / (h × 3600) × peak / capacity) machines × H × h (dedicated) or V / capacity / 3600 × H (shared),"
        " API: V × tokens × price + the calling service's machine; break-even V* where the fine-tuned curve drops below the API's",
        "curve": [
            {"volume": v, "label": line.label, "run_id": rid, "monthly_usd": line.monthly(v)}
            for rid, line in costs.items()
            for v in volume_grid()
            if line.monthly(v) is not None
        ],
    }
    if best_ft is None or best_api is None:
        missing = (
            "a fine-tuned run"
            if best_ft is None
            else "a prompted API run (configure an API key and run the prompt stage with an API model)"
        )
        return {**out, "volume": None, "note": f"not computed: needs {missing}"}
    ft, api = costs[best_ft.run_id], costs[best_api.run_id]
    volume = break_even_volume(ft, api)
    out.update(
        finetuned=best_ft.label,
        api=best_api.label,
        volume=None if volume in (None, math.inf) else volume,
        never=volume == math.inf,
        terms={
            "T_usd": None if ft.fixed_monthly_usd is None else ft.fixed_monthly_usd * cfg.amortisation_months,
            "m_months": cfg.amortisation_months,
            "H_usd_per_hour": ft.floor_monthly_usd / cfg.hours_per_month,
            "h_hours": cfg.hours_per_month,
            "c_ft_usd": ft.per_query_usd,
            "c_api_usd": api.per_query_usd,
        },
        note=(
            f"unknown: needs {ft.missing or api.missing}"
            if volume is None
            else f"{best_api.label} stays cheaper than the fine-tuned model at every volume: fine-tuning never pays for itself on cost"
            if volume == math.inf
            else f"fine-tuning is cheaper above {volume:,.0f} queries/month"
        ),
    )
    return out


def answer_changes(lines: list[CostLine], order: dict[str, str], cfg: VerdictConfig) -> list[dict[str, Any]]:
    """Monthly volumes at which the cheapest of ``lines`` (the adequate options with a known cost)
    changes: where the stated volume's answer stops holding."""
    out, last = [], None
    for v in volume_grid(1e2, 1e9, 57):
        priced = [(line.monthly(v), order.get(line.run_id, "z"), line.label) for line in lines if line.monthly(v) is not None]
        if not priced:
            continue
        cheapest = min(c for c, _, _ in priced)
        label = min((o, lab) for c, o, lab in priced if cfg.tie(c, cheapest) or c == cheapest)[1]
        if label != last:
            out.append({"from_volume": v, "cheapest": label})
            last = label
    return out
