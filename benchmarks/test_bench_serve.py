"""Load benchmark of the HTTP service on loopback: requests/s and p50/p95 latency at
concurrency 1 and 32, one text per request, and the server's peak memory, for tfidf,
embedding and (when one is saved) a fine-tuned classification-head model.

    make bench                      # or: pytest benchmarks/test_bench_serve.py --benchmark-only -s
Serves the disputes task when $DISPUTE_CLASSIFIER_DATA is set, the toy task otherwise. Every
level is bounded in requests and seconds; the load comes from `benchmarks.loadgen` (one
keep-alive connection per client, a fraction of httpx's CPU per request, so on 2 cores it
measures the service more than the client). No timed assertions: the machine may be shared.
Skipped under ``--benchmark-disable`` (``make test``): a load test is not a unit test.

**Result files** (what the cost model reads as measured serving capacity): one JSON per model at
``$BENCH_SERVE_OUT/<model>.json`` (default ``reports/serving/``), rewritten level by level:
``format`` ("dispute-classifier/serve-capacity/1"), ``model``, ``ref``, ``version``, ``task``,
``measured_at`` (UTC ISO time), ``machine`` (``cpus``, ``platform``, ``load_avg_1m`` before the
level), ``settings`` (``max_batch``, ``max_wait_ms``, ``texts_per_request``, ``set``: the ``serve --set`` settings,
from $BENCH_FINETUNED_SET, also in the file name: ``<model>+quantize-int8.json``), ``command``,
``levels`` ({"1": {...}, "32": {...}}, each ``concurrency``, ``requests``, ``errors``,
``wall_s``, ``req_per_s``, ``texts_per_s``, ``p50_ms``, ``p95_ms``, ``server_cpu_s``), ``peak_rss_mb``
(the server's VmHWM, model load included) and ``capacity_texts_per_s`` (the best ``texts_per_s``
over the levels: the queries/s a self-hosted cost per query divides by).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from benchmarks.loadgen import run_load  # noqa: E402
from tests.conftest import write_task  # noqa: E402

RESULT_FORMAT = "dispute-classifier/serve-capacity/1"
"""The ``format`` field of a result file (bump it when a field changes meaning)."""
LEVELS = (1, 32)
BUDGET = {"tfidf": (3000, 15.0), "embedding": (300, 15.0), "finetuned": (300, 30.0)}
"""Requests and seconds per concurrency level, at most."""


def served_set(model: str) -> list[str]:
    """``serve --set`` settings of a benchmarked model: $BENCH_FINETUNED_SET (comma-separated, e.g.
    finetuned.quantize=int8) for the fine-tuned one, nothing for the others."""
    if model in BUDGET:
        return []
    return [v.strip() for v in os.environ.get("BENCH_FINETUNED_SET", "").split(",") if v.strip()]


def _finetuned_head_model() -> str | None:
    """$BENCH_FINETUNED_MODEL, else the last saved classification-head model."""
    from finetune import model_store

    if os.environ.get("BENCH_FINETUNED_MODEL"):
        return os.environ["BENCH_FINETUNED_MODEL"]

    for name, version, path in reversed(model_store.list_models()):
        card = model_store.read_card(path)
        if card.get("kind") != "approach" and card.get("recipe", {}).get("head") == "classification":
            return f"{name}:{version}"
    return None


def _task_and_texts(tmp: Path) -> tuple[str, list[str]]:
    path = os.environ.get("DISPUTE_CLASSIFIER_DATA")
    if path and (Path(path) / "train.csv").is_file():
        from dispute_classifier.core.task import load_data, load_task

        return "disputes", load_data(load_task("disputes"), Path(path)).split("test").texts
    from tests.conftest import TOY_TEST

    folder = tmp / "task"
    folder.mkdir(exist_ok=True)
    return str(write_task(folder)), [t for t, _ in TOY_TEST] * 20


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    return _task_and_texts(tmp_path_factory.mktemp("bench-serve"))


@pytest.fixture(scope="module")
def servers(workload, tmp_path_factory):
    """One running service per model, started on first use and stopped after the module."""
    from finetune import model_store
    from tests.serve.conftest import Server

    task, _ = workload
    started: dict[str, Server] = {}

    def get(model: str) -> Server:
        if model not in started:
            tmp = tmp_path_factory.mktemp(f"serve-{model.replace(':', '-')}")
            # the service runs in its own folder: name the models folder absolutely
            env = {**os.environ, "DISPUTE_CLASSIFIER_MODELS": str(model_store.models_dir().resolve())}
            sets = [arg for kv in served_set(model) for arg in ("--set", kv)]
            server = Server(
                ["--model", model, "--task", task, "--log-db", str(tmp / "log.db"), "--max-inputs", "64", *sets], env, tmp / "serve.log"
            )
            started[model] = server
            server.wait_ready(timeout=900)
        return started[model]

    yield get
    for server in started.values():
        server.proc.terminate()
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.stop()


def _proc_status(pid: int, key: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:  # not Linux: no peak memory in the result
        pass
    return None


def _cpu_s(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def write_result(server, model_ref: str, task: str, level: dict, load_avg: float | None) -> Path:
    """Add one level to the model's result file (written whole, then renamed into place)."""
    import httpx

    out = Path(os.environ.get("BENCH_SERVE_OUT", "reports/serving"))
    out.mkdir(parents=True, exist_ok=True)
    served = httpx.get(f"{server.url}/v1/models", timeout=10).json()["data"][0]
    sets = served_set(model_ref)
    suffix = "".join("+" + kv.rpartition(".")[2].replace("=", "-") for kv in sets)  # finetuned.quantize=int8 -> +quantize-int8
    path = out / f"{served['id'].replace('/', '_').replace(':', '-')}{suffix}.json"
    result = json.loads(path.read_text()) if path.is_file() else {}
    if result.get("format") != RESULT_FORMAT or result.get("version") != served["version"]:
        result = {"levels": {}}  # another version was measured before: start again
    result.update(
        {
            "format": RESULT_FORMAT,
            "model": served["id"],
            "ref": model_ref,
            "version": served["version"],
            "task": task,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_1m": load_avg},
            "settings": {"max_batch": 32, "max_wait_ms": 0.0, "texts_per_request": 1, "set": sets},
            "command": "pytest benchmarks/test_bench_serve.py --benchmark-only -s",
            "peak_rss_mb": _proc_status(server.proc.pid, "VmHWM"),
        }
    )
    result["levels"][str(level["concurrency"])] = level
    result["capacity_texts_per_s"] = max(lv["texts_per_s"] for lv in result["levels"].values())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return path


