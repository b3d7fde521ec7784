"""Queries/s and tokens/query of each prompt variant on the local model, so the cost of a
long prompt is visible next to its accuracy.

    make bench                                # tiny LLaMA built from a config (random weights)
    BENCH_REAL_MODEL=1 make bench             # SmolLM2-135M-Instruct, the model in the README
    pytest benchmarks/test_bench_llm.py --benchmark-only --benchmark-json=bench.json

``extra_info`` of each result holds ``tokens_per_query`` (prompt tokens, from the model's
chat template) and ``queries_per_s``. The tiny model has SmolLM2's tokenizer and chat
template, so its token counts are the real ones; only its speed and answers are not.
Queries come from the disputes test split when $DISPUTE_CLASSIFIER_DATA is set.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from baselines.prompted import VARIANTS, FewShotConfig, PromptedClassifier, RagConfig
from dispute_classifier.core.task import load_task

REAL = bool(os.environ.get("BENCH_REAL_MODEL"))
N_QUERIES = 32 if REAL else 16


@pytest.fixture(scope="module")
def task():
    return load_task("disputes")


@pytest.fixture(scope="module")
def data(task):
    """(fit texts, fit labels, queries): real rows when available, generated otherwise."""
    path = os.environ.get("DISPUTE_CLASSIFIER_DATA")
    if path and (Path(path) / "train.csv").is_file():
        from dispute_classifier.core.task import load_data, stratified_sample

        rows = load_data(task, Path(path))
        fit = rows.fit_split("test")
        return fit.texts, fit.labels, stratified_sample(rows.split("test"), N_QUERIES, 0).texts
    rng = random.Random(0)
    words = "card payment refund fee charged twice transfer cash atm rate exchange not received".split()
    make = lambda n: [" ".join(rng.choices(words, k=12)) for _ in range(n)]  # noqa: E731
    return make(160), [task.label_list[i % len(task.labels)] for i in range(160)], make(N_QUERIES)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from dispute_classifier.core.backends.local import LocalBackend, LocalConfig
    from dispute_classifier.core.model_source import SMOLLM2, build_tiny_llama

    model = SMOLLM2 if REAL else str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))
    return LocalBackend(LocalConfig(model=model)).start()


@pytest.mark.parametrize("variant", VARIANTS)
def test_prompt_variant_throughput(benchmark, task, data, backend, variant):
    fit_texts, fit_labels, queries = data
    clf = PromptedClassifier(task, variant, backend, few_shot=FewShotConfig(k_per_label=1), rag=RagConfig(k=8))
    clf.fit(fit_texts, fit_labels)
    preds = benchmark.pedantic(clf.predict, args=(queries,), rounds=1 if REAL else 2, iterations=1)
    assert len(preds) == len(queries) and all(p.is_valid for p in preds)
    benchmark.extra_info["model"] = backend.config.model if REAL else "tiny-llama (SmolLM2 tokenizer)"
    benchmark.extra_info["queries"] = len(queries)
    benchmark.extra_info["tokens_per_query"] = sum(p.usage.input_tokens for p in preds) / len(preds)
    if benchmark.stats is not None:  # None under --benchmark-disable (the test-suite run)
        benchmark.extra_info["queries_per_s"] = len(queries) / benchmark.stats.stats.mean
