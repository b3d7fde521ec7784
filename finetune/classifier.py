"""A saved fine-tuned model as a `Classifier`, loaded from its registry folder.

The adapter is served unmerged on the same base model it was trained on (4-bit bases stay
4-bit: merging LoRA into quantized weights changes the outputs).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dispute_classifier.core.backends.local import LocalBackend, LocalConfig, prompt_ids
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.models import load_causal_lm
from dispute_classifier.core.prompts import PromptConfig, build_messages
from dispute_classifier.core.registry import Approach, register_approach
from dispute_classifier.core.task import TaskSpec, load_task
from dispute_classifier.core.threads import set_torch_threads
from dispute_classifier.core.types import ClassifierBase, Prediction, Usage
from finetune import registry


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
    cores less the 1-minute load average)."""
    quantize: str = "none"
    """CPU inference of a full-precision model: none, or int8 (LoRA merged into the fp32 weights, then dynamic int8 quantisation of the blocks' Linear layers but down_proj)."""

    def __post_init__(self) -> None:
        if self.quantize not in ("none", "int8"):
            raise UserError(f"finetuned.quantize must be none or int8, got '{self.quantize}'")


def load_peft_model(card: dict[str, Any], folder, for_training: bool = False):
    """Base model (as in the recipe) + the saved adapter, in eval mode."""
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
        raise UserError(f"finetuned.quantize=int8 needs a full-precision model; {card['name']} was trained on a {card['recipe']['quantization']} base")
    from torch.ao.quantization import default_dynamic_qconfig

    merged = model.merge_and_unload()
    merged.eval()
    # The transformer blocks only (the classification / LM head stays fp32), and not down_proj:
    # its inputs carry the large activation outliers of small LLaMA models, and per-tensor int8
    # there took SmolLM2's validation accuracy from 64 % to 35 % (measured; README).
    layers = {name: default_dynamic_qconfig for name, module in merged.model.named_modules()
              if isinstance(module, torch.nn.Linear) and not name.endswith(INT8_SKIP)}
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
        self, ref: str, batch_size: int = 8, model: Any = None, tokenizer: Any = None, folder=None, models_dir: str | None = None,
        threads: int | None = None, card: dict[str, Any] | None = None, quantize: str = "none",
    ) -> None:
        self.ref = ref
        if card is None:  # a saved model; a model still in training passes its own card (finetune.sweep)
            self.folder = folder or registry.resolve(ref, Path(models_dir) if models_dir else None)
            card = registry.read_card(self.folder)
        else:
            self.folder = folder
        self.card = card
        self.threads = threads
        self.quantize = quantize
        self.name = f"finetuned:{self.card['name']}:v{self.card['version']}"
        self.hardware = self.card["recipe"].get("hardware")
        self.batch_size = batch_size
        self._model = model
        self._tokenizer = tokenizer
        self.labels = list(self.card["labels"])
        self.prompt = PromptConfig(**self.card["recipe"]["prompt"])
        self.task_: TaskSpec | None = None

    @property
    def model_name(self) -> str:
        """The saved model, and how it is quantised for inference when it is."""
        return self.name + ("+int8" if self.quantize == "int8" else "")

    @classmethod
    def from_config(cls, config: FinetunedConfig) -> "FinetunedClassifier":
        """The saved model that ``config`` names."""
        return cls(config.model, batch_size=config.batch_size, models_dir=config.models_dir, threads=config.threads, quantize=config.quantize)

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
            "model_dir": str(self.folder.resolve()), "head": self.card["recipe"]["head"], "quantize": self.quantize,
            "training_cost_usd": t["cost_usd"], "train_wall_s": t["wall_s"], "hardware": t["hardware"],
            "fit_split": self.card["data"]["fit_split"], "base_model": self.card["base_model"]["name"],
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

        backend = LocalBackend(LocalConfig(model=self.ref, batch_size=self.batch_size), model=self.model, tokenizer=self.tokenizer)
        return backend.classify(self.messages(texts), self.labels)

    def _predict_head(self, texts: Sequence[str]) -> list[Prediction]:
        import torch


        out: list[Prediction] = []
        msgs = self.messages(texts)
        for start in range(0, len(msgs), self.batch_size):
            batch = [prompt_ids(self.tokenizer, m) for m in msgs[start : start + self.batch_size]]
            width = max(len(b) for b in batch)
            pad = self.tokenizer.pad_token_id
            ids = torch.tensor([[pad] * (width - len(b)) + b for b in batch])
            mask = torch.tensor([[0] * (width - len(b)) + [1] * len(b) for b in batch])
            t0 = time.perf_counter()
            positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding must not shift positions
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.float()
            probs = torch.softmax(logits, dim=-1)
            per = (time.perf_counter() - t0) / len(batch)
            for i, b in enumerate(batch):
                j = int(probs[i].argmax())
                usage = Usage(input_tokens=len(b), output_tokens=0, latency_s=per)
                out.append(Prediction(self.labels[j], float(probs[i, j]), usage, probs=dict(zip(self.labels, probs[i].tolist()))))
        return out


register_approach(Approach(
    "finetuned", "a saved LoRA fine-tuned model (--model NAME[:VERSION])", "finetuned",
    lambda cfg: FinetunedClassifier.from_config(cfg.section("finetuned")),
    {"finetuned": FinetunedConfig}, model_setting="finetuned.model",
))
