"""The command line, run as a user runs it: one-line errors, never a traceback."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


def cli(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "dispute_classifier.commands.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=600,
    )


def test_help_is_fast_and_does_not_import_torch():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from dispute_classifier.commands.cli import build_parser; build_parser();"
            " import baselines.classical, evaluation.evaluate; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.stdout.strip() == "False", out.stderr
    res = cli("evaluate", "--help")
    assert res.returncode == 0 and "tfidf.C" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--task", "nope"], "unknown task 'nope'"),
        (["evaluate", "--approach", "magic"], "unknown approach 'magic'"),
        (["evaluate", "--set", "tfidf.CC=1"], "unknown config key 'tfidf.CC'"),
        (["evaluate", "--limit", "0"], "limit must be a positive number"),
        (["compare", "/nonexistent/run"], "no run '/nonexistent/run'"),
    ],
)
def test_bad_input_gives_one_line_error(args, message, tmp_path):
    res = cli(*args, "--runs-dir" if args[0] == "evaluate" else "--runs-dir", str(tmp_path))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_toy_task_end_to_end(toy_task, tmp_path):
    runs = tmp_path / "runs"
    res = cli("data", "check", "--task", str(toy_task), "--out", str(tmp_path / "reports"))
    assert res.returncode == 0, res.stderr
    assert "test texts also in train: 0" in res.stdout
    res = cli("evaluate", "--task", str(toy_task), "--approach", "tfidf", "--runs-dir", str(runs), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "accuracy" in res.stdout and "95% CI" in res.stdout
    res = cli("compare", "--task", "toy", "--runs-dir", str(runs))
    assert res.returncode == 0, res.stderr
    assert "tfidf" in res.stdout
    (runs / "broken").mkdir()
    res = cli("compare", "--task", "toy", "--runs-dir", str(runs))
    assert res.returncode == 0 and "skipped 1 unreadable run folder" in res.stderr


def test_experiment_report_and_dashboard_commands(toy_task, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "reports"
    profile = tmp_path / "tiny.yaml"
    profile.write_text(
        "description: tfidf and an approach this build lacks\ncuts: [only two stages]\n"
        "stages:\n  - {approach: tfidf}\n  - {approach: crystal-ball, limit: 3}\n  - {approach: finetuned, limit: 3}\n"
    )
    res = cli("report", "--task", str(toy_task), "--runs-dir", str(runs), "--out", str(out))
    assert res.returncode == 2 and "no runs for task toy" in res.stderr and "Traceback" not in res.stderr
    res = cli(
        "experiment",
        "--task",
        str(toy_task),
        "--profile",
        str(profile),
        "--runs-dir",
        str(runs),
        "--out",
        str(out),
        "--quiet",
        "--set",
        "min_shared_examples=5",
    )  # six toy test examples
    assert res.returncode == 0, res.stderr
    assert "[2/3] crystal-ball: not available" in res.stdout and "not available in this build" in res.stdout
    # a stage that fails says why in one line, and the others still count
    assert "[3/3] finetuned: failed" in res.stdout and "no saved model" in res.stdout
    assert "cut: only two stages" in res.stdout and "verdict: Use tfidf" in res.stdout and "open the dashboard" in res.stdout
    res = cli("report", "--task", str(toy_task), "--runs-dir", str(runs), "--out", str(out), "--set", "monthly_volume=5000")
    assert res.returncode == 0, res.stderr
    assert "verdict: Not yet decidable" in res.stdout  # the default minimum of 200 shared examples: six cannot decide
    assert "monthly volume: 5,000 queries" in (out / "decision-toy-test.md").read_text()
    res = cli("report", "--task", str(toy_task), "--runs-dir", str(runs), "--set", "alpha=3")
    assert res.returncode == 2 and "alpha must be between 0 and 0.5" in res.stderr
    res = cli("experiment", "--profile", "nope", "--runs-dir", str(runs))
    assert res.returncode == 2 and "unknown profile 'nope'" in res.stderr
