"""The prompt ladder and RAG: what goes into each prompt, and where the examples come from.

A recording backend stands in for the LLM, so these tests see every message the
classifier would send, through the real evaluator on a toy task.
"""

from __future__ import annotations

import pytest

from baselines.prompted import (
    FewShotConfig,
    PromptedClassifier,
    RagConfig,
    few_shot_pool,
)
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.prompts import PromptConfig
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.core.types import Prediction
from evaluation.evaluate import evaluate
from tests.conftest import TOY_TRAIN, write_task

PRICES = PriceTable(hardware={"cpu-2core": 0.1})


class RecordingBackend:
    """Answers the first label and keeps every prompt it was given."""

    billing = "self-hosted"
    model_label = "recorder (test)"
    model_id = "recorder"
    where = "test"

    def __init__(self) -> None:
        self.prompts: list[list[dict[str, str]]] = []
        self.started = 0

    def start(self):
        self.started += 1
        return self

    def classify(self, prompts, labels):
        self.prompts.extend(prompts)
        return [Prediction(labels[0]) for _ in prompts]

    def describe(self):
        return {"backend": "recorder"}

    def estimate_cost(self, prompts, labels):
        return None

    def close(self):
        pass


def example_texts(prompt: list[dict[str, str]]) -> list[str]:
    """Texts shown as examples: every user turn except the final query."""
    return [m["content"] for m in prompt[:-1] if m["role"] == "user"]


def assert_examples_from_fit_only(data, backend, split, n_examples):
    """Every example shown is a fit-split text; none is from the evaluated or test split."""
    fit = set(data.fit_split(split).texts)
    held_out = set(data.split(split).texts) | set(data.split("test").texts)
    for prompt in backend.prompts:
        shown = example_texts(prompt)
        assert len(shown) == n_examples and set(shown) <= fit and not set(shown) & held_out


def run(toy_task, tmp_path, variant, split="test", **kw):
    task = load_task(toy_task)
    data = load_data(task)
    backend = RecordingBackend()
    clf = PromptedClassifier(task, variant, backend, **kw)
    record = evaluate(clf, data, split, approach=variant, runs_root=tmp_path / "runs", prices=PRICES, progress=False)
    return data, backend, record


@pytest.mark.parametrize("split", ["test", "validation"])
def test_few_shot_examples_come_from_the_fit_split_only(toy_task, tmp_path, split):
    data, backend, record = run(toy_task, tmp_path, "few-shot", split, few_shot=FewShotConfig(k_per_label=2))
    assert_examples_from_fit_only(data, backend, split, 6)
    assert len({tuple(example_texts(p)) for p in backend.prompts}) == 1  # fixed examples
    assert record.meta.extra["few_shot_examples"] == 6 and backend.started == 1


@pytest.mark.parametrize("variant", ["few-shot", "rag"])
def test_the_record_keeps_the_first_requests_exactly_as_sent(toy_task, tmp_path, variant):
    _, backend, record = run(toy_task, tmp_path, variant)
    sent = record.meta.extra["requests_sample"]
    assert sent == backend.prompts[: len(sent)] and len(sent) == 3
    assert any(m["role"] == "assistant" for m in sent[0])  # the examples shown are in it, not a template


def test_few_shot_pool_is_seeded_and_balanced():
    texts = [t for t, _ in TOY_TRAIN]
    labels = [label for _, label in TOY_TRAIN]
    a = few_shot_pool(texts, labels, ["refund", "fee", "fraud"], 2, seed=0)
    assert a == few_shot_pool(texts, labels, ["refund", "fee", "fraud"], 2, seed=0)
    assert a != few_shot_pool(texts, labels, ["refund", "fee", "fraud"], 2, seed=1)
    assert sorted(labels[i] for i in a) == ["fee", "fee", "fraud", "fraud", "refund", "refund"]
    assert len(few_shot_pool(texts[:11], labels[:11], ["refund", "fee", "fraud"], 5, seed=0)) == 6  # 5 refund, 1 fee, 0 fraud


@pytest.mark.parametrize("split", ["test", "validation"])
def test_rag_never_retrieves_held_out_examples(toy_task, tmp_path, split):
    data, backend, record = run(toy_task, tmp_path, "rag", split, rag=RagConfig(k=4))
    assert_examples_from_fit_only(data, backend, split, 4)
    index_size = len(data.fit_split(split))
    assert record.meta.extra["rag"] == {"k": 4, "model": "all-MiniLM-L6-v2", "index_size": index_size}


def test_rag_retrieves_the_most_similar_examples_closest_last(toy_task, tmp_path):
    data, backend, _ = run(toy_task, tmp_path, "rag", rag=RagConfig(k=3))
    by_query = {p[-1]["content"]: p for p in backend.prompts}
    prompt = by_query["I want a refund for order 99"]
    assert [m["content"] for m in prompt if m["role"] == "assistant"] == ["refund"] * 3
    assert prompt[0]["role"] == "system" and "fraud:" in prompt[0]["content"]  # label descriptions too


def test_zero_shot_sends_the_bare_text_and_prompt_sends_every_label(toy_task, tmp_path):
    data, backend, record = run(toy_task, tmp_path, "zero-shot", prompt=PromptConfig(style="labels"))
    texts = data.split("test").texts  # (then the evaluator's per-request latency probe sends some again)
    assert backend.prompts[: len(texts)] == [[{"role": "user", "content": t}] for t in texts]
    assert record.meta.extra["prompt_style"] == "bare" and record.meta.model == "recorder"
    _, backend, _ = run(toy_task, tmp_path, "prompt")
    system = backend.prompts[0][0]["content"]
    assert all(f"- {label}:" in system for label in ("refund", "fee", "fraud"))


def test_over_long_texts_are_truncated_and_counted_in_the_run_record(tmp_path, monkeypatch):
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    long_test = [("refund " * 100, "refund"), ("fee " * 100, "fee"), ("fraud", "fraud")]
    folder = tmp_path / "task"
    folder.mkdir()
    path = write_task(folder, test=long_test)
    _, backend, record = run(path, tmp_path, "prompt", prompt=PromptConfig(max_text_chars=50))
    assert record.meta.extra["truncated_texts"] == 2 and record.meta.extra["queries"] == 3
    assert max(len(p[-1]["content"]) for p in backend.prompts) <= 52


def test_bad_settings_and_labels_are_user_errors(toy_task):
    task = load_task(toy_task)
    with pytest.raises(UserError, match="few_shot.k_per_label"):
        FewShotConfig(k_per_label=0)
    with pytest.raises(UserError, match="rag.k"):
        RagConfig(k=0)
    with pytest.raises(UserError, match="unknown prompt variant"):
        PromptedClassifier(task, "magic", RecordingBackend())  # type: ignore[arg-type]
    with pytest.raises(UserError, match="'chargeback' is not a label"):
        PromptedClassifier(task, "prompt", RecordingBackend()).fit(["x"], ["chargeback"])
