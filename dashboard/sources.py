"""What the dashboard reads: run records, decision reports and data-check reports, nothing else.

Folders come from ``$DISPUTE_CLASSIFIER_RUNS`` and ``$DISPUTE_CLASSIFIER_REPORTS`` (the
``dashboard`` command sets both), else ``runs/`` and ``reports/``. Every page starts with
`context()`, which stops the page with a message that says what to run when there is
nothing to show, instead of a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import task_command, task_ref
from evaluation.compare import latest_per_setting
from evaluation.decision import VerdictConfig, build_report, config_from_assumptions, read_report, report_paths
from evaluation.runs import RECORD, RunRecord, runs_dir, scan_runs

REPORTS_ENV = "DISPUTE_CLASSIFIER_REPORTS"


def folders() -> tuple[Path, Path]:
    """(runs folder, reports folder) the dashboard reads."""

    return runs_dir(), Path(os.environ.get(REPORTS_ENV, "reports"))


def _signature(root: Path) -> tuple[tuple[str, float], ...]:
    """Changes whenever a run is added, removed or rewritten: the cache key of `load_runs`."""
    if not root.is_dir():
        return ()
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        record = folder / RECORD
        out.append((folder.name, record.stat().st_mtime if record.exists() else 0.0))
    return tuple(out)


def load_runs(root: Path) -> tuple[list[RunRecord], list[str]]:
    """Every readable run under ``root`` and one line per skipped folder (cached until the
    folder changes)."""
    import streamlit as st

    @st.cache_data(show_spinner="reading run records …")
    def _load(root_str: str, signature: tuple) -> tuple[list[RunRecord], list[str]]:
        return scan_runs(Path(root_str))

    return _load(str(root), _signature(root))


@dataclass
class Context:
    """Everything a page needs for the task and split chosen in the sidebar."""

    runs_root: Path
    reports_root: Path
    task: str
    split: str
    runs: list[RunRecord]
    """Latest run of each approach on this task and split, best first."""
    all_runs: list[RunRecord]
    skipped: list[str] = field(default_factory=list)
    report: dict[str, Any] | None = None
    """The decision report: the file `dispute-classifier report` wrote, else computed now."""
    report_source: str = ""
    """Where the decision report came from (a file, or computed from the runs now)."""
    live: dict[str, Any] | None = None
    """The same report computed now from the runs (with the file's assumptions), so tables
    always show the latest runs even when the file is older."""
    config: Any = None
    """The `VerdictConfig` of those assumptions."""
    task_ref: str = ""
    """What ``--task`` takes to load the task again in a suggested command: its name, or the
    path of its YAML for a user's own task (from the run records' ``task_file``)."""

    def by_label(self) -> dict[str, RunRecord]:
        return {r.label: r for r in self.runs}

    @property
    def validation_runs(self) -> list[RunRecord]:
        """This task's validation runs (review thresholds and fine-tuned versions are chosen there)."""
        return [r for r in self.all_runs if r.meta.task == self.task and r.meta.split == "validation"]


UNKNOWN = "unknown"
"""What a table cell shows for a value that exists but is not known (a cost without a price);
pages pass it as st.dataframe's ``placeholder``, the text the browser draws for a missing
value (without one it draws "None"), and say why in an adjacent column or the column's help."""
NOT_APPLICABLE = "—"
"""The placeholder of a table whose missing values do not apply to their row (a row nobody ran)."""
TASK_PLACEHOLDER = "TASK"
"""Stands for the task in a suggested command when nothing on disk names one."""


