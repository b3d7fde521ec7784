"""The template speaks of the task in hand, not of payment disputes.

Another team's data set is made here: 20 topic labels (not BANKING77), an unbalanced test
file (6 rows of half the labels, 12 of the others), the YAML named differently from its task.
What the experiment prints about its cuts is computed from these numbers; the command line,
`evaluate` and `data check` speak of this task.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dispute_classifier.commands.experiment import Profile, Stage, interval_ratio, load_profile, measured_cuts, run_experiment
from dispute_classifier.core.task import load_data, load_task
from evaluation.decision import VerdictConfig
from evaluation.metrics import bootstrap_ci
from tests.conftest import task_folder, write_csv
from tests.e2e.test_cli import cli

WORDS = [
    "tax",
    "garden",
    "piano",
    "rocket",
    "coffee",
    "bicycle",
    "violin",
    "glacier",
    "harbour",
    "lantern",
    "meadow",
    "orchid",
    "pepper",
    "quartz",
    "saddle",
    "tunnel",
    "umbrella",
    "walnut",
    "yacht",
    "zebra",
]
LABELS = [f"topic_{w}" for w in WORDS]
SMALL, LARGE = 6, 12
"""Test rows of the first ten labels and of the last ten: 180 test rows in all."""


def write_topics(folder: Path, labels: list[str] = LABELS) -> Path:
    """The task YAML (``my_topics.yaml``, task name ``support-topics``) beside its CSVs."""
    train = [(f"a question about the {w} number {i}", f"topic_{w}") for w in WORDS for i in range(12)]
    test = [(f"please tell me about {w} item {i}", f"topic_{w}") for k, w in enumerate(WORDS) for i in range(SMALL if k < 10 else LARGE)]
    write_csv(folder / "topics_train.csv", train)
    write_csv(folder / "topics_test.csv", test)
    label_lines = "".join(f"  {label}: Messages about the {label.removeprefix('topic_')}.\n" for label in labels)
    path = folder / "my_topics.yaml"
    path.write_text(
        "name: support-topics\n"
        "description: Support messages sorted into twenty topics.\n"
        "source:\n  files: {train: topics_train.csv, test: topics_test.csv}\n"
        f"labels:\n{label_lines}"
        "splits:\n  test: {file: test}\n  validation: {from: train, fraction: 0.2, seed: 3}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def topics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return write_topics(task_folder(tmp_path, monkeypatch, "topics"))


def test_the_quick_profiles_cuts_are_this_tasks_numbers(topics):
    """Worked by hand for 180 test rows (ten labels of 6, ten of 12): 48 rows give quotas
    1.6 and 3.2, so 1–2 and 3 per label; 160 give 5.33 and 10.67, so 5 and 10–11; intervals
    widen by √(180/48) = 1.94 and √(180/160) = 1.06; 60 steps of 16 rows over the 200 training
    rows (12 per label less the validation cut of 2) are 4.8 epochs."""
    data = load_data(load_task(topics))
    text = "\n".join(measured_cuts(load_profile("quick"), data, "test", 0, str(topics)))
    assert (
        "zero-shot, prompt, few-shot, prompt-api, rag are scored on a seeded, stratified subsample of 48 of the 180 test examples" in text
    )
    assert "(1–3 per label), so their 95 % intervals are about 1.9 times as wide" in text
    assert "finetuned-cls is scored on a seeded, stratified subsample of 160 of the 180 test examples (5–11 per label)" in text
    assert "about 1.1 times as wide" in text
    assert (
        "finetuned-cls trains smollm2-135m-lora-cls-cpu for 60 steps, about 4.8 epochs over its 200 training rows, instead of the recipe's 2 epochs"
        in text
    )
    # the disputes task's fixed figures are gone
    assert "(3 per label" not in text and "3.7 times" not in text and "(10 per label" not in text


def test_the_experiment_prints_the_measured_cuts_and_the_tasks_name(topics, tmp_path):
    profile = Profile(
        "two stages",
        [Stage("tfidf"), Stage("tfidf", name="tfidf-sample", limit=40, overrides=["tfidf.C=2"])],
        cuts=["a fixed line"],
        name="mini",
    )
    lines: list[str] = []
    run_experiment(
        str(topics),
        profile,
        runs_root=str(tmp_path / "runs"),
        reports_dir=str(tmp_path / "reports"),
        progress=False,
        say=lines.append,
        verdict=VerdictConfig(min_shared_examples=3),
    )
    text = "\n".join(lines)
    assert lines[0].startswith("experiment: task support-topics, split test, profile mini")
    assert "cut: tfidf-sample is scored on a seeded, stratified subsample of 40 of the 180 test examples (1–3 per label)" in text
    assert f"about {np.sqrt(180 / 40):.1f} times as wide" in text and "cut: a fixed line" in text
    assert "profile mini cut: tfidf-sample is scored" in text  # repeated at the end
    assert "disput" not in text.replace("dispute-classifier", "").lower() and "payment" not in text.lower()


def test_the_interval_ratio_is_what_the_run_records_intervals_show():
    """Seeded simulation: the project's bootstrap interval on n examples against N, at a few
    accuracies, is as much wider as `interval_ratio` says (within 12 %). Any other law (N/n,
    or no widening at all) fails."""
    rng = np.random.default_rng(0)
    for n_full, n_sub in ((640, 48), (180, 40), (3080, 160)):
        for p in (0.7, 0.85):
            widths = {}
            for n in (n_full, n_sub):
                correct = rng.random((12, n)) < p  # twelve simulated evaluations of n examples
                widths[n] = np.mean([np.subtract(*bootstrap_ci(row, n_resamples=1000, seed=i)[::-1]) for i, row in enumerate(correct)])
            measured = widths[n_sub] / widths[n_full]
            assert measured == pytest.approx(interval_ratio(n_full, n_sub), rel=0.12), (n_full, n_sub, p, measured)


def test_the_command_line_speaks_of_the_task(topics, tmp_path):
    res = cli("--help")
    words = " ".join(res.stdout.split())  # argparse wraps the description
    assert res.returncode == 0 and "payment" not in words and "to a classification task (a task YAML" in words
    res = cli("evaluate", "--task", str(topics), "--approach", "tfidf", "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert res.returncode == 0, res.stderr
    summary = res.stdout.splitlines()[0]
    assert summary.startswith("support-topics/test tfidf: accuracy") and "my_topics" not in summary


def test_data_check_fails_on_bad_rows_unless_allowed(tmp_path, monkeypatch):
    """A label misspelt in the YAML: every row of the real label is bad, the command says
    which spelling the data has (12 training and 6 test rows) and exits 1; --allow-bad-rows writes the report and exits 0."""
    folder = task_folder(tmp_path, monkeypatch, "topics")
    misspelt = [label if label != "topic_coffee" else "topic_cofee" for label in LABELS]
    path = write_topics(folder, misspelt)
    out = tmp_path / "reports"
    res = cli("data", "check", "--task", str(path), "--out", str(out))
    assert res.returncode == 1, res.stderr
    assert "bad rows: 18 (18 × label 'topic_coffee' not in the task's label set (did you mean 'topic_cofee'?" in res.stdout
    assert "18 bad row(s)" in res.stderr and "--allow-bad-rows" in res.stderr and "Traceback" not in res.stderr
    assert (out / "data-check-support-topics.md").is_file()  # the report is written before the command fails
    res = cli("data", "check", "--task", str(path), "--out", str(out), "--allow-bad-rows")
    assert res.returncode == 0, res.stderr
    res = cli("data", "check", "--task", str(write_topics(folder)), "--out", str(out))  # spelt right: no bad rows
    assert res.returncode == 0 and "bad rows: 0" in res.stdout, res.stderr
