"""Training throughput (tokens/s, peak memory) and fine-tuned inference (queries/s).

    make bench                                   # tiny LLaMA (fast, what CI runs once)
    BENCH_REAL_MODEL=1 pytest benchmarks/test_bench_finetune.py --benchmark-only
                                                 # SmolLM2-135M on the real task (minutes)
Levers to compare: train.threads, train.batch_size, train.max_length / prompt.style,
train.packing, dtype. Results go to benchmark.extra_info (tokens_per_s, peak_memory_mb).
"""

import os
import resource

import pytest

from dispute_classifier.core.prompts import PromptConfig, answer_message, build_messages
from dispute_classifier.core.task import load_task
from finetune.recipe import load_recipe

REAL = os.environ.get("BENCH_REAL_MODEL") == "1"
TEXTS = [
    "I was charged twice for the same coffee", "someone used my card details", "the refund still is not on my account",
    "the ATM gave me 20 less than I asked for", "why is there a fee for my transfer", "the exchange rate on my purchase was wrong",
    "I don't recognise this direct debit", "my friend says my transfer never arrived",
]


@pytest.fixture(scope="module")
def model_name(request):
    if REAL:
        return "smollm2-135m-instruct"
    return str(request.getfixturevalue("tiny_llama"))


@pytest.fixture(scope="module")
def rows():
    task = load_task("disputes")
    labels = task.label_list
    return [
        {"prompt": build_messages(task, t, PromptConfig(style="short")).messages, "completion": [answer_message(labels[i % len(labels)])]}
        for i, t in enumerate(TEXTS * 4)
    ]


@pytest.mark.parametrize("threads", [1, 2])
def test_training_tokens_per_second(benchmark, model_name, rows, tmp_path, threads):
    import torch

    from dispute_classifier.core.models import load_tokenizer
    from finetune.train import build_model, build_trainer

    recipe = load_recipe("smollm2-135m-lora-cpu", [f"model={model_name}", "train.max_steps=2", "train.batch_size=8", f"train.threads={threads}", "train.save_steps=1000"])
    torch.set_num_threads(threads)
    tok = load_tokenizer(model_name)
    model = build_model(recipe, tok, 16)
    trainer = build_trainer(recipe, model, tok, rows, tmp_path / "ckpt")
    tokens = sum(len(tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=False)) for r in rows[:16])

    def two_steps():
        trainer.args.max_steps = 2
        trainer.train()

    benchmark.pedantic(two_steps, rounds=1, iterations=1)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e] or [trainer.state.log_history[-1].get("train_loss")]
    assert trainer.state.global_step == 2 and all(loss is not None and loss == loss for loss in losses)  # two real steps, finite loss
    benchmark.extra_info.update({
        "threads": threads, "tokens_per_step": tokens / 2,
        "tokens_per_s": tokens / benchmark.stats.stats.mean if benchmark.stats else None,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })


def test_finetuned_inference_queries_per_second(benchmark, model_name):
    from dispute_classifier.core.backends.local import LocalBackend, LocalConfig

    task = load_task("disputes")
    backend = LocalBackend(LocalConfig(model=model_name, batch_size=8))
    msgs = [build_messages(task, t, PromptConfig(style="short")).messages for t in TEXTS]
    preds = benchmark.pedantic(backend.classify, args=(msgs, task.label_list), rounds=2, iterations=1)
    assert len(preds) == len(TEXTS)
    benchmark.extra_info["queries"] = len(TEXTS)
    benchmark.extra_info["input_tokens_per_query"] = sum(p.usage.input_tokens for p in preds) / len(preds)
