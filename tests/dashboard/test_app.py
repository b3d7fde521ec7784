"""Streamlit's AppTest renders every dashboard page against the fixture runs folder and
checks the key numbers; empty, missing and corrupt folders give a message, not a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("altair")
from streamlit.testing.v1 import AppTest  # noqa: E402

from tests.dashboard.conftest import APP  # noqa: E402

PAGES = ["verdict", "leaderboard", "break_even", "per_class", "errors", "training", "data"]


def page_text(at: AppTest) -> str:
    """Every visible text of the page: headings, markdown, alerts, metrics, tables."""
    parts: list[str] = []
    for kind in ("title", "subheader", "markdown", "caption", "info", "success", "warning", "error", "latex"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    parts += [e.label for e in at.expander]
    parts += [e.value.to_string() for e in at.dataframe] + [e.value.to_string() for e in at.table]
    return "\n".join(parts)


def charts(at: AppTest) -> int:
    return len(at.get("vega_lite_chart"))


def open_page(page: str, runs: Path, reports: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DISPUTE_CLASSIFIER_RUNS", str(runs))
    monkeypatch.setenv("DISPUTE_CLASSIFIER_REPORTS", str(reports))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    if page != "verdict":
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture
def folders(dashboard_folders, monkeypatch):
    return lambda page: open_page(page, dashboard_folders.runs, dashboard_folders.reports, monkeypatch)


def test_verdict_page(folders, dashboard_folders):
    at = folders("verdict")
    text = page_text(at)
    report = json.loads((dashboard_folders.reports / "decision-toy-test.json").read_text())
    assert report["verdict"]["headline"] in text and report["rule"] in text
    fq = report["finetune"]
    assert f"Fine-tune?  \n**{fq['answer']}**" in text  # text that wraps, not a metric that cuts it
    assert f"Fine-tuned vs the choice: {fq['delta_points']:+.2f} points" in text
    assert f"McNemar p: {fq['p_value']:.3g}" in text
    assert f"Break-even volume: {dashboard_folders.break_even:,.0f} queries/month" in text
    assert (
        "2 accuracy points; at least 1 shared examples to be adequate; one-sided level 0.025" in text and "100,000 queries" in text
    )  # the assumptions
    assert "Each approach against the most accurate one" in text
    assert "not run" in text and "RAG" in text  # the comparison set marks what nobody ran


def test_leaderboard_page(folders, dashboard_folders):
    at = folders("leaderboard")
    table = at.dataframe[0].value
    tfidf = table[table["approach"] == "tfidf"].iloc[0]
    assert tfidf["accuracy %"] == pytest.approx(100 * dashboard_folders.tfidf_accuracy)
    assert set(table["approach"]) >= {"tfidf", "prompt [gpt-4o-mini @ OpenAI]", "finetuned [smol-ft:1]"}
    assert "not run" in set(at.dataframe[1].value["kind"])  # the rows nobody ran, each with its command
    assert charts(at) == 1 and "Pareto front" in page_text(at)


def test_break_even_page_recomputes_with_inputs(folders, dashboard_folders):
    at = folders("break_even")
    assert f"Break-even volume: {dashboard_folders.break_even:,.0f} queries/month" in page_text(at)
    assert charts(at) == 1
    # the API's calling service and the small fine-tuned model share a machine size, so what sets the
    # break-even is the amortised training: ten times dearer training pays off at about ten times the volume
    recorded = at.number_input(key="training").value
    at.number_input(key="training").set_value(recorded * 10).run()
    dearer = float([m.value for m in at.metric if m.label == "Break-even volume"][0].split()[0].replace(",", ""))
    assert dearer == pytest.approx(10 * dashboard_folders.break_even, rel=0.05)
    at.number_input(key="volume").set_value(2_000_000).run()
    assert "$ per month at 2,000,000" in page_text(at) and not at.exception


def test_per_class_page(folders):
    at = folders("per_class")
    assert charts(at) == 2  # F1 bars and the confusion heatmap
    at.selectbox(key="run_b").select("prompt [gpt-4o-mini @ OpenAI]").run()
    assert charts(at) == 3 and not at.exception  # plus the per-class F1 difference


def test_errors_page(folders):
    at = folders("errors")
    errors = at.dataframe[0].value
    assert len(errors) == 3 and set(errors["approach"]) == {"prompt [gpt-4o-mini @ OpenAI]", "finetuned [smol-ft:1]"}
    assert {"gold", "predicted", "confidence"} <= set(errors.columns)
    gold = errors["gold"].iloc[0]
    at.selectbox(key="err_class").select(gold).run()
    assert set(at.dataframe[0].value["gold"]) | set(at.dataframe[0].value["predicted"]) >= {gold}
    assert "at least one is wrong" in page_text(at)


def test_training_page(folders):
    at = folders("training")
    text = page_text(at)
    assert "training time: 30.0 min" in text and "training cost: $0.05" in text
    assert "LoRA r=16" in text  # the model card
    assert charts(at) == 1


def test_training_page_shows_the_search(dashboard_folders, tmp_path, monkeypatch):
    from tests.dashboard.conftest import add_sweep

    runs = tmp_path / "runs"
    shutil.copytree(dashboard_folders.runs, runs)
    add_sweep(runs, dashboard_folders.runs.parent, tmp_path / "models")
    at = open_page("training", runs, dashboard_folders.reports, monkeypatch)
    text = page_text(at)
    assert "Hyperparameter search `sweep-toy-cpu`" in text
    assert "2 finished trial(s)" in text and "best: trial 1 at 100.00 %" in text
    assert "**Final model** (trial 1's settings refit on train+validation): 83.33 % on 6 test examples" in text
    table = at.dataframe[0].value
    assert sorted(table["trial"]) == [0, 1] and sorted(table["learning_rate"]) == [4e-4, 1e-3]
    assert charts(at) == 2  # the search, then the training curves of the fine-tuned run


def test_data_page(folders):
    at = folders("data")
    text = page_text(at)
    assert "test rows: 6" in text and "train rows: 24" in text and "Reading sample (10 training rows" in text


@pytest.mark.parametrize("page", PAGES)
def test_empty_runs_folder_says_what_to_run(page, tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    at = open_page(page, tmp_path / "runs", tmp_path / "reports", monkeypatch)
    text = page_text(at)
    assert "make run" in text or "dispute-classifier data check" in text


def test_missing_runs_folder(tmp_path, monkeypatch):
    at = open_page("leaderboard", tmp_path / "nowhere", tmp_path / "reports", monkeypatch)
    assert "no runs folder" in page_text(at)


@pytest.mark.parametrize("page", PAGES)
def test_partly_corrupt_folder_still_renders(page, dashboard_folders, tmp_path, monkeypatch):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    shutil.copytree(dashboard_folders.runs, runs)
    shutil.copytree(dashboard_folders.reports, reports)
    (runs / "garbled").mkdir()
    (runs / "garbled" / "record.json").write_text("{not json")
    (runs / "unfinished").mkdir()  # a run still being written has no record.json yet
    (reports / "decision-toy-test.json").write_text("{also not json")
    (reports / "data-check-toy.json").write_text("[]")
    at = open_page(page, runs, reports, monkeypatch)
    text = page_text(at)
    assert "2 unreadable run folder(s) skipped" in text
    if page == "verdict":
        assert "corrupt decision report" in text and "computed now from the run records" in text
    if page == "data":
        assert "not a readable data-check report" in text


def test_only_corrupt_runs(tmp_path, monkeypatch):
    (tmp_path / "runs" / "garbled").mkdir(parents=True)
    (tmp_path / "runs" / "garbled" / "record.json").write_text("{not json")
    at = open_page("verdict", tmp_path / "runs", tmp_path / "reports", monkeypatch)
    text = page_text(at)
    assert "no readable run records" in text and "1 unreadable folder(s) skipped" in text and "make run" in text


# ------------------------------------------------------------- polish: answers, unknowns, chart, task


def cell_text(element) -> "pandas.DataFrame":  # noqa: F821  (pandas comes with streamlit)
    """The cells of a table as the browser draws them: a missing value is the table's
    placeholder, or "None" when it has none (checked in headless Chromium)."""
    frame = element.value.astype(object)
    placeholder = element.proto.placeholder if element.proto.HasField("placeholder") else "None"
    return frame.where(frame.notna(), placeholder).astype(str)


def test_verdict_answers_are_text_that_wraps_not_metrics_that_cut(folders, dashboard_folders):
    """st.metric cuts a value to its column ("Fine-tune? not yet deci…"): the word answers are
    markdown, and the metrics left hold numbers only."""
    at = folders("verdict")
    report = json.loads((dashboard_folders.reports / "decision-toy-test.json").read_text())
    answers = [m.value for m in at.markdown]
    assert f"Recommendation  \n**{report['verdict']['recommendation'] or 'not yet decidable'}**" in answers
    assert f"Fine-tune?  \n**{report['finetune']['answer']}**" in answers
    assert {m.label for m in at.metric}.isdisjoint({"Recommendation", "Fine-tune?"})
    for m in at.metric:
        assert m.value[:1].isdigit() or m.value[:1] in "+-−" or m.value in ("never", "—"), (m.label, m.value)


@pytest.mark.parametrize("page", ["verdict", "leaderboard", "break_even", "errors"])
def test_unknown_costs_read_unknown_never_none(page, dashboard_folders, tmp_path, monkeypatch):
    from tests.dashboard.conftest import UNPRICED, add_unpriced_run

    runs = tmp_path / "runs"
    shutil.copytree(dashboard_folders.runs, runs)
    label = add_unpriced_run(runs, dashboard_folders.runs.parent)
    reports = tmp_path / "reports"  # no decision report on file: the pages compute it with the new run
    shutil.copytree(dashboard_folders.reports, reports, ignore=shutil.ignore_patterns("decision-*"))
    at = open_page(page, runs, reports, monkeypatch)
    tables = [cell_text(d) for d in at.dataframe]
    assert tables
    for table in tables:
        cells = set(table.to_numpy().ravel())
        assert not cells & {"None", "nan", "NaN", "<NA>"}, (page, table)
    if page == "leaderboard":
        row = tables[0][tables[0]["approach"] == label].iloc[0]
        assert row["$ per 1k"] == "unknown" and row["$ per month at 100,000"] == "unknown"
        assert row["how it is priced"].startswith(f"unknown: needs a price for '{UNPRICED}'")
        assert set(tables[0]["kind"]) <= {"classical", "prompted", "finetuned", "rag"}  # runs only: a missing cell is unknown
        assert tables[1]["run it with"].str.startswith("dispute-classifier evaluate --task").all()
        assert f"Not plotted (cost unknown): {label}" in page_text(at)
    if page == "break_even":
        row = tables[0][tables[0]["approach"] == label].iloc[0]
        assert row.iloc[1] == "unknown" and row["how it is priced"].startswith(f"unknown: needs a price for '{UNPRICED}'")
    if page == "verdict":
        standing = tables[0]
        reference = standing[standing["approach"] == "tfidf"].iloc[0]  # compared with itself
        assert reference["shared n"] == "6" and float(reference["Δ points"]) == 0
        unpriced = standing[standing["approach"] == label].iloc[0]
        assert unpriced["$ per month"] == "unknown" and unpriced["cost"].startswith(f"unknown: needs a price for '{UNPRICED}'")
        comparison = tables[-1]
        assert comparison[comparison["status"] == "not run"].iloc[0]["accuracy %"] == "—"


def test_cost_chart_names_approaches_in_a_legend_not_in_text_beside_points(folders):
    """Text labels beside the points overlapped where approaches cost and score alike; each
    approach is now a colour of the legend (and each kind a shape)."""
    at = folders("leaderboard")
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    layers = spec.get("layer", [spec])
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in layers]
    assert "text" not in marks
    points = next(layer for layer in layers if (layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]) == "point")
    assert points["encoding"]["color"]["field"] == "label" and points["encoding"]["shape"]["field"] == "kind"


def test_suggested_commands_repeat_the_task_yaml_path(dashboard_folders, tmp_path, monkeypatch):
    """The runs were made on a task given as a YAML path (no shipped task has its name): the
    pages suggest commands with that path, never a fixed --task disputes."""
    toy = str(dashboard_folders.runs.parent / "task" / "toy.yaml")
    at = open_page("data", dashboard_folders.runs, tmp_path / "no-reports", monkeypatch)  # runs, but no data check yet
    text = page_text(at)
    assert f"dispute-classifier data check --task {toy} --out {tmp_path / 'no-reports'}" in text
    at = open_page("training", dashboard_folders.runs, dashboard_folders.reports, monkeypatch)
    assert "--task disputes" not in page_text(at)


def test_the_empty_state_names_the_task_of_a_data_check_or_a_placeholder(dashboard_folders, tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    toy = str(dashboard_folders.runs.parent / "task" / "toy.yaml")
    at = open_page("leaderboard", tmp_path / "runs", dashboard_folders.reports, monkeypatch)  # the experiment's data check, no run yet
    text = page_text(at)
    assert f"dispute-classifier experiment --task {toy} --runs-dir {tmp_path / 'runs'}" in text
    at = open_page("leaderboard", tmp_path / "runs", tmp_path / "no-reports", monkeypatch)
    text = page_text(at)
    assert "dispute-classifier experiment --task TASK" in text and "the path to your task YAML" in text
    assert "--task disputes" not in text


def test_not_run_rows_suggest_the_task_yaml_path(dashboard_folders):
    from evaluation.decision import build_report
    from evaluation.runs import scan_runs

    toy = str(dashboard_folders.runs.parent / "task" / "toy.yaml")
    report = build_report(scan_runs(dashboard_folders.runs)[0], "toy", "test")
    hows = [c["how"] for c in report["comparison_set"] if c["status"] == "not run"]
    assert hows and all(how.startswith(f"dispute-classifier evaluate --task {toy} --approach ") for how in hows)
