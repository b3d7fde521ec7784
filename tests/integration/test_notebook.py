"""The Colab notebook runs top to bottom on a CPU: every cell, with its parameters cell replaced
(papermill's convention) so that the headline llama3-8b-qlora recipe — 4-bit NF4, paged AdamW,
gradient checkpointing, packing, dtype auto — trains a tiny LLaMA built from a config for two
steps, and the shared evaluator scores it on a toy task."""

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, write_task

NOTEBOOK = REPO / "notebooks" / "finetune_colab.ipynb"
ROWS = [
    (f"{w} {i}", label)
    for label, w in (("refund", "refund please"), ("fee", "why this fee"), ("fraud", "not my payment"))
    for i in range(12)
]


def _with_parameters(nb, values: dict) -> None:
    """Insert an ``injected-parameters`` cell after the one tagged ``parameters``, as papermill does."""
    import nbformat

    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{key} = {value!r}" for key, value in values.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))


def test_the_notebook_is_colab_ready():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    text = "\n".join(c.source for c in nb.cells)
    assert 'RECIPE = "llama3-8b-qlora"' in text and "INSTALL = True" in text and "pip" in text
    assert nb.metadata["colab"]["gpuType"] == "T4"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs


def test_every_cell_runs_on_cpu_with_a_tiny_model(tmp_path, monkeypatch, tiny_llama):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout
    task = write_task(
        tmp_path, train=ROWS, test=[("refund please 99", "refund"), ("why this fee 99", "fee"), ("not my payment 99", "fraud")]
    )
    nb = nbformat.read(NOTEBOOK, as_version=4)
    _with_parameters(
        nb,
        {
            "RECIPE": "llama3-8b-qlora",
            "TASK": str(task),
            "INSTALL": False,
            "HF_LOGIN": False,
            "WORKDIR": str(tmp_path / "work"),
            "OVERRIDES": [
                f"model={tiny_llama}",
                "requires_gpu=false",
                "train.max_steps=2",
                "train.batch_size=2",
                "train.gradient_accumulation_steps=1",
                "train.warmup_steps=0",
                "train.logging_steps=1",
                "train.max_length=128",
            ],
        },
    )
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "dtype auto -> float32 (auto: no CUDA device)" in outputs
    assert "test accuracy" in outputs and "n=3" in outputs
    cards = list((tmp_path / "work" / "models" / "llama3-8b-qlora").glob("v*/model_card.json"))
    assert len(cards) == 1
    card = json.loads(cards[0].read_text())
    assert card["recipe"]["quantization"] == "4bit" and card["recipe"]["train"]["packing"]
    assert card["training"]["dtype_requested"] == "auto" and card["training"]["dtype"] == "float32" and card["training"]["steps"] == 2
    records = [json.loads(p.read_text()) for p in Path(tmp_path / "work" / "runs").glob("*/record.json")]
    assert {r["split"] for r in records} == {"validation", "test"}
