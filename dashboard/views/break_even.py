"""Break-even: cost per month against volume for each approach, with volume and price inputs."""

import dataclasses
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.sources import UNKNOWN, context
from dispute_classifier.core.prices import PriceTable
from evaluation.decision import api_model, best_run, break_even_volume, cost_line, training_cost, volume_grid
from evaluation.decision.selection import review_plan
from evaluation.runmeta import Category

ctx = context()
cfg = ctx.config
prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
chosen_ft = (ctx.report.get("finetune") or {}).get("finetuned_run_id")
ft = next((r for r in ctx.runs if r.run_id == chosen_ft), None) or best_run([r for r in ctx.runs if r.meta.category is Category.FINETUNED])
api = best_run([r for r in ctx.runs if r.meta.category in (Category.PROMPTED, Category.RAG) and r.meta.is_api])

st.title("Break-even")
st.caption(
    f"Task **{ctx.task}**, split **{ctx.split}**. Monthly cost = serving + training spread over the amortisation period"
    " + errors × cost per error + reviews × cost per review. API approaches pay their measured tokens at list price plus the"
    " calling service's machine; self-hosted ones pay the machines their peak needs at their measured per-request capacity"
    " (dedicated) or the machine-hours they use (shared)."
)

c1, c2, c3 = st.columns(3)
volume = c1.number_input("Monthly volume (queries)", min_value=0, value=int(cfg.monthly_volume), step=10_000, key="volume")
hardware_kinds = list(prices.hardware)
# the machine the cost model picked for the fine-tuned model (right-sized), unless one was declared
picked = cost_line(ft, cfg, prices).hardware if ft is not None else None
hosted_on = cfg.hosting_hardware or picked or prices.default_hardware
hardware = c2.selectbox(
    "Fine-tuned model hosted on",
    hardware_kinds,
    index=hardware_kinds.index(hosted_on) if hosted_on in hardware_kinds else 0,
    key="hardware",
)
hourly = c3.number_input(
    f"{hardware}: $ per hour", min_value=0.0, value=float(prices.hardware[hardware]), step=0.05, format="%.2f", key="hourly"
)
prices.hardware[hardware] = hourly
changes: dict = {"monthly_volume": int(volume)}
if hardware != picked:  # moving the fine-tuned model moves only it (its throughput there must be stated or measured)
    changes["hosting_hardware"] = hardware
c1, c2, c3 = st.columns(3)
changes["cost_per_error_usd"] = float(
    c1.number_input(
        "Cost of one wrong answer ($)", min_value=0.0, value=float(cfg.cost_per_error_usd), step=0.5, format="%.2f", key="error_cost"
    )
)
changes["cost_per_review_usd"] = float(
    c2.number_input(
        "Cost of one human review ($)", min_value=0.0, value=float(cfg.cost_per_review_usd), step=0.5, format="%.2f", key="review_cost"
    )
)
coverage = c3.number_input(
    "Answered automatically (share; 1 = no review)",
    min_value=0.05,
    max_value=1.0,
    value=float(cfg.review_coverage or 1.0),
    step=0.05,
    key="coverage",
)
changes["review_coverage"] = None if coverage >= 1.0 else float(coverage)
if ft is not None:
    c1, c2 = st.columns(2)
    recorded = float(training_cost(ft.meta, cfg, prices)[0] or 0.0)
    entered = c1.number_input("Training cost, one-off ($)", min_value=0.0, value=recorded, format="%.2f", key="training")
    if entered != recorded:  # keep the recorded source in the price basis unless the user changed it
        changes["training_cost_usd"] = entered
    changes["amortisation_months"] = int(
        c2.number_input("Amortised over (months)", min_value=1, value=int(cfg.amortisation_months), key="months")
    )
model_id = api_model(api.meta) if api is not None else None
if model_id and prices.api_price(model_id):
    c1, c2 = st.columns(2)
    price = prices.api_price(model_id)
    prices.api[model_id] = {
        **price,
        "input_per_mtok": c1.number_input(
            f"{model_id}: $ per million input tokens", min_value=0.0, value=float(price["input_per_mtok"]), format="%.3f", key="price_in"
        ),
        "output_per_mtok": c2.number_input(
            f"{model_id}: $ per million output tokens", min_value=0.0, value=float(price["output_per_mtok"]), format="%.3f", key="price_out"
        ),
    }
cfg = dataclasses.replace(cfg, **changes)
lines = {r.run_id: cost_line(r, cfg, prices, review_plan(r, ctx.validation_runs, cfg.review_coverage)) for r in ctx.runs}

volume_be = break_even_volume(lines[ft.run_id], lines[api.run_id]) if ft is not None and api is not None else None
if ft is None or api is None:
    st.info(
        "No break-even volume: it needs "
        + ("a fine-tuned run" if ft is None else "a prompted API run (set an API key and run the prompt stage with an API model)")
        + ". The curves below show the approaches that did run."
    )
elif volume_be is None:
    st.warning(f"Break-even unknown: {lines[ft.run_id].missing or 'a cost is not known'}.")
elif volume_be == float("inf"):
    st.warning(f"{api.label} costs no more per query than a busy machine serving {ft.label}: fine-tuning never pays for itself on cost.")
else:
    st.metric("Break-even volume", f"{volume_be:,.0f} queries/month", help=f"{ft.label} is cheaper than {api.label} above this volume")
if ft is not None and api is not None:
    f, a = lines[ft.run_id], lines[api.run_id]
    st.latex(r"V^* = \frac{T/m + H \cdot h}{c_{api}} \;\text{while one machine serves } V^*,\ \text{else}\ \frac{T/m}{c_{api} - c_{ft}}")
    st.caption(
        f"T/m = ${f.fixed_monthly_usd or 0:,.2f} a month, H·h = ${f.floor_monthly_usd:,.2f} a month, "
        f"c_ft = ${f.per_query_usd or 0:.3g}, c_api = ${a.per_query_usd or 0:.3g} per query"
    )

grid = sorted(set(volume_grid()) | {int(volume)} - {0})
curve = pd.DataFrame(
    [{"label": line.label, "volume": v, "monthly_usd": line.monthly(v)} for line in lines.values() for v in grid if line.monthly(v)]
)
if curve.empty:
    st.info("No run has a known cost per query.")
else:
    st.altair_chart(
        charts.monthly_cost_lines(curve, max(int(volume), 1), volume_be if volume_be not in (None, float("inf")) else None), width="stretch"
    )
table = pd.DataFrame(
    [
        {
            "approach": line.label,
            f"$ per month at {int(volume):,}": line.monthly(volume),
            "how it is priced": f"{UNKNOWN}: needs {line.missing}; {line.basis}" if line.missing else line.basis,
        }
        for line in lines.values()
    ]
)
table = table.sort_values(table.columns[1]).reset_index(drop=True)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    placeholder=UNKNOWN,
    column_config={table.columns[1]: st.column_config.NumberColumn(format="$%.2f", help=f"{UNKNOWN}: see how it is priced")},
)
