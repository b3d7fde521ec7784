"""The evaluator writes complete run records; compare pairs them honestly."""

import json

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.core.types import INVALID, ClassifierBase, Prediction, Usage
from evaluation.compare import compare, format_leaderboard
from evaluation.evaluate import evaluate
from evaluation.runs import read_run, scan_runs


class Echo(ClassifierBase):
    """Predicts the label whose name appears in the text, else the first label; records the
    texts it was fitted on so the test can check the test split never leaks into fit."""

    name = "echo"

    def __init__(self, labels, invalid_every=0):
        self.labels = labels
        self.invalid_every = invalid_every

    def fit(self, texts, labels):
        self.fitted_ = list(texts)
        return self

    def predict(self, texts):
        out = []
        for i, t in enumerate(texts):
            label = next((lab for lab in self.labels if lab in t), self.labels[0])
            if self.invalid_every and i % self.invalid_every == 0:
                label = INVALID
            out.append(Prediction(label, 0.9, Usage(input_tokens=len(t.split()))))
        return out


@pytest.fixture
def toy_data(toy_task):
    return load_data(load_task(toy_task))


def test_run_record_is_complete(toy_data, tmp_path):
    clf = Echo(toy_data.spec.label_list)
    run = evaluate(
        clf, toy_data, "test", approach="echo", category="classical", config={"x": 1}, runs_root=tmp_path / "runs", progress=False
    )
    assert not set(clf.fitted_) & set(toy_data.split("test").texts)
    loaded = read_run(run.path)
    meta = loaded.meta
    raw = meta.to_dict()
    for key in (
        "schema",
        "run_id",
        "task",
        "split",
        "approach",
        "config",
        "config_hash",
        "seed",
        "git",
        "versions",
        "started_at",
        "finished_at",
        "data",
        "metrics",
    ):
        assert key in raw, key
    assert meta.data.sha256["train"] == toy_data.sha256["train"]
    assert meta.data.n_fit == 30 and meta.data.fit_split == "train+validation"
    m = meta.metrics
    assert m["n"] == 6 and 0 <= m["accuracy"] <= 1 and len(m["accuracy_ci95"]) == 2
    for key in (
        "macro_f1",
        "per_class",
        "confusion",
        "invalid_rate",
        "latency_p50_s",
        "latency_p95_s",
        "throughput_qps",
        "cost_per_query_usd",
        "cost_per_1k_usd",
    ):
        assert key in m
    assert m["cost_per_1k_usd"] == pytest.approx(m["cost_per_query_usd"] * 1000)
    row = loaded.predictions[0]
    assert set(row) >= {"id", "text", "gold", "predicted", "confidence", "input_tokens", "output_tokens", "latency_s", "cost_usd"}
    # the accuracy in the record is recomputable from the predictions
    assert m["accuracy"] == sum(p["gold"] == p["predicted"] for p in loaded.predictions) / 6


def test_invalid_outputs_are_counted(toy_data, tmp_path):
    run = evaluate(
        Echo(toy_data.spec.label_list, invalid_every=2),
        toy_data,
        "test",
        approach="echo",
        category="classical",
        runs_root=tmp_path,
        progress=False,
    )
    assert run.metrics["invalid_rate"] == pytest.approx(0.5)


def test_limit_is_recorded(toy_data, tmp_path):
    run = evaluate(
        Echo(toy_data.spec.label_list), toy_data, "test", approach="echo", category="classical", limit=3, runs_root=tmp_path, progress=False
    )
    assert run.meta.data.limit == 3 and run.metrics["n"] == 3


def test_api_billing_with_unknown_price_reports_unknown_cost(toy_data, tmp_path):
    clf = Echo(toy_data.spec.label_list)
    clf.billing = "api"  # per-query cost None: the model had no price-table entry
    run = evaluate(clf, toy_data, "test", approach="echo", category="classical", runs_root=tmp_path, progress=False)
    assert run.metrics["cost_per_query_usd"] is None and run.metrics["cost_per_1k_usd"] is None


def test_compare_leaderboard_and_mcnemar(toy_data, tmp_path):
    a = evaluate(
        Echo(toy_data.spec.label_list), toy_data, "test", approach="good", category="classical", runs_root=tmp_path, progress=False
    )
    b = evaluate(
        Echo(toy_data.spec.label_list, invalid_every=1),
        toy_data,
        "test",
        approach="bad",
        category="classical",
        runs_root=tmp_path,
        progress=False,
    )
    comp = compare([read_run(b.path), read_run(a.path)])
    assert [r.meta.approach for r in comp.runs] == ["good", "bad"]
    (pair,) = comp.pairs
    assert pair["b_only"] == 0 and pair["a_only"] == round(a.metrics["accuracy"] * 6)
    text = format_leaderboard(comp)
    assert "good" in text and "p=" in text


def test_compare_refuses_different_examples(toy_data, tmp_path):
    a = evaluate(
        Echo(toy_data.spec.label_list), toy_data, "test", approach="full", category="classical", runs_root=tmp_path, progress=False
    )
    b = evaluate(
        Echo(toy_data.spec.label_list), toy_data, "test", approach="part", category="classical", limit=3, runs_root=tmp_path, progress=False
    )
    (pair,) = compare([read_run(a.path), read_run(b.path)]).pairs
    assert "not run on the same examples" in pair["refused"]


def test_compare_refuses_mixed_splits(toy_data, tmp_path):
    a = evaluate(Echo(toy_data.spec.label_list), toy_data, "test", approach="x", category="classical", runs_root=tmp_path, progress=False)
    b = evaluate(
        Echo(toy_data.spec.label_list), toy_data, "validation", approach="x", category="classical", runs_root=tmp_path, progress=False
    )
    with pytest.raises(UserError, match="different tasks/splits"):
        compare([read_run(a.path), read_run(b.path)])


def test_corrupt_and_foreign_records(toy_data, tmp_path):
    good = evaluate(
        Echo(toy_data.spec.label_list), toy_data, "test", approach="x", category="classical", runs_root=tmp_path / "runs", progress=False
    )
    tmp_path = tmp_path / "runs"
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "record.json").write_text("{not json")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "record.json").write_text(json.dumps({"schema": "mlflow", "run_id": "x"}))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="corrupt run record"):
        read_run(corrupt)
    with pytest.raises(UserError, match="not a dispute-classifier run record"):
        read_run(foreign)
    truncated = good.path / "predictions.jsonl"
    lines = truncated.read_text().splitlines()
    runs, skipped = scan_runs(tmp_path)
    assert len(runs) == 1 and len(skipped) == 3
    truncated.write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(UserError, match="2 predictions, record says 6"):
        read_run(good.path)
