"""Batch classification: rows/s per approach, and memory on a large generated file.

    make bench                                        # or: pytest benchmarks/test_bench_classify.py --benchmark-only
    BENCH_CLASSIFY_ROWS=1000000 pytest benchmarks/test_bench_classify.py -k memory --benchmark-only
                                                      # the million-row file (minutes on 2 cores)

Rows/s is the whole command's work per row (read, check, predict, write, commit), with the
fitted model already cached. Models are fitted on the toy task (fitting is not measured);
the input texts are BANKING77's test texts when $DISPUTE_CLASSIFIER_DATA has them (real
lengths matter to the embedding models), generated ones otherwise.

The memory benchmark runs the command in a child process on a file of N rows and on one of
10 N rows and records each child's peak RSS (VmHWM, ``benchmark.extra_info``): streaming in
chunks keeps them equal, whatever N. It asserts on memory only, never on time.
"""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from dispute_classifier.batch.driver import classify as classify_file
from dispute_classifier.batch.job import ClassifyConfig
from tests.conftest import REPO, write_task

LARGE_ROWS = int(os.environ.get("BENCH_CLASSIFY_ROWS", "200000"))
"""Rows of the large file in the memory benchmark (the small one has a tenth)."""


def sample_texts() -> list[str]:
    path = os.environ.get("DISPUTE_CLASSIFIER_DATA")
    if path and (Path(path) / "test.csv").is_file():
        with open(Path(path) / "test.csv", newline="", encoding="utf-8") as f:
            return [row["text"] for row in csv.DictReader(f)]
    rng = random.Random(0)
    words = "card payment refund fee charged twice transfer cash atm rate exchange not received my the why".split()
    return [" ".join(rng.choices(words, k=rng.randint(5, 20))) for _ in range(2000)]


def write_input(path: Path, rows: int, texts: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows((f"r{i}", texts[i % len(texts)]) for i in range(rows))
    return path


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench-classify")
    return write_task(folder)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path_factory.getbasetemp() / "bench-cache"))


@pytest.mark.parametrize("approach, rows", [("tfidf", 5000), ("embedding", 300), ("knn", 300)])
def test_classify_rows_per_second(benchmark, toy, tmp_path, approach, rows):
    if benchmark.disabled:  # `make test` runs each benchmark once: keep that quick
        rows = min(rows, 200)
    src = write_input(tmp_path / "in.csv", rows, sample_texts())
    cfg = ClassifyConfig(
        input=str(src),
        output=str(tmp_path / "out.csv"),
        model=approach,
        task=str(toy),
        id_column="id",
        chunk_size=500,
        quiet=True,
        overwrite=True,
    )
    classify_file(cfg, out=io.StringIO())  # fits and caches the model; later rounds load it

    summary = benchmark.pedantic(classify_file, args=(cfg,), kwargs={"out": io.StringIO()}, rounds=3, iterations=1)
    assert summary.classified == rows
    benchmark.extra_info["rows"] = rows
    if not benchmark.disabled:
        benchmark.extra_info["rows_per_s"] = round(rows / benchmark.stats.stats.mean, 1)
    benchmark.extra_info["predict_rows_per_s"] = round(rows / summary.predict_s, 1)


# The CLI in a child process that reports its own peak RSS (VmHWM) when done. The kernel's
# getrusage peak would also count the pages the child shared with this (large) test process
# before it exec'd; VmHWM belongs to the new program only.
_MEASURED = (
    "import sys; from dispute_classifier.commands.cli import main; rc = main(sys.argv[1:]);"
    " print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')), file=sys.stderr);"
    " sys.exit(rc)"
)


def _peak_rss_mb(args: list[str]) -> float:
    """Run the CLI with ``args`` in a child process and return its peak resident memory."""
    res = subprocess.run([sys.executable, "-c", _MEASURED, *args], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return int(res.stderr.strip().splitlines()[-1]) / 1024  # VmHWM is in kB


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak RSS from /proc (Linux)")
def test_memory_stays_flat_on_a_large_file(benchmark, toy, tmp_path):
    large = 20_000 if benchmark.disabled else LARGE_ROWS
    texts = sample_texts()

    def command(rows: int) -> list[str]:
        src = write_input(tmp_path / f"in-{rows}.csv", rows, texts)
        return [
            "classify",
            str(src),
            "--task",
            str(toy),
            "--model",
            "tfidf",
            "--id-column",
            "id",
            "--output",
            str(tmp_path / f"out-{rows}.csv"),
            "--quiet",
            "--min-confidence",
            "0.5",
        ]

    small_mb = _peak_rss_mb(command(large // 10))  # also fits and caches the model
    large_cmd = command(large)
    large_mb = benchmark.pedantic(_peak_rss_mb, args=(large_cmd,), rounds=1, iterations=1)
    benchmark.extra_info.update(
        rows_small=large // 10,
        rows_large=large,
        peak_rss_small_mb=round(small_mb, 1),
        peak_rss_large_mb=round(large_mb, 1),
        input_mb=round((tmp_path / f"in-{large}.csv").stat().st_size / 2**20, 1),
    )
    # Ten times the rows may not cost more than a little allocator noise.
    assert large_mb < small_mb * 1.15 + 20, f"peak RSS grew from {small_mb:.0f} MB to {large_mb:.0f} MB"
