"""The template promise: another labelled CSV, one task YAML, the same commands, no code change.

The dataset is made here: support tickets with other labels and other column names
(``ticket_id``, ``message``, ``category``) than BANKING77. It goes through every step of the
experiment as a user runs it (README, "Point it at your own data"): data check, baselines,
evaluation, compare, and batch classification of an unlabelled inbox.

A tiny LLaMA built from a config stands in for the real model in the prompted-LLM step and
the few fine-tuning steps.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

from evaluation.runs import scan_runs
from tests.conftest import task_folder
from tests.e2e.test_cli import cli

TASK_YAML = """\
# Support tickets of a small bank, four queues. Not BANKING77: other labels, other columns.
name: tickets
description: Customer support tickets routed to one of four queues.
source:
  files: {train: tickets_train.csv, test: tickets_test.csv}
  license: CC0 (generated in the test)
columns: {text: message, label: category, id: ticket_id}
labels:
  card_lost: The customer lost their card or it was stolen.
  address_change: The customer wants to change their postal address.
  loan_enquiry: The customer asks about borrowing money.
  app_login: The customer cannot sign in to the mobile app.
splits:
  test: {file: test}
  validation: {from: train, fraction: 0.2, seed: 7}
prompt:
  domain: bank support tickets
  instructions: You are the triage desk of a small bank. Send each support ticket to the queue that can solve it.
"""

TEMPLATES = {
    "card_lost": [
        "I lost my card {x}",
        "my card was stolen {x}",
        "cannot find my debit card {x}",
        "someone took my wallet with the card {x}",
    ],
    "address_change": [
        "I moved house, please update my address {x}",
        "change my postal address {x}",
        "my new address is {x}",
        "update where you send letters {x}",
    ],
    "loan_enquiry": [
        "what interest would a loan have {x}",
        "can I borrow some money {x}",
        "apply for a personal loan {x}",
        "how much could I borrow {x}",
    ],
    "app_login": [
        "cannot log in to the app {x}",
        "the app says my password is wrong {x}",
        "locked out of the mobile app {x}",
        "sign in keeps failing on my phone {x}",
    ],
}
TRAIN_FILLERS = ["today", "yesterday", "last week", "this morning", "on Monday", "again", "urgently", "please help"]
TEST_FILLERS = ["right now", "on Friday", "since Sunday"]


def write_rows(path: Path, fillers: list[str], prefix: str) -> None:
    rows = [(label, t.format(x=x)) for label, ts in TEMPLATES.items() for t in ts for x in fillers]
    random.Random(0).shuffle(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ticket_id", "message", "category"])
        w.writerows((f"{prefix}{i}", text, label) for i, (label, text) in enumerate(rows))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: the task YAML next to its CSVs, nothing else."""
    folder = task_folder(tmp_path, monkeypatch, "tickets")
    write_rows(folder / "tickets_train.csv", TRAIN_FILLERS, "tr")
    write_rows(folder / "tickets_test.csv", TEST_FILLERS, "te")
    (folder / "tickets.yaml").write_text(TASK_YAML, encoding="utf-8")
    with open(folder / "inbox.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["ticket_id", "message"])
        w.writerows(
            [
                ("n1", "I think my card was stolen at the station"),
                ("n2", "please change my address, I moved"),
                ("n3", "how much can I borrow for a car"),
                ("n4", "the app will not let me sign in"),
                ("n5", ""),
            ]
        )
    return folder


def run_ok(*args: str) -> str:
    res = cli(*args)
    assert res.returncode == 0, f"{' '.join(args)}\n{res.stderr}"
    return res.stdout


# The baselines the promise covers; prompted LLMs and fine-tuned models join this list.
BASELINES = ["tfidf", "knn"]


def test_a_new_task_runs_through_every_step_without_code_change(
    project: Path, tmp_path: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
):
    task = str(project / "tickets.yaml")
    runs = str(tmp_path / "runs")
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "models"))

    out = run_ok("data", "check", "--task", task, "--out", str(tmp_path / "reports"))
    assert "task tickets: train 104, test 48, validation 24" in out and "bad rows: 0" in out
    assert (tmp_path / "reports" / "data-check-tickets.md").is_file()

    for approach in BASELINES:
        out = run_ok("evaluate", "--task", task, "--approach", approach, "--runs-dir", runs, "--quiet")
        assert f"/test {approach}: accuracy" in out
        accuracy = float(out.split("accuracy ")[1].split("%")[0])
        assert accuracy >= 75, f"{approach} learnt little from the new task: {out}"

    # the prompted LLM on the new task's labels and descriptions (a tiny LLaMA built from a
    # config stands in for the model; it is random, so only the mechanics are checked)
    out = run_ok(
        "evaluate", "--task", task, "--approach", "prompt", "--backend", "local", "--model", str(tiny_llama), "--runs-dir", runs, "--quiet"
    )
    assert "/test prompt" in out and "invalid 0.0%" in out
    (prompt_run,) = [r for r in scan_runs(Path(runs))[0] if r.meta.approach == "prompt"]
    system = prompt_run.meta.extra["prompt_sample"][0]["content"]
    assert system.startswith("You are the triage desk of a small bank.") and "dispute" not in system.lower()
    assert "card_lost: The customer lost their card" in system

    # a few fine-tuning steps of a tiny LLaMA (built from a config) on the new task
    out = run_ok(
        "finetune",
        "train",
        "--recipe",
        "smollm2-135m-lora-cpu",
        "--name",
        "tickets-lora",
        "--runs-dir",
        runs,
        f"task={task}",
        f"model={tiny_llama}",
        "train.max_steps=3",
        "train.batch_size=4",
    )
    assert "saved tickets-lora:v1" in out and "[FAIL]" not in out
    out = run_ok("evaluate", "--task", task, "--approach", "finetuned", "--model", "tickets-lora:v1", "--runs-dir", runs, "--quiet")
    assert "/test finetuned" in out

    out = run_ok("compare", "--task", task, "--runs-dir", runs)
    assert all(a in out for a in BASELINES + ["prompt", "finetuned"]) and "McNemar" in out

    # the experiment (a profile of the user's own) and the decision report, on the task's path
    profile = tmp_path / "mine.yaml"
    profile.write_text("description: my quick look\nstages:\n  - {approach: tfidf}\n  - {approach: knn}\n")
    out = run_ok("experiment", "--task", task, "--profile", str(profile), "--runs-dir", runs, "--out", str(tmp_path / "reports"), "--quiet")
    assert "[1/2] tfidf: reused" in out and "verdict: " in out
    out = run_ok("report", "--task", task, "--runs-dir", runs, "--out", str(tmp_path / "reports"))
    assert "verdict: " in out and (tmp_path / "reports" / "decision-tickets-test.md").is_file()

    # the saved fine-tuned model classifies a file too; every row lands in exactly one file
    run_ok(
        "classify",
        str(project / "inbox.csv"),
        "--task",
        task,
        "--model",
        "tickets-lora:v1",
        "--output",
        str(tmp_path / "routed-ft.csv"),
        "--quiet",
    )
    routed_ft = []
    for name in ("routed-ft.csv", "routed-ft.review.csv"):
        if (tmp_path / name).is_file():
            with open(tmp_path / name, newline="", encoding="utf-8") as f:
                routed_ft += [r["predicted"] for r in csv.DictReader(f)]
    assert len(routed_ft) == 4 and set(routed_ft) <= set(TEMPLATES)

    out = run_ok(
        "classify",
        str(project / "inbox.csv"),
        "--task",
        task,
        "--model",
        "tfidf",
        "--output",
        str(tmp_path / "routed.csv"),
        "--min-confidence",
        "0.3",
        "--quiet",
    )
    assert "complete" in out and "empty_text 1" in out
    with open(tmp_path / "routed.csv", newline="", encoding="utf-8") as f:
        routed = {r["id"]: r["predicted"] for r in csv.DictReader(f)}
    with open(tmp_path / "routed.review.csv", newline="", encoding="utf-8") as f:
        routed.update({r["id"]: r["predicted"] for r in csv.DictReader(f)})
    assert routed == {"n1": "card_lost", "n2": "address_change", "n3": "loan_enquiry", "n4": "app_login"}
