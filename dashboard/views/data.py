"""Data: the data-quality report and its reading sample."""

import json

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.sources import TASK_PLACEHOLDER, context
from dispute_classifier.core.task import task_command, task_ref

ctx = context(require_runs=False)
st.title("Data")

# Without runs there is no task in the sidebar: show the first data check there is.
found = sorted(ctx.reports_root.glob("data-check-*.json"))
task = ctx.task or (found[0].stem.removeprefix("data-check-") if found else "")
ref = ctx.task_ref or TASK_PLACEHOLDER  # what --task takes: a name, or the path of the task's YAML
path = ctx.reports_root / f"data-check-{task or TASK_PLACEHOLDER}.json"
check = task_command("data check", ref, f"--out {ctx.reports_root}")
try:
    report = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(report, dict) or not {"sizes", "class_counts", "sample"} <= set(report):
        raise ValueError("not a data-check report")
except FileNotFoundError:
    st.info(
        f"No data-check report at `{path}`. Run `{check}`"
        + ("" if ctx.task_ref else f" ({TASK_PLACEHOLDER}: a task from `dispute-classifier tasks`, or the path to your task YAML)")
        + " (the experiment writes it too), then reload this page."
    )
    st.stop()
except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
    st.warning(f"`{path}` is not a readable data-check report ({exc}). Run `{check}` again.")
    st.stop()
ref = ctx.task_ref or task_ref(report["task"], report.get("task_file"))

st.caption(f"Task **{report['task']}** · `{path}`")
cols = st.columns(len(report["sizes"]) + 2)
for col, (name, size) in zip(cols, report["sizes"].items()):
    col.metric(f"{name} rows", f"{size:,}")
cols[-2].metric("test texts also in train", len(report["train_test_overlap"]))
cols[-1].metric("conflicting labels", len(report["conflicting_labels"]))

counts = pd.DataFrame(
    [{"label": label, "split": split, "count": n} for split, per in report["class_counts"].items() for label, n in per.items()]
)
st.altair_chart(charts.class_counts(counts), width="stretch")

st.subheader("Train/test overlap")
if report["train_test_overlap"]:
    st.dataframe(
        pd.DataFrame(report["train_test_overlap"])[["test_id", "text", "test_label", "train_labels", "exact"]],
        hide_index=True,
        width="stretch",
    )
else:
    st.write("None.")
st.subheader("Text lengths")
st.dataframe(pd.DataFrame(report["lengths"]).T, width="stretch")
st.subheader(f"Reading sample ({len(report['sample'])} training rows, seed {report['sample_seed']})")
st.dataframe(pd.DataFrame(report["sample"]), hide_index=True, width="stretch")
if report["bad_rows"]:
    st.subheader(f"Bad rows ({len(report['bad_rows'])})")
    st.dataframe(pd.DataFrame(report["bad_rows"]), hide_index=True, width="stretch")

st.subheader("Suspected label errors")
issues = report.get("label_issues")
if not issues:
    st.caption(
        f"Not computed: run `{task_command('data check', ref, f'--label-issues --out {ctx.reports_root}')}` to flag training rows"
        " whose label cross-validated baselines find implausible."
    )
else:
    st.caption(
        f"{issues['n_issues']} of {issues['n_rows']:,} {issues['split']} rows flagged ({issues['method']}; "
        f"{', '.join(issues['approaches'])}, {issues['folds']} folds; out-of-fold accuracy "
        + ", ".join(f"{k} {v * 100:.1f}%" for k, v in issues["oof_accuracy"].items())
        + "). Read each row: the suggestion is a model's guess, not a correction."
    )
    flagged = pd.DataFrame(
        issues["rows"], columns=["rank", "id", "given", "suggested", "given_probability", "suggested_probability", "text"]
    )
    given = st.selectbox("given label", ["all", *sorted(set(flagged["given"]))], key="issue_label")
    shown = flagged if given == "all" else flagged[flagged["given"] == given]
    st.dataframe(shown, hide_index=True, width="stretch")
    st.download_button(
        "review sheet (CSV, with an empty verdict column)",
        shown.assign(verdict="").to_csv(index=False),
        file_name=f"label-issues-{task}.csv",
        mime="text/csv",
    )
