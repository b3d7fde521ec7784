"""Approach names → their config section and how to build the `Classifier`.

This is the one place that knows every approach. Builders import their modules lazily, so
naming an approach never loads torch unless that approach needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from baselines.classical import EmbeddingConfig, KnnConfig, TfidfConfig
from baselines.prompted import FewShotConfig, LlmConfig, RagConfig
from dispute_classifier.errors import UserError
from dispute_classifier.prompts import PromptConfig
from dispute_classifier.types import Classifier


@dataclass
class FinetunedConfig:
    """A saved fine-tuned model from the registry (`dispute-classifier finetune list`)."""

    model: str = "smollm2-135m-lora-cpu"
    """Saved model as NAME or NAME:VERSION (newest finished version when VERSION is left out)."""
    batch_size: int = 8
    """Queries per forward pass."""


@dataclass
class RunConfig:
    """One evaluation: which task, approach and split, and every approach's settings."""

    task: str = "disputes"
    """Task name (data/tasks/<name>.yaml) or path to a task YAML file."""
    approach: str = "tfidf"
    """Approach to evaluate: tfidf, embedding, knn, zero-shot, prompt, few-shot, rag or finetuned."""
    split: str = "test"
    """Split to evaluate on: test (report only) or validation (for tuning)."""
    limit: int | None = None
    """Evaluate a seeded, stratified subsample of this many examples (recorded in the run)."""
    seed: int = 0
    """Seed for subsampling, bootstrap intervals and any model randomness."""
    runs_dir: str = "runs"
    """Folder that receives run records."""
    data_dir: str | None = None
    """Folder holding the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    prices: str | None = None
    """Price table YAML (default: evaluation/prices.yaml)."""
    hardware: str | None = None
    """Hardware kind from the price table that self-hosted costs are computed for."""
    tfidf: TfidfConfig = field(default_factory=TfidfConfig)
    """Settings of the tfidf approach."""
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    """Settings of the embedding approach."""
    knn: KnnConfig = field(default_factory=KnnConfig)
    """Settings of the knn approach."""
    finetuned: FinetunedConfig = field(default_factory=FinetunedConfig)
    """Settings of the finetuned approach."""
    llm: LlmConfig = field(default_factory=LlmConfig)
    """The LLM behind zero-shot, prompt, few-shot and rag (--backend sets llm.backend)."""
    prompt: PromptConfig = field(default_factory=PromptConfig)
    """How zero-shot, prompt, few-shot and rag build prompts (zero-shot always uses the bare style)."""
    few_shot: FewShotConfig = field(default_factory=FewShotConfig)
    """Settings of the few-shot approach."""
    rag: RagConfig = field(default_factory=RagConfig)
    """Settings of the rag approach."""

    def __post_init__(self) -> None:
        get_approach(self.approach)  # an unknown name fails here, before any data is loaded
        if self.split not in ("test", "validation"):
            raise UserError(f"split must be 'test' or 'validation', got '{self.split}' (set --split)")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit must be a positive number of examples, got {self.limit} (set --limit)")


def _tfidf(cfg: RunConfig) -> Classifier:
    from baselines.classical import TfidfClassifier

    return TfidfClassifier(cfg.tfidf)


def _embedding(cfg: RunConfig) -> Classifier:
    from baselines.classical import EmbeddingClassifier

    return EmbeddingClassifier(cfg.embedding)


def _knn(cfg: RunConfig) -> Classifier:
    from baselines.classical import KnnClassifier

    return KnnClassifier(cfg.knn)


def _finetuned(cfg: RunConfig) -> Classifier:
    from finetune.classifier import FinetunedClassifier

    return FinetunedClassifier(cfg.finetuned.model, batch_size=cfg.finetuned.batch_size)


def _prompted(variant: str) -> Callable[[RunConfig], Classifier]:
    def build(cfg: RunConfig) -> Classifier:
        from baselines.prompted import PromptedClassifier, make_backend
        from dispute_classifier.task import load_task
        from evaluation.costs import PriceTable

        prices = PriceTable.load(cfg.prices) if cfg.prices else None
        return PromptedClassifier(
            load_task(cfg.task), variant, make_backend(cfg.llm, prices), cfg.prompt, cfg.few_shot, cfg.rag, cfg.seed,  # type: ignore[arg-type]
        )

    return build


@dataclass
class Approach:
    name: str
    summary: str
    build: Callable[[RunConfig], Classifier]
    section: str | tuple[str, ...] | None
    """RunConfig field(s) holding this approach's settings (recorded in the run)."""


