"""`dispute-classifier classify` as a user runs it: light start-up, one-line errors."""

import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.e2e.test_cli import cli


def test_classify_help_loads_no_heavy_library():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from dispute_classifier.commands.cli import build_parser; build_parser();"
            " import dispute_classifier.batch.driver, dispute_classifier.batch.local_engine, dispute_classifier.resolution.resolve, dispute_classifier.batch.ray_engine;"
            " print(sorted(m for m in ('torch', 'pandas', 'pyarrow', 'sklearn') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.stdout.strip() == "[]", out.stderr
    res = cli("classify", "--help")
    assert res.returncode == 0 and "--min-confidence" in res.stdout and "coverage_curve" in res.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nope"], "unknown model 'nope'; approaches: tfidf"),
        (["--text-column", "body"], "no column 'body'; columns found: text"),
        (["--chunk-size", "0"], "chunk size must be at least 1"),
        (["--min-confidence", "2"], "min confidence must be between 0 and 1"),
        (["--set", "tfidf.CC=1"], "unknown config key 'tfidf.CC'"),
    ],
)
def test_bad_arguments_give_one_line_errors(toy_task, tmp_path, args, message):
    src = tmp_path / "in.csv"
    src.write_text("text\nrefund please\n", encoding="utf-8")
    base = {"--model": "tfidf"}
    flags = [x for k, v in base.items() if k not in args for x in (k, v)]
    res = cli("classify", str(src), "--task", str(toy_task), "--output", str(tmp_path / "out.csv"), *flags, *args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "name, message",
    [("missing.csv", "file not found"), ("in.txt", "unknown file type '.txt'")],
)
def test_bad_input_file_gives_one_line_error(toy_task, tmp_path, name, message):
    res = cli("classify", str(tmp_path / name), "--task", str(toy_task), "--model", "tfidf", "--output", str(tmp_path / "out.csv"))
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr
