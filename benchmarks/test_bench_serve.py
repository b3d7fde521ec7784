"""Load benchmark of the HTTP service on loopback: throughput and p50/p95 latency at
concurrency 1, 8 and 32, one text per request, for tfidf, embedding and (when one is saved)
a fine-tuned classification-head model.

    make bench                      # or: pytest benchmarks/test_bench_serve.py --benchmark-only -s
Serves the disputes task when $DISPUTE_CLASSIFIER_DATA is set, the toy task otherwise. Every
level is bounded in requests and seconds; the numbers go to the benchmark's extra_info and
are printed (no timed assertions: the machine may be shared).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from tests.conftest import write_task  # noqa: E402

LEVELS = (1, 8, 32)
BUDGET = {"tfidf": (600, 15.0), "embedding": (300, 15.0), "finetuned": (120, 30.0)}
"""Requests and seconds per concurrency level, at most."""


def _finetuned_head_model() -> str | None:
    """$BENCH_FINETUNED_MODEL, else the last saved classification-head model."""
    from finetune import registry

    if os.environ.get("BENCH_FINETUNED_MODEL"):
        return os.environ["BENCH_FINETUNED_MODEL"]

    for name, version, path in reversed(registry.list_models()):
        card = registry.read_card(path)
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
    from finetune import registry
    from tests.serve.conftest import Server

    task, _ = workload
    started: dict[str, Server] = {}

    def get(model: str) -> Server:
        if model not in started:
            tmp = tmp_path_factory.mktemp(f"serve-{model.replace(':', '-')}")
            # the service runs in its own folder: name the models folder absolutely
            env = {**os.environ, "DISPUTE_CLASSIFIER_MODELS": str(registry.models_dir().resolve())}
            server = Server(["--model", model, "--task", task, "--log-db", str(tmp / "log.db"), "--max-inputs", "64"], env, tmp / "serve.log")
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


async def _load(url: str, texts: list[str], concurrency: int, requests: int, seconds: float) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, errors
        while sent < requests and time.perf_counter() < deadline:
            text = texts[sent % len(texts)]
            sent += 1
            t0 = time.perf_counter()
            r = await client.post("/v1/classify", json={"input": [text]})
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code != 200

    # One client (one keep-alive connection) per simulated user: a single httpx pool shared by
    # 32 tasks costs the client more CPU per request than the service spends on it.
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=httpx.Limits(max_connections=1)) for _ in range(concurrency)]
    try:
        await asyncio.gather(*(c.post("/v1/classify", json={"input": [texts[0]]}) for c in clients))  # connect, first-call costs
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        wall = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    xs = sorted(latencies)
    return {"requests": len(xs), "errors": errors, "req_per_s": len(xs) / wall, "p50_ms": 1000 * xs[len(xs) // 2],
            "p95_ms": 1000 * xs[min(len(xs) - 1, int(0.95 * len(xs)))]}


@pytest.mark.parametrize("concurrency", LEVELS)
@pytest.mark.parametrize("model", ["tfidf", "embedding", "finetuned"])
def test_serve_throughput(benchmark, servers, workload, model, concurrency):
    if model == "finetuned":
        ref = _finetuned_head_model()
        if ref is None:
            pytest.skip("no saved fine-tuned classification-head model (train one: dispute-classifier finetune train --recipe ... with head: classification)")
        model_ref = ref
    else:
        model_ref = model
    if model == "embedding":
        pytest.importorskip("sentence_transformers")
    server = servers(model_ref)
    _, texts = workload
    requests, seconds = BUDGET[model]
    result = benchmark.pedantic(lambda: asyncio.run(_load(server.url, texts, concurrency, requests, seconds)), rounds=1, iterations=1)
    benchmark.extra_info.update({"model": model_ref, "concurrency": concurrency, **result})
    print(f"\n{model_ref} concurrency {concurrency}: {result['req_per_s']:.1f} req/s, p50 {result['p50_ms']:.1f} ms,"
          f" p95 {result['p95_ms']:.1f} ms over {result['requests']} requests ({result['errors']} errors)")
    assert result["errors"] == 0 and result["requests"] > 0
