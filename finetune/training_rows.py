"""Training rows from a task split, built by the project's one prompt builder.

Generative rows use TRL's prompt–completion conversational format: ``prompt`` is exactly the
message list that inference sends, ``completion`` is the assistant turn with the label. TRL
then renders both with the tokenizer's chat template and computes the loss on the completion
only. Classification rows carry the same prompt, rendered with the generation prompt, and the
label index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dispute_classifier.core.backends.local import prompt_ids, safe_messages
from dispute_classifier.core.datacheck import normalise
from dispute_classifier.core.prompts import PromptConfig, answer_message, build_messages
from dispute_classifier.core.task import Split, TaskData, stratified_sample


@dataclass
class FitRows:
    """The rows a model is trained on, and what was left out to keep the test split clean."""

    split: Split
    dropped_test_overlap: list[str]
    """Ids of training rows removed because their normalised text is also a test text."""


def fit_rows(data: TaskData, fit_split: str, limit: int | None = None, seed: int = 0, override: Split | None = None) -> FitRows:
    """Training rows for ``fit_split`` (``train`` or ``train+validation``), never test rows;
    ``override`` trains on those rows instead (the learning-curve and noise experiments).

    BANKING77 has a few test texts that also occur in train; training on them would inflate
    the test score, so such rows are removed here and reported."""
    rows = override if override is not None else data.fit_split("test") if fit_split == "train+validation" else data.split("train")
    test_texts = {normalise(t) for t in data.split("test").texts}
    keep = [i for i, t in enumerate(rows.texts) if normalise(t) not in test_texts]
    dropped = [rows.ids[i] for i in range(len(rows)) if i not in set(keep)]
    clean = rows.subset(keep, rows.name)
    if limit:
        clean = stratified_sample(clean, limit, seed)
    return FitRows(clean, dropped)


def generative_rows(data: TaskData, split: Split, prompt: PromptConfig, tokenizer: Any = None) -> list[dict[str, Any]]:
    """``{"prompt": [...messages], "completion": [assistant label]}`` per row; with
    ``tokenizer``, its control tokens in the texts are broken as the inference path does."""

    def messages(text: str) -> list[dict[str, str]]:
        built = build_messages(data.spec, text, prompt).messages
        return safe_messages(tokenizer, built) if tokenizer is not None else built

    return [{"prompt": messages(text), "completion": [answer_message(label)]} for text, label in zip(split.texts, split.labels)]


def classification_rows(data: TaskData, split: Split, prompt: PromptConfig, tokenizer) -> list[dict[str, Any]]:
    """``{"input_ids": prompt ids, "labels": label index}`` per row; prompt ids come from the
    same function the inference path uses."""
    index = {label: i for i, label in enumerate(data.spec.label_list)}
    return [
        {"input_ids": prompt_ids(tokenizer, build_messages(data.spec, text, prompt).messages), "labels": index[label]}
        for text, label in zip(split.texts, split.labels)
    ]