@pytest.mark.parametrize("concurrency", LEVELS)
@pytest.mark.parametrize("model", ["tfidf", "embedding", "finetuned"])
def test_serve_throughput(benchmark, servers, workload, model, concurrency):
    if benchmark.disabled:
        pytest.skip("a load benchmark: run it with --benchmark-only (make bench)")
    if model == "finetuned":
        ref = _finetuned_head_model()
        if ref is None:
            pytest.skip(
                "no saved fine-tuned classification-head model (train one: dispute-classifier finetune train --recipe ... with head: classification)"
            )
        model_ref = ref
    else:
        model_ref = model
    if model == "embedding":
        pytest.importorskip("sentence_transformers")
    server = servers(model_ref)
    task, texts = workload
    requests, seconds = BUDGET[model]
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    port = int(server.url.rsplit(":", 1)[1])
    cpu0 = _cpu_s(server.proc.pid)
    result = benchmark.pedantic(
        lambda: asyncio.run(run_load("127.0.0.1", port, texts, concurrency, requests, seconds)), rounds=1, iterations=1
    )
    cpu1 = _cpu_s(server.proc.pid)
    level = result.summary()
    level["texts_per_s"] = level["req_per_s"]  # one text per request
    level["server_cpu_s"] = None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 2)
    path = write_result(server, model_ref, task, level, load_avg)
    benchmark.extra_info.update({"model": model_ref, **level})
    print(
        f"\n{model_ref} concurrency {concurrency}: {level['req_per_s']:.1f} req/s, p50 {level['p50_ms']:.1f} ms,"
        f" p95 {level['p95_ms']:.1f} ms over {level['requests']} requests ({level['errors']} errors),"
        f" server CPU {level['server_cpu_s']} s, load average {load_avg}; {path}"
    )
    assert level["errors"] == 0 and level["requests"] > 0
