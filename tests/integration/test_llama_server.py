"""The API backend against the real llama.cpp server on loopback, serving SmolLM2's GGUF."""

from __future__ import annotations

import socket

import pytest

from dispute_classifier.core.backends.api import ApiBackend, ApiConfig
from dispute_classifier.core.backends.llama_server import (
    LlamaServer,
    ServerConfig,
    llama_cpp_available,
)
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.prompts import PromptConfig, build_messages
from dispute_classifier.core.task import load_task

pytestmark = pytest.mark.skipif(not llama_cpp_available(), reason="llama-cpp-python is not installed (`make setup` builds it)")

TEXTS = ["I was charged twice for the same coffee", "my card was stolen yesterday", "where is the refund the shop promised?"]


@pytest.fixture(scope="module")
def server():
    with LlamaServer(ServerConfig(n_ctx=2048)) as s:
        yield s


def test_smoke_prompts_through_the_real_server(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path))
    task = load_task("disputes")
    config = ApiConfig(base_url=server.base_url, cache=False, billing="self-hosted")
    with ApiBackend(config, prices=PriceTable.load(), environ={}) as backend:
        preds = backend.classify([build_messages(task, t).messages for t in TEXTS], task.label_list)
        info = backend.describe()
    assert info["model"] == "smollm2-135m-instruct" and info["endpoint"] == server.base_url
    assert info["structured_output"] == "grammar"  # llama.cpp GBNF: only the label strings
    assert all(p.label in task.labels for p in preds), [p.raw for p in preds]
    assert all(p.usage.input_tokens > 300 and p.usage.output_tokens > 0 and p.usage.latency_s > 0 for p in preds)
    assert all(p.confidence is None or 0 < p.confidence <= 1 for p in preds)


def test_server_renders_the_chat_template_stored_in_the_gguf(server):
    """Same prompt tokens as transformers' apply_chat_template on the same messages: the
    server uses the model's own template (SmolLM2's default system turn included)."""
    from openai import OpenAI

    from dispute_classifier.core.backends.local import prompt_ids
    from dispute_classifier.core.model_source import SMOLLM2, load_tokenizer

    messages = build_messages(load_task("disputes"), TEXTS[0], PromptConfig(style="bare")).messages
    want = len(prompt_ids(load_tokenizer(SMOLLM2), messages))
    client = OpenAI(base_url=server.base_url, api_key="none", max_retries=0)
    resp = client.chat.completions.create(model="smollm2-135m-instruct", messages=messages, max_tokens=1)
    assert resp.usage.prompt_tokens == want


def test_stop_frees_the_port():
    s = LlamaServer(ServerConfig(n_ctx=512)).start()
    port, proc = s.port, s.process
    s.stop()
    assert proc.poll() is not None and s.process is None
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_server_that_cannot_start_reports_its_log(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a GGUF file" * 10)
    with pytest.raises(UserError) as err:
        LlamaServer(ServerConfig(model_path=str(bad), startup_timeout_s=60)).start()
    msg = str(err.value)
    assert "broken.gguf exited with status" in msg and "log " in msg and len(msg.split("log ", 1)[1]) > 40
    with pytest.raises(UserError, match="not found"):
        LlamaServer(ServerConfig(model_path=str(tmp_path / "missing.gguf"))).start()


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_llama_server_command_runs_until_interrupted(tmp_path, stop):
    """`dispute-classifier llama-server` prints the endpoint, answers on it, and stops its
    llama.cpp child on Ctrl-C and on SIGTERM alike (the port is free afterwards)."""
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    from dispute_classifier.core.backends.llama_server import free_port
    from tests.conftest import REPO

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dispute_classifier.commands.cli", "llama-server", "--port", str(port), "--n-ctx", "512"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert f"export OPENAI_BASE_URL=http://127.0.0.1:{port}/v1" in lines[1], (lines, proc.stderr.read())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "smollm2-135m-instruct"
        proc.send_signal(getattr(signal, stop))
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_server_under_an_api_model_name_writes_records_the_verdict_prices(toy_task, tmp_path, monkeypatch):
    """The whole API path offline: the project-started llama.cpp server answers as
    'gpt-4o-mini' and is billed as an API, so the real evaluator writes the record an OpenAI
    run would: the plain model id, api billing, a cost from the price table's tokens, and the
    decision report's 'stronger API model' row filled from it."""
    from dispute_classifier.commands.cli import main
    from evaluation.decision import VerdictConfig, build_report
    from evaluation.runs import scan_runs

    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    runs = tmp_path / "runs"
    code = main(
        [
            "evaluate",
            "--task",
            str(toy_task),
            "--approach",
            "prompt",
            "--runs-dir",
            str(runs),
            "--quiet",
            "--set",
            "llm.api.server.alias=gpt-4o-mini",
            "--set",
            "llm.api.billing=api",
            "--set",
            "llm.api.server.n_ctx=2048",
        ]
    )
    assert code == 0
    (run,), _ = scan_runs(runs)
    assert run.meta.model == "gpt-4o-mini" and run.meta.billing == "api"
    assert run.meta.extra["llm"]["backend"] == "api" and run.meta.extra["llm"]["project_started_server"]
    expected = PriceTable.load().token_cost("gpt-4o-mini", run.metrics["input_tokens_per_query"], run.metrics["output_tokens_per_query"])
    assert run.metrics["cost_per_query_usd"] == pytest.approx(expected, rel=1e-6)
    report = build_report([run], "toy", "test", VerdictConfig(min_shared_examples=1))
    rows = {c["row"]: c for c in report["comparison_set"]}
    assert rows["stronger API model, optimised prompt"]["status"] == "run"
    row = report["leaderboard"][0]
    host = PriceTable.load().hourly(row["cost_parts"]["hardware"]) * 730  # the machine of the service that calls the API
    assert row["monthly_cost_usd"] == pytest.approx(expected * 100_000 + host, rel=1e-6)
