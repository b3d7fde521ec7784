"""Verdict: the recommendation, the margin and its interval, the assumptions."""

import pandas as pd
import streamlit as st

from dashboard.data import context

ctx = context()
report = ctx.report
verdict, mc, be, a = report["verdict"], report["mcnemar"], report["break_even"], report["assumptions"]

st.title("Prompt, retrieve or fine-tune?")
st.caption(f"Task **{ctx.task}**, split **{ctx.split}** · decision report {ctx.report_source}")
(st.success if verdict["finetune"] else st.info)(verdict["headline"])

cols = st.columns(4)
cols[0].metric("Recommendation", verdict["recommendation"] or "—")
if mc and "delta_points" in mc:
    lo, hi = mc["delta_ci95_points"]
    cols[1].metric("Fine-tuned vs best other", f"{mc['delta_points']:+.2f} points", help=f"{mc['challenger']} vs {mc['incumbent']} on {mc['n_shared']} shared examples")
    cols[2].metric("95 % interval of the margin", f"{lo:+.2f} to {hi:+.2f}")
    cols[3].metric("McNemar p", f"{mc['p_value']:.3g}", help=f"paired exact test; {mc['outcome']}")
else:
    cols[1].metric("Fine-tuned vs best other", "not run" if mc is None else "not comparable")
cols = st.columns(2)
cols[0].metric("Break-even volume", "—" if be.get("volume") is None else f"{be['volume']:,.0f} queries/month", help=be["note"])
cols[1].metric("Stated monthly volume", f"{a['monthly_volume']:,}")

st.subheader("Why")
st.markdown("\n".join(f"- {reason}" for reason in verdict["reasons"]) or "No comparison to make yet.")

st.subheader("Assumptions")
rows = [
    ("margin", f"{a['margin_points']:g} accuracy points, with p < {a['alpha']:g}"),
    ("monthly volume", f"{a['monthly_volume']:,} queries"),
    ("fine-tuned hosting", f"{a['hosting_hardware'] or 'n/a'}, {a['hours_per_month']:g} h a month"),
    ("training cost", "n/a" if not a.get("training_cost") else f"${a['training_cost']['usd']:.2f} ({a['training_cost']['source']}), over {a['amortisation_months']} months"),
    ("preference", " → ".join(a["simpler_order"]) + " → fine-tuned"),
    ("price table", a["prices"]),
]
st.table(pd.DataFrame(rows, columns=["assumption", "value"]).set_index("assumption"))
st.caption("Change them with `dispute-classifier report --set KEY=VALUE` (see `report --help`), or try volumes and prices on the Break-even page.")

st.subheader("The comparison set")
comp = pd.DataFrame(report["comparison_set"])
comp["accuracy %"] = comp["accuracy"].map(lambda x: None if x is None or pd.isna(x) else round(100 * x, 2))
st.dataframe(comp[["row", "status", "label", "accuracy %", "how"]], hide_index=True, width="stretch")
