"""The one prompt builder. Every LLM approach — API, local, few-shot, RAG and fine-tuning —
turns (task, text, examples) into chat messages here, and nowhere else.

Chat-formatted strings are never written by hand: a local model renders these messages with
``tokenizer.apply_chat_template``, an API server with its own template.

Styles:
- ``bare``: the customer text alone, no instructions (the "no prompt work" rung);
- ``labels``: instructions plus every label with its description (the optimised prompt;
  few-shot and RAG add examples to it);
- ``short``: one line of instructions and no label list (what fine-tuning trains on, which
  is what makes a fine-tuned query cheap).
The answer a model should give is the label string itself, verbatim.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal, Sequence

from dispute_classifier.core.task import TaskSpec
from dispute_classifier.core.types import INVALID

Style = Literal["bare", "labels", "short"]


@dataclass
class Prompt:
    """Chat messages for one query, and whether the text had to be cut to fit the budget."""

    messages: list[dict[str, str]]
    truncated: bool = False


@dataclass
class PromptConfig:
    """How prompts are built."""

    style: Style = "labels"
    """bare (text only), labels (instructions + label descriptions) or short (fine-tuning)."""
    max_text_chars: int = 1000
    """Character budget for one customer text; longer texts are cut and counted."""
    examples_as_turns: bool = True
    """Give examples as earlier user/assistant turns (True) or as a list in the system message."""
    instructions: str = (
        "You route customer messages about payment disputes to the right category. "
        "Answer with exactly one category name from the list, and nothing else."
    )
    """Instructions of the labels style."""
    short_instructions: str = "Classify the customer's payment dispute. Answer with the category name only."
    """The one-line instructions of the short style."""
    extra: dict[str, str] = field(default_factory=dict)
    """Reserved for task-specific wording; unused by the default prompts."""


def _clip(text: str, budget: int) -> tuple[str, bool]:
    text = text.strip()
    if len(text) <= budget:
        return text, False
    return text[:budget].rstrip() + " …", True


def label_block(task: TaskSpec) -> str:
    """The label list with one description per line."""
    return "\n".join(f"- {label}: {desc}" for label, desc in task.labels.items())


def build_messages(
    task: TaskSpec,
    text: str,
    config: PromptConfig | None = None,
    examples: Sequence[tuple[str, str]] = (),
) -> Prompt:
    """Chat messages asking for the label of ``text``.

    ``examples`` are ``(text, label)`` pairs from the training split (few-shot) or retrieved
    from it (RAG); they are shown in the given order.
    """
    cfg = config or PromptConfig()
    query, truncated = _clip(text, cfg.max_text_chars)
    if cfg.style == "bare":
        return Prompt([{"role": "user", "content": query}], truncated)
    if cfg.style == "short":
        system = cfg.short_instructions
    else:
        system = f"{cfg.instructions}\n\n"
        if task.description:
            system += f"Task: {task.description.strip()}\n\n"
        system += f"Categories:\n{label_block(task)}"
    messages = [{"role": "system", "content": system}]
    if examples and not cfg.examples_as_turns:
        shown = "\n".join(f"Message: {_clip(t, cfg.max_text_chars)[0]}\nCategory: {label}" for t, label in examples)
        messages[0]["content"] += f"\n\nLabelled examples:\n{shown}"
    elif examples:
        for ex_text, ex_label in examples:
            messages.append({"role": "user", "content": _clip(ex_text, cfg.max_text_chars)[0]})
            messages.append({"role": "assistant", "content": ex_label})
    messages.append({"role": "user", "content": query})
    return Prompt(messages, truncated)


def answer_message(label: str) -> dict[str, str]:
    """The assistant turn that answers with ``label`` (the fine-tuning completion)."""
    return {"role": "assistant", "content": label}


def parse_answer(text: str | None, labels: Sequence[str]) -> str:
    """The label a model's raw answer names, or `INVALID`.

    Accepts the label verbatim, the JSON object ``{"label": ...}`` that structured output
    asks for, and the wrappers small models add (surrounding whitespace, quotes, backticks,
    a final full stop); then a case-insensitive match when it is unique. Anything else is
    invalid: the answer is never guessed from a longer text, so the invalid-output rate
    measures how often a model fails to answer in the asked format.
    """
    if text is None:
        return INVALID
    answer = text.strip()
    if answer.startswith("{"):
        try:
            obj = json.loads(answer)
        except json.JSONDecodeError:
            return INVALID
        answer = obj.get("label") if isinstance(obj, dict) else None
        if not isinstance(answer, str):
            return INVALID
    # "." is stripped, "?" is not: one BANKING77 label ends with a question mark
    for _ in range(2):  # '"label".' and '"label."' alike
        answer = answer.strip().strip("`\"'*").removesuffix(".")
    if answer in labels:
        return answer
    folded = [label for label in labels if label.lower() == answer.lower()]
    return folded[0] if len(folded) == 1 else INVALID
