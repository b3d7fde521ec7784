"""Training throughput (tokens/s, peak memory) and fine-tuned inference (queries/s).

    make bench                                   # tiny LLaMA (fast, what CI runs once)
    BENCH_REAL_MODEL=1 pytest benchmarks/test_bench_finetune.py --benchmark-only
                                                 # SmolLM2-135M on the real task (minutes)
Levers to compare: train.threads, train.batch_size, train.max_length / prompt.style,
train.packing, dtype. Results go to benchmark.extra_info (tokens_per_s, peak_memory_mb).
"""

import os
import resource
import time

import pytest

from dispute_classifier.core.prompts import PromptConfig, answer_message, build_messages
from dispute_classifier.core.task import load_task
from finetune.recipe import load_recipe

REAL = os.environ.get("BENCH_REAL_MODEL") == "1"
TEXTS = [
    "I was charged twice for the same coffee",
    "someone used my card details",
    "the refund still is not on my account",
    "the ATM gave me 20 less than I asked for",
    "why is there a fee for my transfer",
    "the exchange rate on my purchase was wrong",
    "I don't recognise this direct debit",
    "my friend says my transfer never arrived",
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

    from dispute_classifier.core.model_source import load_tokenizer
    from finetune.train import build_model, build_trainer

    recipe = load_recipe(
        "smollm2-135m-lora-cpu",
        [f"model={model_name}", "train.max_steps=2", "train.batch_size=8", f"train.threads={threads}", "train.save_steps=1000"],
    )
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
    benchmark.extra_info.update(
        {
            "threads": threads,
            "tokens_per_step": tokens / 2,
            "tokens_per_s": tokens / benchmark.stats.stats.mean if benchmark.stats else None,
            "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


def test_finetuned_inference_queries_per_second(benchmark, model_name):
    from dispute_classifier.core.backends.local import LocalBackend, LocalConfig

    task = load_task("disputes")
    backend = LocalBackend(LocalConfig(model=model_name, batch_size=8))
    msgs = [build_messages(task, t, PromptConfig(style="short")).messages for t in TEXTS]
    preds = benchmark.pedantic(backend.classify, args=(msgs, task.label_list), rounds=2, iterations=1)
    assert len(preds) == len(TEXTS)
    benchmark.extra_info["queries"] = len(TEXTS)
    benchmark.extra_info["input_tokens_per_query"] = sum(p.usage.input_tokens for p in preds) / len(preds)


HEAD_CASES = [  # (quantize, batch size, machine): batch 1 is a service answering one request at a time
    ("none", 8, "idle"),
    ("none", 32, "idle"),
    ("none", 1, "idle"),
    ("int8", 8, "idle"),
    ("int8", 32, "idle"),
    ("int8", 1, "idle"),
    ("none", 8, "busy, free-core threads"),
    ("none", 8, "busy, 2 threads"),
]


@pytest.fixture(scope="module")
def head_model(tmp_path_factory, tiny_llama):
    """(saved classification-head model, texts, gold labels): $BENCH_FINETUNED_MODEL scored on the
    disputes validation split, else a tiny LLaMA head trained 2 steps on a toy task."""
    from dispute_classifier.core.task import load_data, load_task

    if os.environ.get("BENCH_FINETUNED_MODEL"):
        from finetune.classifier import FinetunedClassifier

        card = FinetunedClassifier(os.environ["BENCH_FINETUNED_MODEL"]).card
        validation = load_data(load_task(card.get("task_file") or card["task"])).split("validation")
        return os.environ["BENCH_FINETUNED_MODEL"], None, validation.texts, validation.labels
    from finetune.train import train
    from tests.conftest import write_task

    tmp = tmp_path_factory.mktemp("head")
    rows = [
        (f"{w} {i}", label)
        for label, w in (("refund", "refund please"), ("fee", "why this fee"), ("fraud", "not my payment"))
        for i in range(12)
    ]
    task = write_task(tmp, train=rows, test=rows[:3])
    recipe = load_recipe(
        "smollm2-135m-lora-cls-cpu",
        [
            f"task={task}",
            f"model={tiny_llama}",
            "train.max_steps=2",
            "train.batch_size=4",
            "train.warmup_steps=0",
            "eval_splits=[]",
            "name=bench-head",
        ],
    )
    train(recipe, models_root=tmp / "models")
    return "bench-head", str(tmp / "models"), [t for t, _ in rows] * 4, [g for _, g in rows] * 4


@pytest.mark.parametrize(("quantize", "batch", "machine"), HEAD_CASES)
def test_head_inference_queries_per_second(benchmark, head_model, quantize, batch, machine):
    """Steady-state queries/s of the classification head (model loaded before the clock starts).
    "busy": another process spins on one core meanwhile; the default threads are then the one
    free core, against 2 threads fighting it for the core."""
    import subprocess
    import sys

    from finetune.classifier import FinetunedClassifier

    ref, models_dir, texts, gold = head_model
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if machine.startswith("busy") else None
    try:
        if spinner:
            time.sleep(1.0)  # let it take its core before threads are chosen
        threads = 2 if machine == "busy, 2 threads" else None
        clf = FinetunedClassifier(ref, batch_size=batch, quantize=quantize, threads=threads, models_dir=models_dir)
        clf.fit(texts[:1], gold[:1])  # loads the model
        clf.predict(texts[:2])  # warm
        import torch

        used = torch.get_num_threads()
        work = texts[:96] if batch == 1 else texts
        seconds: list[float] = []

        def run():
            t0 = time.perf_counter()
            out = [p for t in work for p in clf.predict([t])] if batch == 1 else clf.predict(work)
            seconds.append(time.perf_counter() - t0)  # also when --benchmark-disable leaves no stats
            return out

        preds = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
    assert len(preds) == len(work) and all(p.label in clf.labels for p in preds)
    accuracy = sum(p.label == g for p, g in zip(preds, gold)) / len(work)
    qps = len(work) / seconds[-1]
    benchmark.extra_info.update({"queries": len(work), "queries_per_s": qps, "accuracy": accuracy, "threads": used})
    print(
        f"\n{clf.model_name} quantize={quantize} batch={batch} {machine}: {qps:.1f} queries/s with {used} thread(s),"
        f" accuracy {accuracy * 100:.2f} % on {len(work)}"
    )