APPROACHES: dict[str, Approach] = {
    a.name: a
    for a in [
        Approach("tfidf", "TF-IDF word + char n-grams, logistic regression", _tfidf, "tfidf"),
        Approach("embedding", "all-MiniLM-L6-v2 embeddings, logistic regression", _embedding, "embedding"),
        Approach("knn", "all-MiniLM-L6-v2 embeddings, k-nearest-neighbour vote", _knn, "knn"),
        Approach("finetuned", "a saved LoRA fine-tuned model (--model NAME[:VERSION])", _finetuned, "finetuned"),
        Approach("zero-shot", "LLM on the bare text, answer restricted to the labels", _prompted("zero-shot"), ("llm", "prompt")),
        Approach("prompt", "LLM with instructions and every label described", _prompted("prompt"), ("llm", "prompt")),
        Approach("few-shot", "the prompt plus k seeded training examples per label", _prompted("few-shot"), ("llm", "prompt", "few_shot")),
        Approach("rag", "the prompt plus the k most similar training examples (MiniLM)", _prompted("rag"), ("llm", "prompt", "rag")),
    ]
}


def get_approach(name: str) -> Approach:
    if name not in APPROACHES:
        raise UserError(f"unknown approach '{name}'; choose one of: {', '.join(APPROACHES)}")
    return APPROACHES[name]


def approach_config(cfg: RunConfig) -> dict[str, Any]:
    """The settings that define the approach's result, as recorded in the run."""
    from dispute_classifier.config import to_dict

    approach = get_approach(cfg.approach)
    if isinstance(approach.section, tuple):
        return {name: to_dict(getattr(cfg, name)) for name in approach.section}
    return to_dict(getattr(cfg, approach.section)) if approach.section else {}


def evaluate_config(cfg: RunConfig, data: Any, prices: Any = None, progress: bool = True, reuse: bool = False) -> tuple[Any, bool]:
    """Build the approach of ``cfg`` and run the shared evaluator on it: the one path that
    ``evaluate`` and ``experiment`` share, so both record the same model, extra and hash.

    With ``reuse``, a finished run with the same settings on the same data is returned
    instead of running again. Returns ``(run record, reused)``.
    """
    from evaluation.evaluate import evaluate, run_config_hash
    from evaluation.runs import find_finished_run, runs_dir

    clf = get_approach(cfg.approach).build(cfg)  # cheap: models load on first predict
    config = approach_config(cfg)
    model = getattr(clf, "model_name", None) or getattr(clf, "name", None)
    if reuse:
        cfg_hash = run_config_hash(cfg.approach, config, model=model, limit=cfg.limit, seed=cfg.seed, split=cfg.split)
        found = find_finished_run(runs_dir(cfg.runs_dir), cfg_hash, data.data_hash)
        if found is not None:
            return found, True
    try:
        run = evaluate(
            clf, data, cfg.split, approach=cfg.approach, config=config, runs_root=cfg.runs_dir, limit=cfg.limit,
            seed=cfg.seed, prices=prices, hardware=cfg.hardware, progress=progress, model=model,
        )
    finally:  # LLM approaches stop the llama.cpp server they started
        if hasattr(clf, "close"):
            clf.close()
    return run, False
