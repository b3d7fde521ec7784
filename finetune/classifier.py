"""A saved fine-tuned model as a `Classifier`, loaded from its registry folder.

The adapter is served unmerged on the same base model it was trained on (4-bit bases stay
4-bit: merging LoRA into quantized weights changes the outputs).
"""

from __future__ import annotations

import inspect
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dispute_classifier.core.backends.local import LocalBackend, LocalConfig, prompt_ids
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.model_source import load_causal_lm
from dispute_classifier.core.plugins import Approach, register_approach
from dispute_classifier.core.prompts import PromptConfig, build_messages
from dispute_classifier.core.task import TaskSpec, load_task
from dispute_classifier.core.threads import set_torch_threads
from dispute_classifier.core.types import ClassifierBase, Prediction, Usage
from finetune import model_store


@dataclass
class FinetunedConfig:
    """A saved fine-tuned model from the registry (`dispute-classifier models list`)."""

    model: str = "smollm2-135m-lora-cpu"
    """Saved model as NAME, NAME:VERSION or NAME@ALIAS (newest finished version when neither is given)."""
    batch_size: int = 8
    """Queries per forward pass."""
    models_dir: str | None = None
    """Folder of saved models (default: $DISPUTE_CLASSIFIER_MODELS, then ./models)."""
    threads: int | None = None
    """torch CPU threads for inference (default: the cores really free, i.e. this process's
    cores less those other processes keep busy now)."""
    quantize: str = "none"
    """CPU inference of a full-precision model: none, or int8 (LoRA merged into the fp32 weights, then dynamic int8 quantisation of the blocks' Linear layers but down_proj)."""

    decoding: str = "constrained"
    """Generative models: constrained (score every label; always a valid label) or free (greedy
    generation, parsed; answers outside the label set count as invalid — how the invalid-answer
    rate of unconstrained decoding is measured)."""

    def __post_init__(self) -> None:
        if self.quantize not in ("none", "int8"):
            raise UserError(f"finetuned.quantize must be none or int8, got '{self.quantize}'")
        if self.decoding not in ("constrained", "free"):
            raise UserError(f"finetuned.decoding must be constrained or free, got '{self.decoding}'")


def load_peft_model(card: dict[str, Any], folder, for_training: bool = False):
    """Base model (as in the recipe) + the saved adapter (unmerged), in eval mode."""
    from peft import PeftModel

    recipe = card["recipe"]
    if recipe["head"] == "classification":
        base = load_sequence_classifier(recipe["model"], len(card["labels"]), recipe["quantization"], recipe["dtype"])
    else:
        base = load_causal_lm(recipe["model"], quantization=recipe["quantization"], dtype=recipe["dtype"])
    model = PeftModel.from_pretrained(base, str(folder / "adapter"), is_trainable=for_training)
    model.eval()
    return model


INT8_SKIP = ("down_proj",)
"""Linear layers left in fp32 by `quantize_int8`."""


