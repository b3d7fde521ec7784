"""Per class: F1 bars and the confusion matrix of a chosen run, and the difference between two."""

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.sources import context

ctx = context()
runs = ctx.by_label()
labels = list(runs)

st.title("Per class")
c1, c2 = st.columns(2)
a = runs[c1.selectbox("Run A", labels, key="run_a")]
other = c2.selectbox("Compare with run B", ["(none)"] + [x for x in labels if x != a.label], key="run_b")

per_class = pd.DataFrame([{"label": k, **v} for k, v in a.metrics["per_class"].items()])
st.altair_chart(charts.f1_bars(per_class, f"F1 per class: {a.label} (macro-F1 {a.metrics['macro_f1'] * 100:.2f} %)"), width="stretch")

conf = a.metrics["confusion"]
cells = pd.DataFrame(
    [{"gold": g, "predicted": p, "count": conf["matrix"][i][j]} for i, g in enumerate(conf["labels"]) for j, p in enumerate(conf["labels"])]
)
st.altair_chart(charts.confusion_heatmap(cells, f"Confusion matrix: {a.label} (rows gold, columns predicted)"))
if a.metrics.get("invalid_rate"):
    st.caption(
        f"{a.metrics['invalid_rate'] * 100:.1f} % of answers were invalid (outside the label set); they count as errors but have no column."
    )

if other != "(none)":
    b = runs[other]
    delta = pd.DataFrame(
        [{"label": k, "delta": b.metrics["per_class"].get(k, {}).get("f1", 0.0) - v["f1"]} for k, v in a.metrics["per_class"].items()]
    )
    st.altair_chart(charts.f1_difference(delta, f"F1 difference per class: {b.label} − {a.label}"), width="stretch")
    if a.meta.data.n_examples != b.meta.data.n_examples:
        st.caption(
            f"The runs saw different examples ({a.metrics['n']} vs {b.metrics['n']}); per-class F1 differences include sampling noise."
        )
