"""Recipes: loading, bad input, and the LLaMA-3-8B recipe resolved without downloading."""

import contextlib
from unittest import mock

import pytest

from dispute_classifier.core.errors import UserError
from finetune.recipe import available_recipes, load_recipe


def test_all_recipes_load():
    names = available_recipes()
    assert {"llama3-8b-qlora", "smollm2-135m-lora-cpu", "smollm2-135m-qlora-cpu", "smollm2-135m-lora-cls-cpu"} <= set(names)
    for name in names:
        assert load_recipe(name).name == name


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["lora.r=0"], "lora.r must be at least 1"),
        (["load_in_4bit=true", "load_in_8bit=true"], "4-bit and 8-bit loading together"),
        (["lora.rank=8"], "unknown config key 'lora.rank'"),
        (["train.max_steps=0"], "train.epochs must be > 0 or train.max_steps > 0"),
        (["head=classification", "train.packing=true"], "packing works with head: generative only"),
        (["quantization=2bit"], "must be one of"),
    ],
)
def test_impossible_recipes_are_refused(overrides, message):
    with pytest.raises(UserError, match=message):
        load_recipe("smollm2-135m-lora-cpu", overrides)


def test_unknown_recipe():
    with pytest.raises(UserError, match="unknown recipe 'nope'.*smollm2-135m-lora-cpu"):
        load_recipe("nope")


def test_llama3_recipe_resolves_to_expected_configs(tmp_path):
    """Everything short of downloading: the BitsAndBytesConfig, LoraConfig and SFTConfig."""
    import torch

    from dispute_classifier.core.model_source import bnb_config
    from finetune.train import lora_config, training_args

    recipe = load_recipe("llama3-8b-qlora")
    assert recipe.model == "meta-llama/Meta-Llama-3-8B-Instruct" and recipe.requires_gpu
    assert recipe.dtype == "auto"
    with _fake_cuda(bf16=True):  # an A10G or 4090: auto is bf16 there
        bnb = bnb_config(recipe.quantization, recipe.dtype)
    assert bnb.load_in_4bit and bnb.bnb_4bit_quant_type == "nf4" and bnb.bnb_4bit_use_double_quant
    assert bnb.bnb_4bit_compute_dtype == torch.bfloat16
    lora = lora_config(recipe)
    assert lora.r == 16 and lora.lora_alpha == 32 and lora.lora_dropout == 0.05
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert lora.task_type == "CAUSAL_LM"
    with _fake_cuda(bf16=True):
        args = training_args(recipe, tmp_path, use_cpu=True)  # no GPU here; bf16 is refused otherwise
    assert type(args).__name__ == "SFTConfig"
    assert args.optim == "paged_adamw_32bit" and args.activation_checkpointing and args.packing
    assert args.per_device_train_batch_size == 4 and args.gradient_accumulation_steps == 4 and args.num_train_epochs == 3
    assert args.bf16 and args.completion_only_loss and args.max_length == 512
    cpu = training_args(load_recipe("smollm2-135m-lora-cpu"), tmp_path)
    assert not cpu.bf16 and not cpu.activation_checkpointing  # SFTConfig's defaults would turn both on


@contextlib.contextmanager
def _fake_cuda(bf16: bool, available: bool = True):
    """torch.cuda reporting a device (with or without bf16); everything else is the real code."""
    import torch

    with (
        mock.patch.object(torch.cuda, "is_available", return_value=available),
        mock.patch.object(torch.cuda, "is_bf16_supported", return_value=bf16),
        mock.patch.object(torch.cuda, "get_device_name", return_value="Tesla T4" if not bf16 else "NVIDIA A10G"),
    ):
        yield


def test_auto_dtype_picks_fp16_on_a_gpu_without_bf16(tmp_path):
    """A T4 (Colab's free GPU) has no bf16: llama3-8b-qlora must load, quantise and train in
    fp16 there — the model's dtype, bitsandbytes' compute dtype and the trainer's flags agree."""
    import torch

    from dispute_classifier.core.model_source import bnb_config
    from finetune.train import resolve_recipe_dtype, training_args

    with _fake_cuda(bf16=False):
        recipe, reason = resolve_recipe_dtype(load_recipe("llama3-8b-qlora"))
        assert recipe.dtype == "float16" and "Tesla T4 has no bfloat16" in reason
        assert bnb_config(recipe.quantization, recipe.dtype).bnb_4bit_compute_dtype == torch.float16
        assert bnb_config("4bit", "auto").bnb_4bit_compute_dtype == torch.float16  # the loader's own path
        args = training_args(load_recipe("llama3-8b-qlora"), tmp_path, use_cpu=True)  # auto, resolved inside
        assert args.fp16 and not args.bf16
    with _fake_cuda(bf16=True):
        recipe, _ = resolve_recipe_dtype(load_recipe("llama3-8b-qlora"))
        assert recipe.dtype == "bfloat16"
    with _fake_cuda(bf16=False, available=False):
        recipe, reason = resolve_recipe_dtype(load_recipe("llama3-8b-qlora"))
        assert recipe.dtype == "float32" and "no CUDA device" in reason
    fixed, reason = resolve_recipe_dtype(load_recipe("smollm2-135m-lora-cpu"))
    assert fixed.dtype == "float32" and reason == "set in the recipe"


def test_gpu_recipe_refuses_before_loading_anything(monkeypatch):
    import finetune.train as train_module

    monkeypatch.setattr(train_module, "_cuda_available", lambda: False)
    monkeypatch.setattr("dispute_classifier.core.model_source.load_causal_lm", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(UserError, match="needs a CUDA GPU and none is visible"):
        train_module.train(load_recipe("llama3-8b-qlora"))


def test_missing_base_model_says_how_to_provide_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dispute_classifier.core.model_source import load_causal_lm

    with pytest.raises(UserError, match="could not be loaded.*Offline\\? Use 'smollm2-135m-instruct'"):
        load_causal_lm("no-such-org/no-such-model")
