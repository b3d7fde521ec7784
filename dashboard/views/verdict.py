"""Verdict: the recommendation, the margin and its interval, the assumptions."""

import pandas as pd
import streamlit as st

from dashboard.sources import NOT_APPLICABLE, UNKNOWN, context

ctx = context()
report = ctx.report
verdict, fq, be, a = report["verdict"], report["finetune"], report["break_even"], report["assumptions"]

st.title("Prompt, retrieve or fine-tune?")
st.caption(f"Task **{ctx.task}**, split **{ctx.split}** · decision report {ctx.report_source}")
{"yes": st.success, "no": st.info}.get(verdict["finetune"], st.warning)(verdict["headline"])
st.caption(report["rule"])

cols = st.columns(4)
# Answers are words of any length (a run label, "not yet decidable"): st.metric would cut them to
# its column's width, so they are written as text that wraps; the numbers stay metrics.
cols[0].markdown(f"Recommendation  \n**{verdict['recommendation'] or 'not yet decidable'}**")
cols[1].markdown(f"Fine-tune?  \n**{fq['answer']}**", help=fq["reason"])
if fq.get("delta_ci95_points"):
    lo, hi = fq["delta_ci95_points"]
    cols[2].metric(
        "Fine-tuned vs the choice",
        f"{fq['delta_points']:+.2f} points",
        help=f"{fq['finetuned']} vs {fq['against']} on {fq['n_shared']} shared examples; 95 % CI {lo:+.2f} to {hi:+.2f}",
    )
    cols[3].metric("McNemar p", f"{fq['p_value']:.3g}", help="paired exact test (reported; the rule uses Tango's score interval)")
cols = st.columns(2)
be_text = "never" if be.get("never") else "—" if be.get("volume") is None else f"{be['volume']:,.0f} queries/month"
cols[0].metric("Break-even volume", be_text, help=be["note"])
cols[1].metric("Stated monthly volume", f"{a['monthly_volume']:,}")

st.subheader("Why")
st.markdown("\n".join(f"- {reason}" for reason in verdict["reasons"]) or "No comparison to make yet.")

if report["standing"]:
    st.subheader("Each approach against the most accurate one")
    rows = {r["run_id"]: r for r in report["leaderboard"]}
    standing = pd.DataFrame(
        [
            {
                "approach": e["challenger"],
                "standing": e["status"],
                # the reference is compared with itself: every one of its examples is shared, Δ is 0
                "shared n": rows.get(e["challenger_run_id"], {}).get("n")
                if e["challenger_run_id"] == e.get("incumbent_run_id")
                else e.get("n_shared"),
                "Δ points": 0.0 if e["challenger_run_id"] == e.get("incumbent_run_id") else e.get("delta_points"),
                "$ per month": e["monthly_cost_usd"],
                "why": e["reason"],
                "cost": f"{UNKNOWN}: needs {rows[e['challenger_run_id']]['cost_missing']}"
                if rows.get(e["challenger_run_id"], {}).get("cost_missing")
                else "known",
            }
            for e in report["standing"]
        ]
    )
    if (standing["cost"] == "known").all():
        standing = standing.drop(columns="cost")  # the column speaks only when a cost is unknown
    st.dataframe(
        standing,
        hide_index=True,
        width="stretch",
        placeholder=UNKNOWN,
        column_config={
            "shared n": st.column_config.NumberColumn(format="%d"),
            "Δ points": st.column_config.NumberColumn(format="%+.2f"),
            "$ per month": st.column_config.NumberColumn(
                format="$%.2f", help=f"{UNKNOWN} when a price is missing: the cost column says which"
            ),
        },
    )
dedup = report.get("dedup")
if dedup:
    st.caption(f"De-duplicated test subset: {dedup['note']}.")
if report.get("stages"):
    st.subheader("Stages of the experiment")
    st.dataframe(pd.DataFrame(report["stages"])[["stage", "status", "detail"]], hide_index=True, width="stretch")

st.subheader("Assumptions")
tc = a.get("training_cost")
rows = [
    (
        "margin",
        f"{a['margin_points']:g} accuracy points; at least {a['min_shared_examples']} shared examples to be adequate; one-sided level {a['alpha']:g}"
        f" (Tango's paired score tests), power {a.get('power', 0.8):.0%} for the sample sizes",
    ),
    ("monthly volume", f"{a['monthly_volume']:,} queries ({a['workload']} workload)"),
    ("latency budget", "none" if not a.get("max_p95_latency_ms") else f"p95 ≤ {a['max_p95_latency_ms']:g} ms"),
    ("self-hosted on", f"{a['hosting_hardware'] or 'as measured'}, {a['hours_per_month']:g} h a month"),
    (
        "training cost",
        "n/a"
        if not tc
        else f"{'unknown' if tc['usd'] is None else '$' + format(tc['usd'], '.2f')} ({tc['source']}), over {a['amortisation_months']} months",
    ),
    ("ties broken by", " → ".join(a["preference_order"])),
    ("price table", a["prices"]),
]
st.table(pd.DataFrame(rows, columns=["assumption", "value"]).set_index("assumption"))
st.caption(
    "Change them with `dispute-classifier report --set KEY=VALUE` (see `report --help`), or try volumes and prices on the Break-even page."
)

st.subheader("The comparison set")
comp = pd.DataFrame(report["comparison_set"])
comp["accuracy %"] = 100 * comp["accuracy"].astype(float)
# a row nobody ran has no run and no accuracy, and a row that ran needs no command
st.dataframe(
    comp[["row", "status", "label", "accuracy %", "how"]],
    hide_index=True,
    width="stretch",
    placeholder=NOT_APPLICABLE,
    column_config={"accuracy %": st.column_config.NumberColumn(format="%.2f")},
)
