"""`classify --engine local` vs `--engine ray` on a local 2-CPU Ray cluster: rows/s
(1 and 2 workers) and the fixed start-up cost, to tell from which file size Ray pays off on one machine.

    pytest benchmarks/test_bench_classify_ray.py --benchmark-only            # skipped without ray
    BENCH_RAY_ROWS_TFIDF=200000 BENCH_RAY_ROWS_EMBEDDING=200000 pytest ... # the issue's 200,000 rows

Rows/s is the whole job (plan, read, check, predict, write, commit) with the fitted model
already cached; ``extra_info`` records rows, rows/s and the Ray summary line. Defaults: 200,000
rows for tfidf and 2,000 for the embedding model (MiniLM runs at about 33 rows/s per core here,
so 200,000 rows would take hours on 2 cores). The start-up benchmarks time a 10-row job on a
running cluster (actor start and model load: paid per job) and starting a local cluster
(``ray.init``: paid per process unless ``--ray-address`` joins a running one).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from benchmarks.test_bench_classify import sample_texts, write_input
from dispute_classifier.batch.driver import classify as classify_file
from dispute_classifier.batch.job import ClassifyConfig, format_summary
from tests.conftest import write_task

ROWS = {
    "tfidf": int(os.environ.get("BENCH_RAY_ROWS_TFIDF", "200000")),
    "embedding": int(os.environ.get("BENCH_RAY_ROWS_EMBEDDING", "2000")),
}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="needs the scale extra: pip install -e '.[scale]'")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    yield init_s
    ray.shutdown()


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return write_task(tmp_path_factory.mktemp("bench-ray"))


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path_factory.getbasetemp() / "bench-ray-cache"))


def _config(src: Path, out: Path, approach: str, toy: Path, engine: str, workers: int = 2) -> ClassifyConfig:
    extra = {"workers": workers} if engine == "ray" else {}
    return ClassifyConfig(
        input=str(src),
        output=str(out),
        model=approach,
        task=str(toy),
        id_column="id",
        chunk_size=500,
        quiet=True,
        overwrite=True,
        engine=engine,
        **extra,
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("engine, workers", [("local", 0), ("ray", 1), ("ray", 2)])
@pytest.mark.parametrize("approach", ["tfidf", "embedding"])
def test_rows_per_second(benchmark, ray_cluster, toy, tmp_path, approach, engine, workers):
    rows = min(ROWS[approach], 400) if benchmark.disabled else ROWS[approach]
    src = write_input(tmp_path / "in.csv", rows, sample_texts())
    classify_file(_config(src, tmp_path / "warm.csv", approach, toy, "local"), out=io.StringIO())  # fit and cache once
    cfg = _config(src, tmp_path / "out.csv", approach, toy, engine, workers)
    summary = benchmark.pedantic(classify_file, args=(cfg,), kwargs={"out": io.StringIO()}, rounds=1, iterations=1)
    assert summary.classified == rows
    benchmark.extra_info["rows"] = rows
    if not benchmark.disabled:
        benchmark.extra_info["rows_per_s"] = round(rows / benchmark.stats.stats.mean, 1)
    benchmark.extra_info["summary"] = format_summary(summary).splitlines()[-1]


def test_startup_per_job(benchmark, ray_cluster, toy, tmp_path):
    """A 10-row tfidf job on a running cluster: the fixed cost of every Ray job."""
    src = write_input(tmp_path / "in.csv", 10, sample_texts())
    classify_file(_config(src, tmp_path / "warm.csv", "tfidf", toy, "local"), out=io.StringIO())
    local = _config(src, tmp_path / "local.csv", "tfidf", toy, "local")
    t0 = time.perf_counter()
    classify_file(local, out=io.StringIO())
    benchmark.extra_info["local_10_rows_s"] = round(time.perf_counter() - t0, 3)
    benchmark.extra_info["ray_init_s"] = round(ray_cluster, 2)
    benchmark.pedantic(
        classify_file,
        args=(_config(src, tmp_path / "out.csv", "tfidf", toy, "ray"),),
        kwargs={"out": io.StringIO()},
        rounds=1,
        iterations=1,
    )
