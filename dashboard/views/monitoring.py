"""Monitoring: the service's prediction log per time window — volume, latency, errors, label
drift and confidence shift (p-values, Holm-corrected over the windows, flagged at alpha),
abstain rate, estimated accuracy without labels, and the shadow pair (label-free: disagreement
and estimates). Reads the log only (`evaluation.monitoring`)."""

import pandas as pd
import streamlit as st

from dashboard import charts
from dispute_classifier.core.errors import UserError
from evaluation.monitoring import MonitorSettings, summarize
from evaluation.predlog import db_url, read_log

st.title("Monitoring")
url = db_url()
st.sidebar.caption(f"prediction log: `{url}`")
window = st.sidebar.number_input("window (minutes)", min_value=0.5, value=15.0, step=5.0, key="window")
alpha = st.sidebar.number_input(
    "false-alarm rate (alpha) over all windows", min_value=0.001, max_value=0.5, value=0.05, step=0.01, key="alpha"
)
min_n = st.sidebar.number_input("fewest predictions to judge a window", min_value=1, value=30, step=10, key="min_n")
try:
    summary = summarize(read_log(url), MonitorSettings(window_minutes=window, alpha=alpha, min_window_predictions=int(min_n)))
except UserError as exc:
    st.info(
        f"{exc}. Serve a model (`dispute-classifier serve --model tfidf --log-db FILE`), replay traffic through it "
        "(`dispute-classifier replay --split test`), then open this page with `dispute-classifier dashboard --log-db FILE`."
    )
    st.stop()

st.caption(f"Champion **{summary['model']}** ({summary['version']}) · {summary['from']} to {summary['to']} · windows of {window:g} min")
overall = summary["overall"]


def pct(value):
    return "–" if value is None else f"{value * 100:.1f}%"


cols = st.columns(6)
cols[0].metric("Predictions", f"{overall['predictions']:,}")
cols[1].metric(
    "Estimated accuracy",
    pct(overall["estimated_accuracy"]),
    help="mean isotonic-calibrated confidence (calibrated on held-out predictions)",
)
cols[2].metric(
    "Test accuracy",
    pct(summary["test_accuracy"]),
    help=f"estimated from confidence on the test split: {pct(summary['test_estimated_accuracy'])} (the estimate's own error)",
)
cols[3].metric("Abstain rate", pct(overall["abstain_rate"]))
cols[4].metric("Latency p95", "–" if overall["latency_p95_ms"] is None else f"{overall['latency_p95_ms']:.1f} ms")
cols[5].metric("Error rate", pct(overall["error_rate"]))

windows = pd.DataFrame(summary["windows"])
drifted = windows[windows["label_drift"] | windows["confidence_shift"]]
if len(drifted):
    st.warning(
        f"Drift flagged in {len(drifted)} of {len(windows)} window(s): "
        + ", ".join(
            f"{w.start} ("
            + ", ".join(
                x
                for x in (
                    f"labels p={w.label_p_holm:.1e}" if w.label_drift else "",
                    f"confidence p={w.confidence_p_holm:.1e}" if w.confidence_shift else "",
                )
                if x
            )
            + f"; label PSI {w.label_psi:.2f})"
            for w in drifted.itertuples()
        )
    )
else:
    st.success(
        f"No drift flagged (Holm-corrected p-values at alpha {alpha:g} over the windows; windows with fewer than {int(min_n)}"
        " predictions are not judged)."
    )

st.subheader("Per window")
table = windows[
    [
        "start",
        "predictions",
        "requests",
        "error_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "label_psi",
        "label_p_holm",
        "label_drift",
        "confidence_psi",
        "confidence_p_holm",
        "confidence_shift",
        "abstain_rate",
        "estimated_accuracy",
    ]
]
st.dataframe(table, hide_index=True, width="stretch")
long = windows.melt(id_vars=["start"], value_vars=["estimated_accuracy", "abstain_rate"], var_name="measure", value_name="value")
st.altair_chart(charts.window_lines(long.dropna()), width="stretch")

st.subheader("Predicted labels against training")
train = summary["train_distribution"] or {}
total = sum(overall["label_counts"].values())
dist = pd.DataFrame(
    [{"label": k, "source": "training", "share": v} for k, v in train.items()]
    + [{"label": k, "source": "served", "share": n / total} for k, n in overall["label_counts"].items()]
)
st.altair_chart(charts.label_shares(dist), width="stretch")

shadow = summary["shadow"]
if shadow:
    st.subheader(f"Shadow: {shadow['challenger']} against {shadow['champion']}")
    lo, hi = shadow["disagreement_ci95"]
    cols = st.columns(3)
    cols[0].metric(
        "Disagreement", pct(shadow["disagreement_rate"]), help=f"95% CI {lo * 100:.1f}–{hi * 100:.1f}% over {shadow['paired']} inputs"
    )
    cols[1].metric(
        "Champion estimated accuracy",
        pct(shadow["champion_estimated_accuracy"]),
        help="calibrated confidence, an estimate, not a measurement",
    )
    cols[2].metric(
        "Challenger estimated accuracy",
        pct(shadow["challenger_estimated_accuracy"]),
        help="calibrated confidence, an estimate, not a measurement",
    )
    st.markdown(f"**Verdict:** {shadow['verdict']}")
