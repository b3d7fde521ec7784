"""The LLM approaches from the command line: wiring, run records and one-line errors."""

import json
import os
import re
from pathlib import Path

import pytest

from dispute_classifier.core.backends.llama_server import llama_cpp_available
from tests.e2e.test_cli import cli


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without any OpenAI settings, with a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["DISPUTE_CLASSIFIER_CACHE"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def record_of(stdout: str) -> dict:
    folder = stdout.strip().splitlines()[-1].split("run record: ")[1]
    return json.loads((Path(folder) / "record.json").read_text())


def test_help_lists_the_llm_approaches_and_settings():
    res = cli("evaluate", "--help")
    assert res.returncode == 0
    for word in ("zero-shot", "few-shot", "rag", "--backend", "llm.api.base_url", "rag.k", "few_shot.k_per_label"):
        assert word in res.stdout
    # the registry entry: name, category, summary (columns as wide as the longest approach name)
    assert re.search(r"^\s*rag\s+rag\s+the prompt plus the k most similar", res.stdout, re.M), res.stdout
    assert cli("serve", "--help").returncode == 0 and cli("llama-server", "--help").returncode == 0


def test_api_model_without_key_names_the_variable(toy_task, tmp_path):
    res = cli(
        "evaluate",
        "--task",
        str(toy_task),
        "--approach",
        "prompt",
        "--set",
        "llm.api.model=gpt-4o",
        "--runs-dir",
        str(tmp_path),
        env=clean_env(tmp_path),
    )
    assert res.returncode == 2
    assert "set $OPENAI_API_KEY" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unreachable_base_url_is_named(toy_task, tmp_path):
    from dispute_classifier.core.backends.llama_server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    res = cli(
        "evaluate",
        "--task",
        str(toy_task),
        "--approach",
        "prompt",
        "--quiet",
        "--runs-dir",
        str(tmp_path),
        "--set",
        "llm.api.model=m",
        "--set",
        "llm.api.billing=self-hosted",
        "--set",
        "llm.api.max_retries=1",
        "--set",
        "llm.api.retry_base_delay_s=0.01",
        env=clean_env(tmp_path, OPENAI_BASE_URL=url),
    )
    assert res.returncode == 2 and url in res.stderr and "after 2 attempts" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_few_shot_on_the_local_backend_end_to_end(toy_task, tmp_path, tiny_llama):
    res = cli(
        "evaluate",
        "--task",
        str(toy_task),
        "--approach",
        "few-shot",
        "--backend",
        "local",
        "--quiet",
        "--set",
        f"llm.local.model={tiny_llama}",
        "--set",
        "few_shot.k_per_label=2",
        "--runs-dir",
        str(tmp_path / "runs"),
        env=clean_env(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    rec = record_of(res.stdout)
    assert rec["approach"] == "few-shot" and rec["model"] == str(tiny_llama) and rec["extra"]["llm"]["where"] == "transformers"
    assert rec["config"]["llm"]["backend"] == "local" and rec["config"]["few_shot"] == {"k_per_label": 2}
    assert rec["extra"]["llm"]["backend"] == "local" and rec["extra"]["few_shot_examples"] == 6
    assert rec["metrics"]["invalid_rate"] == 0 and rec["metrics"]["input_tokens_per_query"] > 100
    assert rec["billing"] == "self-hosted" and rec["metrics"]["cost_per_1k_usd"] is not None


@pytest.mark.skipif(not llama_cpp_available(), reason="llama-cpp-python is not installed (make setup installs it)")
def test_prompt_on_the_project_started_llama_cpp_server(toy_task, tmp_path):
    """The offline default of the api backend: a llama.cpp server started for the run."""
    res = cli(
        "evaluate",
        "--task",
        str(toy_task),
        "--approach",
        "prompt",
        "--quiet",
        "--runs-dir",
        str(tmp_path / "runs"),
        env=clean_env(tmp_path),
    )
    assert res.returncode == 0, res.stderr
    rec = record_of(res.stdout)
    llm = rec["extra"]["llm"]
    assert llm["project_started_server"] is True and llm["endpoint"].startswith("http://127.0.0.1:")
    assert llm["model"] == "smollm2-135m-instruct" and llm["server"]["gguf"].endswith(".gguf")
    assert rec["model"] == "smollm2-135m-instruct" and llm["where"] == "llama.cpp" and rec["billing"] == "self-hosted"
    assert rec["metrics"]["n"] == 6 and rec["metrics"]["input_tokens_per_query"] > 50