def quantize_int8(model: Any, card: dict[str, Any]) -> Any:
    """The adapter merged into the full-precision base, then the Linear layers of its transformer
    blocks (but ``down_proj``) dynamically quantised to int8 for CPU inference. Merging into 4-bit weights would change the outputs, so
    a 4-bit or 8-bit recipe is refused; the evaluator measures what int8 costs in accuracy."""
    import torch

    if card["recipe"]["quantization"] != "none":
        raise UserError(
            f"finetuned.quantize=int8 needs a full-precision model; {card['name']} was trained on a {card['recipe']['quantization']} base"
        )
    from torch.ao.quantization import default_dynamic_qconfig

    merged = model.merge_and_unload()
    merged.eval()
    # The transformer blocks only (the classification / LM head stays fp32), and not down_proj:
    # its inputs carry the large activation outliers of small LLaMA models, and per-tensor int8
    # there took SmolLM2's validation accuracy from 64 % to 35 % (measured; docs/serving.md,
    # "Fine-tuned inference on a CPU").
    layers = {
        name: default_dynamic_qconfig
        for name, module in merged.model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith(INT8_SKIP)
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.ao's eager API, pointed at torchao
        merged.model = torch.ao.quantization.quantize_dynamic(merged.model, layers, dtype=torch.qint8)
    return merged


def load_sequence_classifier(name: str, n_labels: int, quantization: str, dtype: str, pad_token_id: int | None = None):
    """The causal LM's backbone with a linear classification head on its last token."""

    model = load_causal_lm(name, quantization, dtype, auto_class="AutoModelForSequenceClassification", num_labels=n_labels)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id  # the head pools the last non-pad token
    return model


class FinetunedClassifier(ClassifierBase):
    """Predicts with a saved adapter; ``fit`` only checks that the task matches."""

    billing = "self-hosted"

    def __init__(
        self,
        ref: str,
        batch_size: int = 8,
        model: Any = None,
        tokenizer: Any = None,
        folder=None,
        models_dir: str | None = None,
        threads: int | None = None,
        card: dict[str, Any] | None = None,
        quantize: str = "none",
        decoding: str = "constrained",
    ) -> None:
        self.ref = ref
        if card is None:  # a saved model; a model still in training passes its own card (finetune.sweep)
            self.folder = folder or model_store.resolve(ref, Path(models_dir) if models_dir else None)
            card = model_store.read_card(self.folder)
        else:
            self.folder = folder
        self.card = card
        self.threads = threads
        self.quantize = quantize
        if decoding == "free" and self.card["recipe"]["head"] != "generative":
            raise UserError(
                f"finetuned.decoding=free needs a generative model; {ref} has a {self.card['recipe']['head']} head (drop the setting)"
            )
        self.decoding = decoding
        self.name = f"finetuned:{self.card['name']}:v{self.card['version']}"
        self.hardware = self.card["recipe"].get("hardware")
        self.batch_size = batch_size
        self._model = model
        self._tokenizer = tokenizer
        self.labels = list(self.card["labels"])
        self.prompt = PromptConfig(**self.card["recipe"]["prompt"])
        self.task_: TaskSpec | None = None
        self._prefix: list[int] | None = None
        self._prefix_cache: list[tuple[Any, Any]] | None = None
        self._cache_kwarg: str | None = None

    @property
    def model_name(self) -> str:
        """The saved model, and how it is quantised for inference when it is."""
        # free decoding is another way of answering: its records must not stand for the
        # constrained model's in the verdict, which keys records by model
        return self.name + ("+int8" if self.quantize == "int8" else "") + ("+free" if self.decoding == "free" else "")

    @classmethod
    def from_config(cls, config: FinetunedConfig) -> "FinetunedClassifier":
        """The saved model that ``config`` names."""
        return cls(
            config.model,
            batch_size=config.batch_size,
            models_dir=config.models_dir,
            threads=config.threads,
            quantize=config.quantize,
            decoding=config.decoding,
        )

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(str(self.folder / "tokenizer"))
        self._tokenizer.padding_side = "left"
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            set_torch_threads(self.threads)
            self._model = load_peft_model(self.card, self.folder)
            if self.quantize == "int8":
                self._model = quantize_int8(self._model, self.card)
            elif self.card["recipe"]["quantization"] == "none":
                # Merged into full-precision weights the adapter costs nothing per query: the
                # unmerged LoRA's two extra small matmuls on each of 7 projections per block
                # cost more than the prompt's tokens on a CPU. Never into a 4-bit base (that
                # changes the outputs).
                self._model = self._model.merge_and_unload()
        self._model.eval()
        return self._model

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "FinetunedClassifier":
        unknown = sorted(set(labels) - set(self.labels))
        if unknown:
            raise UserError(
                f"model {self.ref} was trained on task '{self.card['task']}', whose labels lack {unknown[:3]};"
                " evaluate it on that task or train a model for this one"
            )
        self.task_ = load_task(self.card.get("task_file") or self.card["task"])
        # Load now, not in the first predict call, so the evaluator's queries/s is the
        # steady rate and the one-time load is not spread over the first batch.
        _ = self.model
        return self

    def fitted_rows(self) -> dict[str, Any] | None:
        """The task, data and splits this model was trained on (the evaluator refuses to score
        it on rows it learnt from)."""
        fit = self.card["data"]["fit_split"]
        return {"task": self.card["task"], "data_hash": self.card["data"].get("data_hash"), "splits": fit.split("+")}

    def run_info(self) -> dict[str, Any]:
        """What the run record's ``extra`` says about this model (for the verdict and dashboard)."""
        t = self.card["training"]
        return {
            "model_dir": str(self.folder.resolve()),
            "head": self.card["recipe"]["head"],
            "quantize": self.quantize,
            "training_cost_usd": t["cost_usd"],
            "train_wall_s": t["wall_s"],
            "hardware": t["hardware"],
            "fit_split": self.card["data"]["fit_split"],
            "base_model": self.card["base_model"]["name"],
            **self.card.get("sweep", {}),  # sweep_study / sweep_trial / sweep_final of a searched model
        }

    def _task(self) -> TaskSpec:
        if self.task_ is None:
            self.task_ = load_task(self.card.get("task_file") or self.card["task"])
        return self.task_

    def messages(self, texts: Sequence[str]) -> list[list[dict[str, str]]]:
        return [build_messages(self._task(), t, self.prompt).messages for t in texts]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if self.card["recipe"]["head"] == "classification":
            return self._predict_head(texts)

        backend = LocalBackend(
            LocalConfig(model=self.ref, batch_size=self.batch_size, mode=self.decoding), model=self.model, tokenizer=self.tokenizer
        )
        return backend.classify(self.messages(texts), self.labels)

    def _predict_head(self, texts: Sequence[str]) -> list[Prediction]:
        """Score with the classification head, fast on a CPU: the prompt's shared opening (the
        chat template's system turn, half of a dispute prompt's tokens) runs once and is reused
        from its key/value cache, and only each row's own tokens are computed, packed into one
        sequence without padding (`_packed_probs`). The tokens are exactly those of the full
        prompt (`prompt_ids`), so the scores are the plain forward pass's up to float rounding
        (tests/integration/test_finetune_tiny.py checks both)."""
        rows = [prompt_ids(self.tokenizer, m) for m in self.messages(texts)]
        prefix = self._shared_prefix()
        # A row whose tokens do not start with the shared opening (or are nothing but it) goes
        # through the plain path; the chat template makes that rare.
        use = [len(r) > len(prefix) > 0 and r[: len(prefix)] == prefix for r in rows]
        order = sorted(range(len(rows)), key=lambda i: (use[i], len(rows[i])))
        out: list[Prediction | None] = [None] * len(rows)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for cached in (False, True):
                idx = [i for i in chunk if use[i] == cached]
                if not idx:
                    continue
                t0 = time.perf_counter()
                if cached:
                    probs = self._packed_probs([rows[i][len(prefix) :] for i in idx])
                else:
                    probs = self._head_probs([rows[i] for i in idx])
                per = (time.perf_counter() - t0) / len(idx)
                for k, i in enumerate(idx):
                    j = int(probs[k].argmax())
                    usage = Usage(input_tokens=len(rows[i]), output_tokens=0, latency_s=per)
                    out[i] = Prediction(self.labels[j], float(probs[k, j]), usage, probs=dict(zip(self.labels, probs[k].tolist())))
        return [p for p in out if p is not None]

    def _parts(self):
        """The backbone (LoRA layers inside it) and the classification head of the model."""
        model = self.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        return base.model, base.score

    def _shared_prefix(self) -> list[int]:
        """The tokens every prompt of this model starts with: the common start of two prompts
        that differ only in the customer text."""
        if self._prefix is None:
            a, b = (prompt_ids(self.tokenizer, m) for m in self.messages(["a", "b"]))
            n = 0
            while n < min(len(a), len(b)) and a[n] == b[n]:
                n += 1
            self._prefix = a[:n]
        return self._prefix

    def _prefix_kv(self) -> list[tuple[Any, Any]]:
        """Keys and values of the shared prefix in every layer, computed once (batch of one)."""
        import torch

        if self._prefix_cache is None:
            backbone, _ = self._parts()
            with torch.inference_mode():
                out = backbone(input_ids=torch.tensor([self._shared_prefix()]), use_cache=True)
                cache = out.get("cache") or out.get("past_key_values")  # transformers 5.x renamed it
            self._prefix_cache = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prefix_cache

    PACK_TOKENS = 512
    """Most tokens in one packed forward pass: the attention of a pack is computed over all its
    tokens (masked outside each row), so a longer pack spends more on attention than it saves."""

    def _packed_probs(self, seqs: list[list[int]]):
        """Label probabilities for rows that all follow the shared prefix, packed: the rows'
        tokens are laid end to end in one sequence after the prefix's cached keys/values, each
        token attending to the prefix and to its own row's earlier tokens only, with its row's
        positions. A batch of dispute texts right-padded to its longest row is 2.5 times its
        real tokens (measured on the test split at batch 32); a pack is exactly its tokens."""
        import torch
        from transformers import DynamicCache

        backbone, head = self._parts()
        name = self._cache_name(backbone)
        kv = self._prefix_kv()
        offset = kv[0][0].shape[-2]
        packs: list[list[list[int]]] = [[]]
        size = 0  # tokens in the last pack
        for s in seqs:
            if packs[-1] and size + len(s) > self.PACK_TOKENS:
                packs.append([])
                size = 0
            packs[-1].append(s)
            size += len(s)
        out = []
        for pack in packs:
            lengths = torch.tensor([len(s) for s in pack])
            row = torch.repeat_interleave(torch.arange(len(pack)), lengths)  # which row each token is in
            starts = torch.cumsum(lengths, 0) - lengths
            within = torch.arange(int(lengths.sum())) - starts[row]  # position inside its row
            own = (row[:, None] == row[None, :]) & (within[None, :] <= within[:, None])
            mask = torch.cat([torch.ones(len(row), offset, dtype=torch.bool), own], dim=1)[None, None]
            past = DynamicCache(ddp_cache_data=list(kv))
            ids = torch.tensor([[t for s in pack for t in s]])
            with torch.inference_mode():
                hidden = backbone(
                    input_ids=ids, attention_mask=mask, position_ids=(offset + within)[None], use_cache=True, **{name: past}
                ).last_hidden_state
                logits = head(hidden[0, starts + lengths - 1]).float()
            out.append(torch.softmax(logits, dim=-1))
        return torch.cat(out)

    def _cache_name(self, backbone) -> str:
        """The forward argument that takes a key/value cache: transformers 5.x renamed
        past_key_values to cache (the old name warns until 5.40)."""
        if self._cache_kwarg is None:
            self._cache_kwarg = "cache" if "cache" in inspect.signature(backbone.forward).parameters else "past_key_values"
        return self._cache_kwarg

    def _head_probs(self, seqs: list[list[int]]):
        """Label probabilities for whole prompts (no cached prefix), right-padded; the head
        reads each row's last real token. For the rare row that does not start with the shared
        prefix."""
        import torch

        backbone, head = self._parts()
        width, n = max(len(s) for s in seqs), len(seqs)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with torch.inference_mode():
            hidden = backbone(input_ids=ids, attention_mask=mask, position_ids=torch.arange(width).expand(n, -1)).last_hidden_state
            logits = head(hidden[torch.arange(n), torch.tensor([len(s) - 1 for s in seqs])]).float()
        return torch.softmax(logits, dim=-1)


register_approach(
    Approach(
        "finetuned",
        "a saved LoRA fine-tuned model (--model NAME[:VERSION])",
        "finetuned",
        lambda cfg: FinetunedClassifier.from_config(cfg.section("finetuned")),
        {"finetuned": FinetunedConfig},
        model_setting="finetuned.model",
    )
)
