"""Leaderboard: sortable table, and accuracy against cost with the Pareto front."""

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.data import context, pareto_front
from dashboard.tables import UNKNOWN, styled

ctx = context()
rows = ctx.live["leaderboard"]
volume = ctx.config.monthly_volume

st.title("Leaderboard")
st.caption(f"Task **{ctx.task}**, split **{ctx.split}**: the latest run of each approach. Click a column header to sort.")
table = pd.DataFrame([{
    "approach": r["label"], "kind": r["category"], "n": r["n"],
    "accuracy %": 100 * r["accuracy"], "CI low": 100 * r["accuracy_ci95"][0], "CI high": 100 * r["accuracy_ci95"][1],
    "macro-F1 %": 100 * r["macro_f1"], "invalid %": 100 * r["invalid_rate"],
    "p50 ms": 1000 * r["latency_p50_s"], "p95 ms": 1000 * r["latency_p95_s"], "q/s": r["throughput_qps"],
    "$ per 1k": r["cost_per_1k_usd"], f"$ per month at {volume:,}": r["monthly_cost_usd"],
    "how it is priced": f"{UNKNOWN}: needs {r['cost_missing']}" if r.get("cost_missing") else r.get("cost_basis"),
} for r in rows])
missing = [c for c in ctx.live["comparison_set"] if c["status"] == "not run"]
table = pd.concat([table, pd.DataFrame([{"approach": c["row"], "kind": "not run", "how it is priced": f"not run: `{c['how']}`"}
                                        for c in missing])], ignore_index=True)
not_run = table.index[table["kind"] == "not run"]
formats = {**{c: "{:.2f}" for c in ("accuracy %", "CI low", "CI high", "macro-F1 %", "invalid %", "p50 ms", "p95 ms")},
           "n": "{:,.0f}", "q/s": "{:.1f}", "$ per 1k": "${:.5f}", f"$ per month at {volume:,}": "${:,.2f}"}
cost_help = f"{UNKNOWN} when a price is missing (the last column says which); — for a row nobody ran"
st.dataframe(styled(table, formats, not_applicable=not_run), hide_index=True, width="stretch", column_config={
    "$ per 1k": st.column_config.Column(help=cost_help), f"$ per month at {volume:,}": st.column_config.Column(help=cost_help),
})

points = pd.DataFrame([{
    "label": r["label"], "kind": r["category"], "cost_per_1k_usd": r["cost_per_1k_usd"], "accuracy": r["accuracy"],
    "acc_lo": r["accuracy_ci95"][0], "acc_hi": r["accuracy_ci95"][1],
} for r in rows if r["cost_per_1k_usd"]])
if points.empty:
    st.info("No run has a known cost per query, so there is nothing to plot against cost.")
else:
    front = pareto_front(list(zip(points["label"], points["cost_per_1k_usd"], points["accuracy"])))
    st.altair_chart(charts.cost_accuracy_scatter(points, front), width="stretch")
    st.caption("Pareto front (no other approach is both cheaper and more accurate): " + ", ".join(front))
    unknown = [r["label"] for r in rows if not r["cost_per_1k_usd"]]
    if unknown:
        st.caption("Not plotted (cost unknown): " + ", ".join(unknown))
