"""Results as data: summaries exported from records the real evaluator wrote, tables rendered
from them, and a check that fails when a table and the committed results disagree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from baselines.classical import TfidfClassifier
from dispute_classifier.commands.cli import main
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.core.types import ClassifierBase, Prediction, Usage
from evaluation.evaluate import evaluate
from tests.conftest import REPO

DOC = """# Results

<!-- results:headline:toy -->
stale
<!-- /results:headline:toy -->

Prose between tables stays as it is.

<!-- results:finetuning:toy -->
<!-- /results:finetuning:toy -->
"""


class FirstWord(ClassifierBase):
    """A stand-in fine-tuned model: the label named by the text, else the first label."""

    name = "first-word"
    billing = "self-hosted"

    def __init__(self, labels):
        self.labels = labels

    def fit(self, texts, labels):
        return self

    def predict(self, texts):
        return [Prediction(next((lab for lab in self.labels if lab in t), self.labels[0]), 0.8, Usage()) for t in texts]


@pytest.fixture
def exported(toy_task, tmp_path):
    """Run records from the evaluator (tfidf on test, a fine-tuned stand-in on validation and test),
    exported to results/ beside a doc with two tables."""
    data = load_data(load_task(toy_task))
    runs = tmp_path / "runs"
    evaluate(TfidfClassifier(), data, "test", approach="tfidf", runs_root=runs, progress=False)
    for split in ("validation", "test"):
        evaluate(FirstWord(data.spec.label_list), data, split, approach="ft", category="finetuned", runs_root=runs, progress=False)
    assert main(["results", "export", str(runs), "--out", str(tmp_path / "results")]) == 0
    (tmp_path / "doc.md").write_text(DOC)
    return tmp_path


def test_export_keeps_the_numbers_and_drops_the_predictions(exported):
    files = sorted(p.relative_to(exported / "results").as_posix() for p in (exported / "results").rglob("*.json"))
    assert files == ["toy/test/ft.json", "toy/test/tfidf.json", "toy/validation/ft.json"]
    tfidf = json.loads((exported / "results/toy/test/tfidf.json").read_text())
    record = json.loads(next((exported / "runs").glob("*tfidf-test*/record.json")).read_text())
    assert tfidf["metrics"]["accuracy"] == pytest.approx(record["metrics"]["accuracy"], rel=1e-6)
    assert tfidf["provenance"]["run_id"] == record["run_id"] and "predictions" not in json.dumps(tfidf)
    ft = json.loads((exported / "results/toy/test/ft.json").read_text())
    assert ft["paired"]["vs"] == "tfidf" and ft["paired"]["n_shared"] == record["metrics"]["n"]  # paired on the test split's examples


def test_render_writes_the_tables_and_check_fails_when_a_result_is_edited(exported, monkeypatch, capsys):
    monkeypatch.chdir(exported)
    doc = exported / "doc.md"
    assert main(["results", "render", "doc.md"]) == 0
    text = doc.read_text()
    assert "stale" not in text and "Prose between tables stays as it is." in text
    tfidf = json.loads((exported / "results/toy/test/tfidf.json").read_text())
    assert f"| `tfidf` | {tfidf['summary']} | {100 * tfidf['metrics']['accuracy']:.2f} %" in text
    assert "| `ft` |" in text  # validation and test on one row
    assert main(["results", "render", "doc.md", "--check"]) == 0

    # a committed result changed by hand: the table no longer matches
    tfidf["metrics"]["accuracy"] = 0.5
    (exported / "results/toy/test/tfidf.json").write_text(json.dumps(tfidf))
    capsys.readouterr()
    assert main(["results", "render", "doc.md", "--check"]) == 1
    assert "doc.md: headline:toy" in capsys.readouterr().err
    assert doc.read_text() == text  # --check changes nothing

    # a table edited by hand fails the same way
    assert main(["results", "render", "doc.md"]) == 0
    doc.write_text(doc.read_text().replace("50.00 %", "99.00 %"))
    assert main(["results", "render", "doc.md", "--check"]) == 1


def test_an_unknown_table_or_a_missing_results_folder_is_a_one_line_error(exported, monkeypatch, capsys):
    monkeypatch.chdir(exported)
    (exported / "bad.md").write_text("<!-- results:nosuch -->\n<!-- /results:nosuch -->\n")
    assert main(["results", "render", "bad.md"]) != 0
    assert "unknown results table 'nosuch'" in capsys.readouterr().err
    assert main(["results", "render", "doc.md", "--results", "nowhere"]) != 0
    assert "results export" in capsys.readouterr().err


def test_the_committed_tables_match_the_committed_results(tmp_path):
    """README.md and docs/ against results/: a hand edit to either fails here (and in `make test`)."""
    out = subprocess.run(
        [sys.executable, "-m", "dispute_classifier.commands.cli", "results", "render", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    # the same check on a copy with one committed number changed fails
    for name in ("README.md", "docs", "results"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, tmp_path / name)
    victim = tmp_path / "results" / "disputes" / "test" / "tfidf.json"  # in the README's headline table
    data = json.loads(victim.read_text())
    data["metrics"]["accuracy"] = 0.123456
    victim.write_text(json.dumps(data))
    out = subprocess.run(
        [sys.executable, "-m", "dispute_classifier.commands.cli", "results", "render", "--check"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "differ" in out.stderr
