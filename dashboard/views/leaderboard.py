"""Leaderboard: sortable table, and accuracy against cost with the Pareto front."""

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.sources import UNKNOWN, context, pareto_front

ctx = context()
rows = ctx.live["leaderboard"]
volume = ctx.config.monthly_volume

st.title("Leaderboard")
st.caption(
    f"Task **{ctx.task}**, split **{ctx.split}**: the latest run of each setting. Intervals are Wilson score intervals; *de-duplicated* leaves out the test"
    " items with a same-label near-duplicate among the training texts. Click a column header to sort."
)
table = pd.DataFrame(
    [
        {
            "approach": r["label"],
            "kind": r["category"],
            "n": r["n"],
            "accuracy %": 100 * r["accuracy"],
            "CI low": 100 * r["accuracy_ci95"][0],
            "CI high": 100 * r["accuracy_ci95"][1],
            "de-duplicated %": None if not (r.get("dedup") or {}).get("accuracy") else 100 * r["dedup"]["accuracy"],
            "macro-F1 %": 100 * r["macro_f1"],
            "invalid %": 100 * r["invalid_rate"],
            "p50 ms": 1000 * r["latency_p50_s"],
            "p95 ms": 1000 * r["latency_p95_s"],
            "q/s": r["throughput_qps"],
            "$ per 1k": r["cost_per_1k_usd"],
            f"$ per month at {volume:,}": r["monthly_cost_usd"],
            "how it is priced": f"{UNKNOWN}: needs {r['cost_missing']}" if r.get("cost_missing") else r.get("cost_basis"),
        }
        for r in rows
    ]
)
fmt = st.column_config.NumberColumn
cost_help = f"{UNKNOWN} when a price is missing: the last column says which"
# Every row here ran, so a missing cell is an unknown value; the rows nobody ran are listed below.
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    placeholder=UNKNOWN,
    column_config={
        **{
            c: fmt(format="%.2f")
            for c in ("accuracy %", "CI low", "CI high", "de-duplicated %", "macro-F1 %", "invalid %", "p50 ms", "p95 ms")
        },
        "q/s": fmt(format="%.1f"),
        "$ per 1k": fmt(format="$%.5f", help=cost_help),
        f"$ per month at {volume:,}": fmt(format="$%.2f", help=cost_help),
    },
)
missing = [c for c in ctx.live["comparison_set"] if c["status"] == "not run"]
if missing:
    st.caption("Not run yet (each is one command):")
    st.dataframe(
        pd.DataFrame([{"approach": c["row"], "kind": "not run", "run it with": c["how"]} for c in missing]),
        hide_index=True,
        width="stretch",
    )

points = pd.DataFrame(
    [
        {
            "label": r["label"],
            "kind": r["category"],
            "cost_per_1k_usd": r["cost_per_1k_usd"],
            "accuracy": r["accuracy"],
            "acc_lo": r["accuracy_ci95"][0],
            "acc_hi": r["accuracy_ci95"][1],
        }
        for r in rows
        if r["cost_per_1k_usd"]
    ]
)
if points.empty:
    st.info("No run has a known cost per query, so there is nothing to plot against cost.")
else:
    front = pareto_front(list(zip(points["label"], points["cost_per_1k_usd"], points["accuracy"])))
    st.altair_chart(charts.cost_accuracy_scatter(points, front), width="stretch")
    st.caption("Pareto front (no other approach is both cheaper and more accurate): " + ", ".join(front))
    unknown = [r["label"] for r in rows if not r["cost_per_1k_usd"]]
    if unknown:
        st.caption("Not plotted (cost unknown): " + ", ".join(unknown))
