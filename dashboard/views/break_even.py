"""Break-even: cost per month against volume for each approach, with volume and price inputs."""

import dataclasses
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.data import UNKNOWN, context
from dispute_classifier.core.costs import PriceTable
from evaluation.verdict import api_model, best_run, break_even_volume, category, cost_line, is_api, training_cost, volume_grid

ctx = context()
cfg = ctx.config
prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
ft = next((r for r in ctx.runs if r.label == (ctx.report.get("finetune") or {}).get("finetuned")), None) or best_run([r for r in ctx.runs if category(r.meta) == "finetuned"])
api = best_run([r for r in ctx.runs if category(r.meta) in ("prompted", "rag") and is_api(r.meta)])

st.title("Break-even")
st.caption(f"Task **{ctx.task}**, split **{ctx.split}**. Monthly cost = fixed + max(floor, volume × cost per query): "
           "API approaches pay their measured tokens at list price; self-hosted ones keep one machine on and pay its hourly "
           "price over their measured throughput once it is busy; fine-tuned ones add their training cost spread over the amortisation period.")

c1, c2, c3 = st.columns(3)
volume = c1.number_input("Monthly volume (queries)", min_value=0, value=int(cfg.monthly_volume), step=10_000, key="volume")
hardware_kinds = list(prices.hardware)
hosted_on = cfg.hosting_hardware or (ft.meta.get("hardware") if ft else None) or prices.default_hardware
hardware = c2.selectbox("Fine-tuned model hosted on", hardware_kinds, index=hardware_kinds.index(hosted_on) if hosted_on in hardware_kinds else 0, key="hardware")
hourly = c3.number_input(f"{hardware}: $ per hour", min_value=0.0, value=float(prices.hardware[hardware]), step=0.05, format="%.2f", key="hourly")
prices.hardware[hardware] = hourly
changes = {"monthly_volume": int(volume), "hosting_hardware": hardware}
if ft is not None:
    c1, c2 = st.columns(2)
    recorded = float(training_cost(ft, cfg, prices)[0] or 0.0)
    entered = c1.number_input("Training cost, one-off ($)", min_value=0.0, value=recorded, format="%.2f", key="training")
    if entered != recorded:  # keep the recorded source in the price basis unless the user changed it
        changes["training_cost_usd"] = entered
    changes["amortisation_months"] = int(c2.number_input("Amortised over (months)", min_value=1, value=int(cfg.amortisation_months), key="months"))
model_id = api_model(api.meta) if api is not None else None
if model_id and prices.api_price(model_id):
    c1, c2 = st.columns(2)
    price = prices.api_price(model_id)
    prices.api[model_id] = {
        **price,
        "input_per_mtok": c1.number_input(f"{model_id}: $ per million input tokens", min_value=0.0, value=float(price["input_per_mtok"]), format="%.3f", key="price_in"),
        "output_per_mtok": c2.number_input(f"{model_id}: $ per million output tokens", min_value=0.0, value=float(price["output_per_mtok"]), format="%.3f", key="price_out"),
    }
cfg = dataclasses.replace(cfg, **changes)
lines = {r.label: cost_line(r, cfg, prices) for r in ctx.runs}

volume_be = break_even_volume(lines[ft.label], lines[api.label].per_query_usd) if ft is not None and api is not None else None
if ft is None or api is None:
    st.info("No break-even volume: it needs " + ("a fine-tuned run" if ft is None else "a prompted API run (set an API key and run the prompt stage with an API model)")
            + ". The curves below show the approaches that did run.")
elif volume_be is None:
    st.warning(f"Break-even unknown: {lines[ft.label].missing or 'a cost is not known'}.")
elif volume_be == float("inf"):
    st.warning(f"{api.label} costs no more per query than a busy machine serving {ft.label}: fine-tuning never pays for itself on cost.")
else:
    st.metric("Break-even volume", f"{volume_be:,.0f} queries/month", help=f"{ft.label} is cheaper than {api.label} above this volume")
if ft is not None and api is not None:
    f, a = lines[ft.label], lines[api.label]
    st.latex(r"V^* = \frac{T/m + H \cdot h}{c_{api}} \;\text{while one machine serves } V^*,\ \text{else}\ \frac{T/m}{c_{api} - c_{ft}}")
    st.caption(f"T/m = ${f.fixed_monthly_usd or 0:,.2f} a month, H·h = ${f.floor_monthly_usd:,.2f} a month, "
               f"c_ft = ${f.per_query_usd or 0:.3g}, c_api = ${a.per_query_usd or 0:.3g} per query")

grid = sorted(set(volume_grid()) | {int(volume)} - {0})
curve = pd.DataFrame([{"label": label, "volume": v, "monthly_usd": line.monthly(v)} for label, line in lines.items() for v in grid if line.monthly(v)])
if curve.empty:
    st.info("No run has a known cost per query.")
else:
    st.altair_chart(charts.monthly_cost_lines(curve, max(int(volume), 1), volume_be if volume_be not in (None, float("inf")) else None), width="stretch")
table = pd.DataFrame([{"approach": label, f"$ per month at {int(volume):,}": line.monthly(volume),
                       "how it is priced": f"{UNKNOWN}: needs {line.missing}; {line.basis}" if line.missing else line.basis}
                      for label, line in lines.items()])
table = table.sort_values(table.columns[1]).reset_index(drop=True)
st.dataframe(table, hide_index=True, width="stretch", placeholder=UNKNOWN,
             column_config={table.columns[1]: st.column_config.NumberColumn(format="$%.2f", help=f"{UNKNOWN}: see how it is priced")})
