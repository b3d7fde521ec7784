"""Curves: the learning curve, accuracy under label noise, and how well the label-issue finder
finds the flipped rows (from `dispute-classifier curves`)."""

import json

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.sources import TASK_PLACEHOLDER, context
from dispute_classifier.core.task import task_command

ctx = context(require_runs=False)
st.title("Learning curve and label noise")

found = sorted(ctx.reports_root.glob("curves-*.json"))
if not found:
    st.info(
        f"No curves report under `{ctx.reports_root}`. Run `{task_command('curves', ctx.task_ref or TASK_PLACEHOLDER, f'--out {ctx.reports_root}')}`"
        " (seconds to minutes for tfidf and embedding), then reload this page."
    )
    st.stop()
names = [p.stem.removeprefix("curves-") for p in found]
choice = st.selectbox("report (task-split)", names, key="curves_report")
path = found[names.index(choice)]
try:
    result = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(result, dict) or not {"summary", "points", "split"} <= set(result):
        raise ValueError("not a curves report")
except (ValueError, UnicodeDecodeError) as exc:
    st.warning(f"`{path}` is not a readable curves report ({exc}). Run `dispute-classifier curves --out {ctx.reports_root}` again.")
    st.stop()

cfg = result.get("config", {})
st.caption(
    f"Task **{result['task']}**, scored on the **{result['split']}** split ({result['n_eval']} rows) · seeds {cfg.get('seeds')} · `{path}`"
)
if result["split"] == "test":
    st.warning("These points are scored on the test split: for reporting only, not for choosing.")
summary = pd.DataFrame(result["summary"])
summary["lo"] = summary["accuracy_ci95"].map(lambda ci: ci[0])
summary["hi"] = summary["accuracy_ci95"].map(lambda ci: ci[1])
st.altair_chart(charts.learning_curve(summary), width="stretch")
st.altair_chart(charts.noise_curve(summary), width="stretch")
table = summary.assign(
    **{"accuracy %": 100 * summary["accuracy_mean"], "95% interval": summary.apply(lambda r: f"{100 * r.lo:.2f}–{100 * r.hi:.2f}", axis=1)}
)
st.subheader("Accuracy over seeds")
st.dataframe(
    table[["approach", "size", "n_train", "noise", "accuracy %", "95% interval", "accuracy_n_seeds"]], hide_index=True, width="stretch"
)

st.subheader("Label-issue finder on the flipped rows")
if result.get("finder_summary"):
    finder = pd.DataFrame(result["finder_summary"])
    st.altair_chart(charts.finder_recall(finder), width="stretch")
    st.caption(f"Approaches: {', '.join(result.get('finder_approaches', []))}. At k = number of flipped rows, precision equals recall.")
    st.dataframe(
        finder.assign(**{"recall at k %": 100 * finder["recall_at_k"]})[
            ["size", "noise", "n_flipped", "recall at k %", "n_flagged", "flagged_recall"]
        ],
        hide_index=True,
        width="stretch",
    )
else:
    st.write("Not measured (no noise level above 0, or --skip-finder).")
