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

The instructions belong to the task: its YAML may set ``prompt.instructions``,
``prompt.short_instructions`` and ``prompt.domain``; otherwise they are written from the task's
``description``, never from the dispute domain. A ``PromptConfig`` setting overrides both.

Customer text is untrusted: a text that contains a chat template's control tokens
(``<|im_end|>``, ``<|start_header_id|>``, ``[INST]``...) must not be able to close its turn
and write an assistant turn. `neutralise` breaks every such marker with a zero-width space
before the text enters any prompt; the local backends also break the tokenizer's own
special tokens (`dispute_classifier.core.backends.local.prompt_ids`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

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
    instructions: str | None = None
    """Instructions of the labels style (default: the task's prompt.instructions, else written from its description)."""
    short_instructions: str | None = None
    """The one-line instructions of the short style (default: the task's prompt.short_instructions, else written from its domain)."""


ZWSP = "\u200b"
CONTROL_MARKERS: tuple[str, ...] = (
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|end|>",
    "<s>",
    "</s>",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<start_of_turn>",
    "<end_of_turn>",
)
"""Control tokens of common chat templates (ChatML, LLaMA-3, LLaMA-2/Mistral, Phi, Gemma)."""
_GENERIC = re.compile(r"<\|[^|<>\s]{1,40}\|>")  # any <|word|> marker, whatever the model


def neutralise(text: str, specials: Iterable[str] = ()) -> str:
    """``text`` with every chat control token broken by a zero-width space after its first
    character, so no tokenizer reads it as a control token and no template sees a role marker.
    ``specials`` adds a tokenizer's own special tokens to the common ones."""
    markers = sorted({*CONTROL_MARKERS, *(s for s in specials if len(s) > 1)}, key=len, reverse=True)
    for marker in markers:
        if marker in text:
            text = text.replace(marker, marker[0] + ZWSP + marker[1:])
    return _GENERIC.sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)


def task_instructions(task: TaskSpec) -> str:
    """The labels-style instructions of ``task``: its own, else written from its description."""
    if task.prompt.instructions:
        return task.prompt.instructions.strip()
    about = f" about {task.prompt.domain}" if task.prompt.domain else ""
    return f"You sort messages{about} into categories. Answer with exactly one category name from the list, and nothing else."


def task_short_instructions(task: TaskSpec) -> str:
    """The short-style instructions of ``task``: its own, else written from its domain/description."""
    if task.prompt.short_instructions:
        return task.prompt.short_instructions.strip()
    what = task.prompt.domain or (first_sentence(task.description) if task.description else "the message")
    return f"Classify this message ({what}). Answer with the category name only."


_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")  # a full stop followed by a space: "93.66" is no sentence end


def first_sentence(text: str, limit: int = 120) -> str:
    """The first sentence of ``text`` without its full stop, never cut mid-word: a sentence
    longer than ``limit`` characters ends at the last whole word that fits, followed by "…"."""
    text = " ".join(text.split())
    match = _SENTENCE_END.search(text)
    sentence = text[: match.start()] if match else text
    if len(sentence) <= limit:
        return sentence
    cut = sentence[: limit + 1].rsplit(" ", 1)[0] if " " in sentence[: limit + 1] else sentence[:limit]
    if cut.count("(") > cut.count(")"):  # the prompt wraps this in parentheses: drop a half-open aside
        cut = cut[: cut.rindex("(")]
    return cut.rstrip(" ,;:-") + " …"


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
    query, truncated = _clip(neutralise(text), cfg.max_text_chars)
    examples = [(neutralise(t), label) for t, label in examples]
    if cfg.style == "bare":
        return Prompt([{"role": "user", "content": query}], truncated)
    if cfg.style == "short":
        system = cfg.short_instructions or task_short_instructions(task)
    else:
        system = f"{cfg.instructions or task_instructions(task)}\n\n"
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
