"""The training script under `accelerate launch` with 2 CPU processes (DDP over gloo): both ranks
end with the same weights, only rank 0 registers and writes the model, and the adapter reloads."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_task
from tests.integration.test_finetune_tiny import ROWS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_agrees_and_rank0_saves(tmp_path, monkeypatch, tiny_llama):
    pytest.importorskip("accelerate")
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("the accelerate command is not installed beside this Python")
    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("DISPUTE_CLASSIFIER_RUNS", str(tmp_path / "runs"))
    task = write_task(
        tmp_path, train=ROWS, test=[("refund please 99", "refund"), ("why this fee 99", "fee"), ("not my payment 99", "fraud")]
    )
    cmd = [
        launcher,
        "launch",
        "--config_file",
        str(REPO / "finetune" / "accelerate" / "cpu-ddp.yaml"),
        "--main_process_port",
        str(_free_port()),
        "-m",
        "finetune.train",
        "--recipe",
        "smollm2-135m-lora-cpu",
        "--name",
        "ddp-tiny",
        f"task={task}",
        f"model={tiny_llama}",
        "train.max_steps=3",
        "train.batch_size=2",
        "train.warmup_steps=0",
        "train.learning_rate=2e-3",
        "train.threads=1",
        "eval_limit=3",
    ]
    # from tmp_path, so the evaluation's run records land there; the repo is on the path
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-3000:])
    digests = dict(re.findall(r"rank (\d)/2: trained weights sha256 (\w+)", res.stdout))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], res.stdout[-2000:]

    versions = sorted(p.name for p in (tmp_path / "models" / "ddp-tiny").iterdir())
    assert versions == ["v1"]  # one model from two processes: only rank 0 picked a version
    out = tmp_path / "models" / "ddp-tiny" / "v1"
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["processes"] == 2 and card["training"]["steps"] == 3
    assert "validation" in card["evaluations"]
    assert res.stdout.count("saved ddp-tiny:v1") == 1

    from finetune.classifier import FinetunedClassifier

    preds = FinetunedClassifier("ddp-tiny").predict(["refund please 5", "why this fee 7"])
    assert all(p.label in ("refund", "fee", "fraud") for p in preds)
