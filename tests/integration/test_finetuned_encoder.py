"""The fine-tuned encoder on a tiny BERT built from a config (the real MiniLM tokenizer, random
weights, no download): it learns a toy task in a few steps, predicts deterministically, and its
runs go through the shared evaluator like any other approach's."""

import json

import pytest

from tests.conftest import write_task


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer BERT (hidden 32) with all-MiniLM-L6-v2's tokenizer, saved as a folder."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from baselines.embeddings import resolve_model

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


ROWS = [
    (f"{w} {i}", label)
    for label, w in (("refund", "refund please"), ("fee", "why this fee"), ("fraud", "not my payment"))
    for i in range(12)
]


def test_learns_a_toy_task_in_a_few_steps(tiny_bert):
    from dispute_classifier.core.types import Classifier
    from finetune.encoder import EncoderConfig, FinetunedEncoderClassifier

    texts, labels = [t for t, _ in ROWS], [g for _, g in ROWS]
    probe = ["refund please 40", "why this fee 41", "not my payment 42"]

    clf = FinetunedEncoderClassifier(
        EncoderConfig(model=str(tiny_bert), max_steps=30, batch_size=8, learning_rate=1e-3, head_learning_rate=1e-2, threads=1)
    )
    assert isinstance(clf, Classifier)
    assert clf.fit(texts, labels) is clf
    preds = clf.predict(probe)
    assert [p.label for p in preds] == ["refund", "fee", "fraud"]
    assert clf.loss_log_[-1]["last_loss"] < 0.5 * clf.loss_log_[0]["epoch_mean_loss"]
    for p in preds:
        assert sum(p.probs.values()) == pytest.approx(1.0, abs=1e-5) and p.confidence == max(p.probs.values())
        assert p.usage.input_tokens > 2 and p.usage.latency_s > 0
    again = clf.predict(probe[::-1])[::-1]  # dropout off, order and batch composition do not matter
    assert [(p.label, round(p.confidence, 5)) for p in again] == [(p.label, round(p.confidence, 5)) for p in preds]
    info = clf.run_info()
    assert info["train_steps"] == 30 and info["train_wall_s"] > 0 and info["hardware"] == "cpu-2core"
    assert "30 steps" in clf.model_name and "lr 0.001, head lr 0.01" in clf.model_name


def test_bad_settings_are_one_line_errors():
    from dispute_classifier.core.errors import UserError
    from finetune.encoder import EncoderConfig

    with pytest.raises(UserError, match="encoder.learning_rate must be greater than 0"):
        EncoderConfig(learning_rate=0)
    with pytest.raises(UserError, match="encoder.epochs must be > 0"):
        EncoderConfig(epochs=0)


def test_runs_go_through_the_shared_evaluator(tmp_path, monkeypatch, tiny_bert):
    """validation then test, as the tuning rule says: records with category finetuned, the
    training time the verdict prices, and every prediction in the log."""
    from dispute_classifier.core.plugins import get_approach
    from dispute_classifier.core.runconfig import run_config
    from dispute_classifier.core.task import load_data, load_task
    from evaluation.evaluate import evaluate_config

    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    task = write_task(
        tmp_path, train=ROWS, test=[("refund please 99", "refund"), ("why this fee 99", "fee"), ("not my payment 99", "fraud")]
    )
    assert get_approach("finetuned-encoder").category == "finetuned"
    data = load_data(load_task(str(task)))
    settings = {"encoder": {"model": str(tiny_bert), "max_steps": 4, "batch_size": 8}}
    for split in ("validation", "test"):
        cfg = run_config(dict(task=str(task), approach="finetuned-encoder", split=split, runs_dir=str(tmp_path / "runs"), **settings))
        run, _ = evaluate_config(cfg, data, progress=False)
        record = json.loads((run.path / "record.json").read_text())
        assert record["split"] == split and record["category"] == "finetuned"
        assert record["extra"]["train_steps"] == 4 and record["extra"]["train_wall_s"] > 0
        lines = (run.path / "predictions.jsonl").read_text().splitlines()
        assert len(lines) == run.metrics["n"] == len(data.split(split))
