"""The in-process transformers backend on a tiny LLaMA built from a config (no downloads)."""

import pytest
import torch

from dispute_classifier.core.backends.local import (
    LocalBackend,
    LocalConfig,
    completion_ids,
    prompt_ids,
)
from dispute_classifier.core.prompts import PromptConfig, build_messages, parse_answer
from dispute_classifier.core.task import load_task
from dispute_classifier.core.types import INVALID

TEXTS = [
    "I was charged twice for coffee",
    "my card was stolen",
    "where is my refund?",
    "ATM gave me less cash",
    "fee on my transfer",
    "a" * 400,
]


@pytest.fixture(scope="module")
def setup(tiny_llama):
    task = load_task("disputes")
    backend = LocalBackend(LocalConfig(model=str(tiny_llama), batch_size=4))
    msgs = [build_messages(task, t, PromptConfig(style="short")).messages for t in TEXTS]
    return task, backend, msgs


def test_constrained_decoding_only_returns_task_labels(setup):
    task, backend, msgs = setup
    preds = backend.classify(msgs, task.label_list)
    assert len(preds) == len(TEXTS)
    assert all(p.label in task.labels for p in preds)
    assert all(0 < p.confidence <= 1 for p in preds)
    assert all(p.usage.input_tokens > 0 and p.usage.output_tokens > 0 for p in preds)


def test_batched_equals_one_by_one(setup):
    task, backend, msgs = setup
    ids = [prompt_ids(backend.tokenizer, m) for m in msgs]  # prompts of different lengths: left padding
    assert len({len(i) for i in ids}) > 1
    batched = backend.label_logprobs(ids, task.label_list)
    single = torch.cat([backend.label_logprobs([i], task.label_list) for i in ids])
    torch.testing.assert_close(batched, single, atol=1e-3, rtol=1e-4)
    one = LocalBackend(LocalConfig(model=backend.config.model, batch_size=1), model=backend.model, tokenizer=backend.tokenizer)
    assert [p.label for p in one.classify(msgs, task.label_list)] == [p.label for p in backend.classify(msgs, task.label_list)]


def test_scores_equal_a_full_forward_pass(setup):
    """The KV-cache continuation trick gives the same log-probabilities as scoring the whole
    prompt + label sequence in one pass."""
    task, backend, msgs = setup
    pid = prompt_ids(backend.tokenizer, msgs[1])
    got = backend.label_logprobs([pid], task.label_list)[0]
    for j in (0, 7, 15):
        comp = completion_ids(backend.tokenizer, msgs[1], task.label_list[j])
        with torch.no_grad():
            logp = torch.log_softmax(backend.model(torch.tensor([pid + comp])).logits.float(), -1)[0]
        want = sum(logp[len(pid) - 1 + k, comp[k]].item() for k in range(len(comp)))
        assert got[j].item() == pytest.approx(want, abs=1e-3)


def test_eval_mode_and_deterministic(setup):
    task, backend, msgs = setup
    backend.model.train()  # as get_peft_model or a Trainer would leave it
    first = backend.classify(msgs, task.label_list)
    assert not backend.model.training
    second = backend.classify(msgs, task.label_list)
    assert [(p.label, p.confidence) for p in first] == [(p.label, p.confidence) for p in second]


def test_completion_is_label_plus_end_of_turn_and_no_double_bos(setup):
    task, backend, msgs = setup
    tok = backend.tokenizer
    comp = completion_ids(tok, msgs[0], "request_refund")
    assert tok.decode(comp) == "request_refund" + tok.eos_token
    pid = prompt_ids(tok, msgs[0])
    assert not (pid[0] == pid[1] == tok.bos_token_id)


def test_free_mode_keeps_raw_text_and_flags_invalid(setup):
    task, backend, msgs = setup
    free = LocalBackend(
        LocalConfig(model=backend.config.model, mode="free", max_new_tokens=4), model=backend.model, tokenizer=backend.tokenizer
    )
    preds = free.classify(msgs[:2], task.label_list)
    for p in preds:
        assert p.raw is not None
        assert p.label == parse_answer(p.raw, task.label_list)
        assert p.label in task.labels or p.label == INVALID
