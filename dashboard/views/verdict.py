"""Verdict: the recommendation, the margin and its interval, the assumptions."""

import pandas as pd
import streamlit as st

from dashboard.data import context

ctx = context()
report = ctx.report
verdict, fq, be, a = report["verdict"], report["finetune"], report["break_even"], report["assumptions"]

st.title("Prompt, retrieve or fine-tune?")
st.caption(f"Task **{ctx.task}**, split **{ctx.split}** · decision report {ctx.report_source}")
{"yes": st.success, "no": st.info}.get(verdict["finetune"], st.warning)(verdict["headline"])
st.caption(report["rule"])

cols = st.columns(4)
cols[0].metric("Recommendation", verdict["recommendation"] or "not yet decidable")
cols[1].metric("Fine-tune?", fq["answer"], help=fq["reason"])
if fq.get("delta_ci95_points"):
    lo, hi = fq["delta_ci95_points"]
    cols[2].metric("Fine-tuned vs the choice", f"{fq['delta_points']:+.2f} points", help=f"{fq['finetuned']} vs {fq['against']} on {fq['n_shared']} shared examples; 95 % CI {lo:+.2f} to {hi:+.2f}")
    cols[3].metric("McNemar p", f"{fq['p_value']:.3g}", help="paired exact test (reported; the rule uses Tango's score interval)")
cols = st.columns(2)
be_text = "never" if be.get("never") else "—" if be.get("volume") is None else f"{be['volume']:,.0f} queries/month"
cols[0].metric("Break-even volume", be_text, help=be["note"])
cols[1].metric("Stated monthly volume", f"{a['monthly_volume']:,}")

st.subheader("Why")
st.markdown("\n".join(f"- {reason}" for reason in verdict["reasons"]) or "No comparison to make yet.")

if report["standing"]:
    st.subheader("Each approach against the most accurate one")
    st.dataframe(pd.DataFrame([{
        "approach": e["challenger"], "standing": e["status"], "shared n": e.get("n_shared"),
        "Δ points": None if e.get("delta_points") is None else round(e["delta_points"], 2),
        "$ per month": e["monthly_cost_usd"], "why": e["reason"]} for e in report["standing"]]), hide_index=True, width="stretch")
dedup = report.get("dedup")
if dedup:
    st.caption(f"De-duplicated test subset: {dedup['note']}.")
if report.get("stages"):
    st.subheader("Stages of the experiment")
    st.dataframe(pd.DataFrame(report["stages"])[["stage", "status", "detail"]], hide_index=True, width="stretch")

st.subheader("Assumptions")
tc = a.get("training_cost")
rows = [
    ("margin", f"{a['margin_points']:g} accuracy points; at least {a['min_shared_examples']} shared examples to be adequate; one-sided level {a['alpha']:g}"
               f" (Tango's paired score tests), power {a.get('power', 0.8):.0%} for the sample sizes"),
    ("monthly volume", f"{a['monthly_volume']:,} queries ({a['workload']} workload)"),
    ("latency budget", "none" if not a.get("max_p95_latency_ms") else f"p95 ≤ {a['max_p95_latency_ms']:g} ms"),
    ("self-hosted on", f"{a['hosting_hardware'] or 'as measured'}, {a['hours_per_month']:g} h a month"),
    ("training cost", "n/a" if not tc else f"{'unknown' if tc['usd'] is None else '$' + format(tc['usd'], '.2f')} ({tc['source']}), over {a['amortisation_months']} months"),
    ("ties broken by", " → ".join(a["preference_order"])),
    ("price table", a["prices"]),
]
st.table(pd.DataFrame(rows, columns=["assumption", "value"]).set_index("assumption"))
st.caption("Change them with `dispute-classifier report --set KEY=VALUE` (see `report --help`), or try volumes and prices on the Break-even page.")

st.subheader("The comparison set")
comp = pd.DataFrame(report["comparison_set"])
comp["accuracy %"] = comp["accuracy"].map(lambda x: None if x is None or pd.isna(x) else round(100 * x, 2))
st.dataframe(comp[["row", "status", "label", "accuracy %", "how"]], hide_index=True, width="stretch")