def reported_task(reports_root: Path) -> str | None:
    """The ``--task`` of the first data-check report under ``reports_root`` (the experiment
    writes one before any run, so it names the task of a run that has not finished yet)."""
    for path in sorted(reports_root.glob("data-check-*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            return task_ref(report["task"], report.get("task_file"))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def how_to_fill(runs_root: Path, task: str | None = None) -> str:
    """What to run to fill an empty runs folder, for ``task`` (a `task_ref`) when one is known."""
    command = task_command("experiment", task or TASK_PLACEHOLDER, f"--runs-dir {runs_root}")
    where = "" if task else f" ({TASK_PLACEHOLDER}: a task from `dispute-classifier tasks`, or the path to your task YAML)"
    return f"Run `{command}`{where} to evaluate the approaches (`make run` does it for the worked disputes task), then reload this page."


def run_task_ref(runs: list[RunRecord], task: str) -> str:
    """The `task_ref` of ``task`` as its latest run records it."""
    files = [r.meta.task_file for r in sorted(runs, key=lambda r: r.run_id) if r.meta.task == task]  # ids start with the time
    return task_ref(task, next((f for f in reversed(files) if f), None))


def context(require_runs: bool = True) -> Context:
    """Read the folders, draw the sidebar (task, split, skipped folders) and return the
    context; stops the page with a helpful message when there is nothing to show."""
    import streamlit as st

    runs_root, reports_root = folders()
    all_runs, skipped = load_runs(runs_root)
    st.sidebar.caption(f"runs: `{runs_root}`  \nreports: `{reports_root}`")
    if skipped:
        with st.sidebar.expander(f"⚠ {len(skipped)} unreadable run folder(s) skipped"):
            for line in skipped:
                st.caption(line)
    pairs = sorted({(r.meta.task, r.meta.split) for r in all_runs})
    if not pairs:
        if require_runs:
            where = "no readable run records" if runs_root.is_dir() else "no runs folder"
            st.info(
                f"There is {where} at `{runs_root}`"
                + (f" ({len(skipped)} unreadable folder(s) skipped, see the sidebar)" if skipped else "")
                + f". {how_to_fill(runs_root, reported_task(reports_root))}"
            )
            st.stop()
        return Context(runs_root, reports_root, "", "", [], [], skipped, task_ref=reported_task(reports_root) or "")
    tasks = sorted({t for t, _ in pairs})
    task = st.sidebar.selectbox("task", tasks, index=tasks.index("disputes") if "disputes" in tasks else 0, key="task")
    splits = sorted({s for t, s in pairs if t == task}, key=lambda s: (s != "test", s))
    split = st.sidebar.selectbox("split", splits, key="split")
    runs = latest_per_setting([r for r in all_runs if r.meta.task == task and r.meta.split == split])
    runs.sort(key=lambda r: (-r.metrics["accuracy"], -r.metrics["macro_f1"]))

    report, source, cfg = None, "", VerdictConfig()
    path, _ = report_paths(reports_root, task, split)
    if path.exists():
        try:
            report = read_report(path)
            cfg = config_from_assumptions(report["assumptions"])
            source = f"`{path}` (written {report['created_at']})"
        except (UserError, KeyError) as exc:
            report = None
            st.sidebar.warning(f"{exc}; showing a report computed from the runs instead")
    try:
        live = build_report(
            all_runs, task, split, cfg, skipped, data_hash=(report or {}).get("data_hash"), stages=(report or {}).get("stages")
        )
    except UserError as exc:  # e.g. a run priced on hardware the price table lacks
        st.error(f"Cannot build the decision report: {exc}")
        st.stop()
    ref = run_task_ref(all_runs, task)
    if report is None:
        report = live
        source = f"computed now from the run records with the default assumptions (write it with `{task_command('report', ref, f'--split {split}')}`)"
    return Context(runs_root, reports_root, task, split, runs, all_runs, skipped, report, source, live, cfg, ref)


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Labels of the points no other point beats on both cost (lower) and accuracy (higher),
    cheapest first. ``points`` are (label, cost, accuracy)."""
    front, best_acc = [], float("-inf")
    for label, cost, acc in sorted(points, key=lambda p: (p[1], -p[2])):
        if acc > best_acc:
            front.append(label)
            best_acc = acc
    return front


def errors_frame(runs: list[RunRecord]):
    """One row per misclassified example per run: approach, id, text, gold, predicted, confidence."""
    import pandas as pd

    rows = [
        {
            "approach": r.label,
            "id": p["id"],
            "text": p["text"],
            "gold": p["gold"],
            "predicted": p["predicted"],
            "confidence": p.get("confidence"),
        }
        for r in runs
        for p in r.predictions
        if p["predicted"] != p["gold"]
    ]
    return pd.DataFrame(rows, columns=["approach", "id", "text", "gold", "predicted", "confidence"])


def side_by_side(a: RunRecord, b: RunRecord):
    """Examples both runs saw where at least one is wrong, with both answers."""
    import pandas as pd

    pb = {p["id"]: p for p in b.predictions}
    rows = []
    for p in a.predictions:
        q = pb.get(p["id"])
        if q is None or (p["predicted"] == p["gold"] and q["predicted"] == q["gold"]):
            continue
        rows.append(
            {
                "id": p["id"],
                "text": p["text"],
                "gold": p["gold"],
                f"A: {a.label}": p["predicted"],
                "A conf.": p.get("confidence"),
                f"B: {b.label}": q["predicted"],
                "B conf.": q.get("confidence"),
                "who is right": "A" if p["predicted"] == p["gold"] else "B" if q["predicted"] == q["gold"] else "neither",
            }
        )
    return pd.DataFrame(rows)


def training_log(run: RunRecord) -> tuple[list[dict[str, Any]], str | None, dict[str, Any] | None, str]:
    """(trainer log rows, model card Markdown, model card JSON, problem) of a fine-tuned run,
    read from the ``model_dir`` its record names; ``problem`` says what is missing."""

    model_dir = run.meta.training.model_dir if run.meta.training else None
    if not model_dir:
        return [], None, None, "its run record names no model_dir"
    folder = Path(model_dir)
    if not folder.is_absolute() and not folder.exists():
        folder = run.path / model_dir  # a path relative to the run folder
    if not folder.is_dir():
        return [], None, None, f"model folder `{model_dir}` not found"
    rows, problems = [], []
    log = folder / "trainer_log.jsonl"
    if log.is_file():
        for n, line in enumerate(log.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                problems.append(f"trainer_log.jsonl line {n} is not JSON (skipped)")
    else:
        problems.append("no trainer_log.jsonl")
    card_md = (folder / "model_card.md").read_text(encoding="utf-8") if (folder / "model_card.md").is_file() else None
    card_json = None
    if (folder / "model_card.json").is_file():
        try:
            card_json = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            problems.append("model_card.json is not JSON")
    return rows, card_md, card_json, "; ".join(problems)


SWEPT = {
    "learning_rate": ("train", "learning_rate"),
    "epochs": ("train", "epochs"),
    "lora_r": ("lora", "r"),
    "lora_alpha": ("lora", "alpha"),
    "lora_dropout": ("lora", "dropout"),
    "max_length": ("train", "max_length"),
}
"""The searched settings shown per trial: column -> (recipe section, key) in the model card."""


def sweep_trials(runs: list[RunRecord], task: str) -> list[dict[str, Any]]:
    """One row per run record of a ``sweep`` on ``task`` (the trials' validation records and the
    final model's test record), with the searched settings read from each model's card."""
    rows = []
    for run in runs:
        t = run.meta.training
        if run.meta.task != task or t is None or t.sweep_study is None:
            continue
        _, _, card, _ = training_log(run)
        recipe = (card or {}).get("recipe") or {}
        row = {
            "study": t.sweep_study,
            "trial": t.sweep_trial,
            "final": t.sweep_final,
            "split": run.meta.split,
            "accuracy": run.metrics["accuracy"],
            "n": run.metrics["n"],
            "head": recipe.get("head"),
            "run": run.run_id,
        }
        for column, (section, key) in SWEPT.items():
            row[column] = (recipe.get(section) or {}).get(key)
        rows.append(row)
    return sorted(rows, key=lambda r: (r["study"], r["final"], r["trial"] if r["trial"] is not None else -1))
