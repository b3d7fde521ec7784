"""The dashboard shows the suspected label errors (Data page) and the curves (Curves page)."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
pytest.importorskip("cleanlab")

from tests.dashboard.test_app import charts, open_page, page_text  # noqa: E402


@pytest.fixture
def reports(noisy_task, tmp_path):
    from dispute_classifier.core import datacheck
    from dispute_classifier.core.task import load_data, load_task
    from evaluation.curves import CurvesConfig, run_curves, write_curves
    from evaluation.label_issues import LabelIssueConfig, approach_maker, label_issues

    data = load_data(load_task(noisy_task))
    out = tmp_path / "reports"
    report = datacheck.check(data, sample_size=5)
    report["label_issues"] = label_issues(data, LabelIssueConfig(issue_approaches=["tfidf"], issue_folds=3))
    datacheck.write_report(report, out)
    tfidf = approach_maker("tfidf", str(noisy_task))
    cfg = CurvesConfig(task=str(noisy_task), approaches=["tfidf"], sizes=["15", "all"], noise=[0.0, 0.2], seeds=[0, 1], folds=3)
    write_curves(run_curves(cfg, data, {"tfidf": tfidf}, {"tfidf": tfidf}, log=lambda _: None), out)
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs", out, report["label_issues"]


def test_data_page_lists_suspected_label_errors_for_review(reports, monkeypatch):
    runs, out, issues = reports
    at = open_page("data", runs, out, monkeypatch)
    text = page_text(at)
    assert f"{issues['n_issues']} of {issues['n_rows']} train rows flagged" in text
    table = at.dataframe[-1].value
    assert list(table["text"]) == [r["text"] for r in issues["rows"]]
    assert {"given", "suggested"} <= set(table.columns)
    label = issues["rows"][0]["given"]
    at.selectbox(key="issue_label").set_value(label).run()
    assert set(at.dataframe[-1].value["given"]) == {label}


def test_data_page_without_label_issues_says_how(noisy_task, tmp_path, monkeypatch):
    from dispute_classifier.core import datacheck
    from dispute_classifier.core.task import load_data, load_task

    datacheck.write_report(datacheck.check(load_data(load_task(noisy_task)), sample_size=5), tmp_path / "reports")
    (tmp_path / "runs").mkdir()
    at = open_page("data", tmp_path / "runs", tmp_path / "reports", monkeypatch)
    assert "--label-issues" in page_text(at)


def test_curves_page_draws_learning_curve_noise_and_finder(reports, monkeypatch):
    runs, out, _ = reports
    at = open_page("curves", runs, out, monkeypatch)
    text = page_text(at)
    assert "validation" in text and charts(at) == 3
    table = at.dataframe[0].value
    assert set(table["size"]) == {"15", "all"} and set(table["noise"]) == {0.0, 0.2}


def test_curves_page_without_report_says_what_to_run(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    at = open_page("curves", tmp_path / "runs", tmp_path / "reports", monkeypatch)
    assert "dispute-classifier curves" in page_text(at)


def test_curves_page_with_corrupt_report(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "curves-toy-validation.json").write_text("{nope")
    at = open_page("curves", tmp_path / "runs", tmp_path / "reports", monkeypatch)
    assert "not a readable curves report" in page_text(at)
