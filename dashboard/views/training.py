"""Training: loss and learning-rate curves of fine-tuning runs, with their model cards."""

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.sources import context, sweep_trials, training_log
from dispute_classifier.core.task import task_command
from evaluation.runmeta import Category

ctx = context()
st.title("Training")
trials = pd.DataFrame(sweep_trials(ctx.all_runs, ctx.task))
for study, rows in trials.groupby("study") if not trials.empty else []:
    searched, final = rows[~rows["final"]], rows[rows["final"]]
    st.subheader(f"Hyperparameter search `{study}`")
    best = searched.loc[searched["accuracy"].idxmax()] if not searched.empty else None
    st.markdown(
        f"{len(searched)} finished trial(s), each trained on train and scored on validation"
        + (
            f"; best: trial {int(best['trial'])} at {best['accuracy'] * 100:.2f} % on {int(best['n'])} validation examples"
            if best is not None
            else ""
        )
        + ". Pruned trials leave no run record (`dispute-classifier sweep` lists them)."
    )
    if not searched.empty:
        st.altair_chart(charts.sweep_trials(searched))
        st.dataframe(searched.drop(columns=["study", "final"]), hide_index=True)
    for _, f in final.iterrows():
        st.markdown(
            f"**Final model** (trial {f['trial']}'s settings refit on train+validation): {f['accuracy'] * 100:.2f} % on "
            f"{int(f['n'])} {f['split']} examples — the one test evaluation."
        )
finetuned = [r for r in ctx.runs if r.meta.category is Category.FINETUNED]
if not finetuned and not trials.empty:
    st.stop()
if not finetuned:
    st.info(
        f"No fine-tuned run on {ctx.task}/{ctx.split} yet. Run the fine-tuned stage: "
        f"`{task_command('experiment', ctx.task_ref)}` (or `{task_command('evaluate', ctx.task_ref, '--approach finetuned')}`)."
    )
    st.stop()

for run in finetuned:
    t = run.meta.training
    st.subheader(run.label)
    cols = st.columns(4)
    cols[0].metric("accuracy", f"{run.metrics['accuracy'] * 100:.2f} %")
    cols[1].metric("training time", "—" if t is None or t.wall_s is None else f"{t.wall_s / 60:.1f} min")
    cols[2].metric("training cost", "—" if t is None or t.cost_usd is None else f"${t.cost_usd:.2f}")
    cols[3].metric("hardware", (t.hardware if t else None) or run.meta.hardware or "—")
    rows, card_md, card_json, problem = training_log(run)
    if problem:
        st.warning(f"{run.label}: {problem}")
    long = pd.DataFrame(
        [
            {"run": run.label, "step": r["step"], "metric": k, "value": r[k]}
            for r in rows
            for k in ("loss", "learning_rate")
            if r.get(k) is not None and "step" in r
        ]
    )
    if not long.empty:
        st.altair_chart(charts.training_curves(long))
    if card_md:
        with st.expander("Model card", expanded=True):
            st.markdown(card_md)
    if card_json:
        with st.expander("Model card (JSON)"):
            st.json(card_json)
