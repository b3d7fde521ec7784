"""Errors: misclassified test examples with gold, predicted and confidence; side by side."""

import streamlit as st

from dashboard.sources import UNKNOWN, context, errors_frame, side_by_side

ctx = context()
runs = ctx.by_label()

st.title("Errors")
c1, c2 = st.columns([2, 1])
chosen = c1.multiselect("Approaches", list(runs), default=list(runs)[:3], key="err_runs")
classes = sorted({p["gold"] for r in ctx.runs for p in r.predictions})
cls = c2.selectbox("Class (gold or predicted)", ["(all)"] + classes, key="err_class")
frame = errors_frame([runs[x] for x in chosen])
if cls != "(all)":
    frame = frame[(frame["gold"] == cls) | (frame["predicted"] == cls)]
st.caption(f"{len(frame)} misclassified example(s) across {len(chosen)} approach(es)")
CONFIDENCE_HELP = f"{UNKNOWN} where the model gave no probability for its answer (an API without log-probabilities, or an invalid answer)"
st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    placeholder=UNKNOWN,
    column_config={"confidence": st.column_config.NumberColumn(format="%.2f", help=CONFIDENCE_HELP)},
)

st.subheader("Side by side")
if len(runs) < 2:
    st.info("Side by side needs two runs on this task and split.")
else:
    c1, c2 = st.columns(2)
    a = runs[c1.selectbox("A", list(runs), index=0, key="sbs_a")]
    b = runs[c2.selectbox("B", list(runs), index=1, key="sbs_b")]
    both = side_by_side(a, b)
    if cls != "(all)" and not both.empty:
        both = both[(both["gold"] == cls) | (both.iloc[:, 3] == cls) | (both.iloc[:, 5] == cls)]
    if both.empty:
        st.info("No example where either run is wrong (on the examples both saw).")
    else:
        counts = both["who is right"].value_counts().to_dict()
        st.caption(
            f"{len(both)} example(s) where at least one is wrong: only A right {counts.get('A', 0)}, "
            f"only B right {counts.get('B', 0)}, neither {counts.get('neither', 0)}"
        )
        st.dataframe(
            both,
            hide_index=True,
            width="stretch",
            placeholder=UNKNOWN,
            column_config={c: st.column_config.NumberColumn(format="%.2f", help=CONFIDENCE_HELP) for c in ("A conf.", "B conf.")},
        )
