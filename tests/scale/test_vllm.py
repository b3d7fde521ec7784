"""Serving on vLLM through the existing api backend.

Here (no GPU): the backend sends vLLM's current label restriction, ``structured_outputs`` with
a ``choice`` list (vLLM removed ``guided_choice`` in 0.12), and reads the bare label back.
Where vLLM and a CUDA GPU exist: a tiny fine-tuned LoRA adapter is served by ``vllm serve BASE
--enable-lora --lora-modules NAME=PATH`` and answered through the api backend, and a merged
classification-head model by a pooling server's ``/classify``. Elsewhere that test skips.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from dispute_classifier.core.backends.api import ApiBackend, ApiConfig
from tests.conftest import write_task
from tests.unit.test_api_backend import EXPECTED, LABELS, PRICES, PROMPTS, FakeApi


def test_choice_form_sends_vllm_structured_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    server = FakeApi()
    try:
        cfg = ApiConfig(base_url=server.url, model="disputes-lora", structured="choice", cache=False, max_retries=0)
        with ApiBackend(cfg, prices=PRICES, environ={}) as backend:
            preds = backend.classify(PROMPTS, LABELS)
            assert backend.describe()["structured_output"] == "choice"
    finally:
        server.close()
    assert [p.label for p in preds] == EXPECTED
    body = server.bodies[-1]
    assert body["structured_outputs"] == {"choice": LABELS}  # extra_body lands at the top level of the request
    assert "guided_choice" not in body and "response_format" not in body and body["model"] == "disputes-lora"


def _gpu_with_vllm() -> str | None:
    """Why the vLLM serving test cannot run here, or None."""
    if importlib.util.find_spec("vllm") is None:
        return "needs vLLM (pip install vllm) and a CUDA GPU"
    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU for vLLM"
    return None


def _serve(args: list[str], log: Path, port: int, timeout_s: float = 600) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", *args, "--port", str(port)],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vllm serve exited {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return proc
        except OSError:
            time.sleep(2)
    proc.kill()
    raise AssertionError(f"vllm serve did not start in {timeout_s:.0f} s: {log.read_text()[-3000:]}")


@pytest.mark.slow
@pytest.mark.skipif(_gpu_with_vllm() is not None, reason=_gpu_with_vllm() or "")
def test_vllm_serves_the_adapter_and_the_classification_head(tmp_path, monkeypatch, tiny_llama):
    """Not run in this project yet (no GPU in its sessions)."""
    from dispute_classifier.core.backends.llama_server import free_port
    from dispute_classifier.core.prompts import PromptConfig, build_messages
    from dispute_classifier.core.task import load_task
    from finetune.recipe import load_recipe
    from finetune.train import train
    from tests.integration.test_finetune_tiny import ROWS

    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "models"))
    task = write_task(
        tmp_path, train=ROWS, test=[("refund please 99", "refund"), ("why this fee 99", "fee"), ("not my payment 99", "fraud")]
    )
    common = [f"task={task}", f"model={tiny_llama}", "train.max_steps=2", "train.batch_size=4", "train.warmup_steps=0", "eval_limit=3"]
    gen = train(load_recipe("smollm2-135m-lora-cpu", [*common, "name=tiny-gen"]), runs_dir=str(tmp_path / "runs"))
    spec = load_task(str(task))
    texts = ["refund please 5", "why this fee 7", "not my payment 1"]

    # 1. the generative adapter: vllm serve BASE --enable-lora --lora-modules NAME=PATH, via the api backend
    port = free_port()
    proc = _serve(
        [
            str(tiny_llama),
            "--enable-lora",
            "--lora-modules",
            f"tiny-gen={gen / 'adapter'}",
            "--max-lora-rank",
            "16",
            "--max-model-len",
            "512",
            "--gpu-memory-utilization",
            "0.3",
        ],
        tmp_path / "vllm-gen.log",
        port,
    )
    try:
        cfg = ApiConfig(base_url=f"http://127.0.0.1:{port}/v1", model="tiny-gen", structured="choice", billing="self-hosted", cache=False)
        prompts = [build_messages(spec, t, PromptConfig(style="short")).messages for t in texts]
        with ApiBackend(cfg, environ={}) as backend:
            preds = backend.classify(prompts, spec.label_list)
        assert all(p.label in spec.label_list for p in preds), [p.raw for p in preds]
    finally:
        proc.terminate()
        proc.wait(60)

    # 2. the classification head: LoRA merged into the full-precision base, served for pooling
    from peft import PeftModel

    from finetune.classifier import load_sequence_classifier

    cls = train(load_recipe("smollm2-135m-lora-cls-cpu", [*common, "name=tiny-cls"]), runs_dir=str(tmp_path / "runs"))
    base = load_sequence_classifier(str(tiny_llama), len(spec.labels), "none", "float32")
    merged = PeftModel.from_pretrained(base, str(cls / "adapter")).merge_and_unload()
    merged.config.id2label = dict(enumerate(spec.label_list))
    merged.config.label2id = {v: k for k, v in merged.config.id2label.items()}
    merged.save_pretrained(tmp_path / "merged")
    for part in (cls / "tokenizer").iterdir():  # the tokenizer and chat template beside the weights
        shutil.copy(part, tmp_path / "merged" / part.name)
    port = free_port()
    proc = _serve(
        [str(tmp_path / "merged"), "--runner", "pooling", "--max-model-len", "512", "--gpu-memory-utilization", "0.3"],
        tmp_path / "vllm-cls.log",
        port,
    )
    try:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/classify",
            data=json.dumps({"model": str(tmp_path / "merged"), "input": texts}).encode(),
            headers={"Content-Type": "application/json"},
        )
        data = json.load(urllib.request.urlopen(req, timeout=60))["data"]
        assert [d["label"] in spec.label_list for d in data] == [True] * len(texts)
        assert all(abs(sum(d["probs"]) - 1) < 1e-3 for d in data)
    finally:
        proc.terminate()
        proc.wait(60)
