"""The fine-tuning script. It reads top to bottom:

    seed → task data → tokenizer and chat template → model (4-bit or not) → LoRA →
    trainer → pre-flight checks → train → save → evaluate

    dispute-classifier finetune train --recipe smollm2-135m-lora-cpu [key=value ...]
    python -m finetune.train --recipe smollm2-135m-lora-cpu            # same thing
    accelerate launch --num_processes 2 -m finetune.train --recipe llama3-8b-qlora
    accelerate launch --config_file finetune/accelerate/ddp.yaml -m finetune.train --recipe llama3-8b-qlora

Under ``accelerate launch`` every process trains (the Trainer wraps the model in DDP or FSDP);
only the main process picks the registry version, saves, writes the card and evaluates.
The generative head trains with TRL's SFTTrainer on prompt–completion conversations built
by the project's one prompt builder, so the inference prompt is the training prompt by
construction (and the doctor checks it token by token). The classification head trains the
same LoRA with a softmax head on the last prompt token, with the plain transformers Trainer.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dispute_classifier.core.config import to_dict
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.model_source import (
    load_causal_lm,
    load_tokenizer,
    model_fingerprint,
    resolve_dtype,
)
from dispute_classifier.core.prices import PriceTable, money
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.core.threads import set_torch_threads
from evaluation.evaluate import evaluate_config
from evaluation.runs import git_state
from finetune import doctor, model_store
from finetune.classifier import FinetunedConfig, load_sequence_classifier
from finetune.recipe import Recipe, load_recipe
from finetune.training_rows import classification_rows, fit_rows, generative_rows


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main_then_share(make: Any) -> Any:
    """``make()`` on the main process only, its result sent to every process (one process:
    just ``make()``). Registry versions are picked this way, so N processes make one model."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState(cpu=not _cuda_available())  # as the Trainer will set it up (see training_args)
    result = [make() if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(result, from_process=0)
    return result[0]


def weights_digest(model) -> str:
    """sha256 of the trainable weights: equal on every process after a DDP step."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def resolve_recipe_dtype(recipe: Recipe) -> tuple[Recipe, str]:
    """``recipe`` with ``dtype: auto`` replaced by the dtype this machine supports, and why.
    Everything downstream (the model's load dtype, bitsandbytes' 4-bit compute dtype, the
    trainer's bf16/fp16 flags, the saved recipe that inference reloads) reads the result."""
    dtype, reason = resolve_dtype(recipe.dtype)
    return dataclasses.replace(recipe, dtype=dtype), reason


def threads_callback(requested: int | None):
    """A TrainerCallback that chooses torch's CPU threads again at every epoch end and
    checkpoint: a run started while another job held a core would otherwise keep the one
    thread it got for its whole length (docs/fine-tuning/results.md, "Speed and what limits accuracy"). ``requested``
    (``train.threads``) fixes the count instead. ``changes`` lists (step, old, new)."""
    import torch
    from transformers import TrainerCallback

    class RecheckThreads(TrainerCallback):
        def __init__(self) -> None:
            self.changes: list[tuple[int, int, int]] = []

        def _recheck(self, state) -> None:
            before = torch.get_num_threads()
            after = set_torch_threads(requested)
            if after != before:
                self.changes.append((state.global_step, before, after))
                print(f"step {state.global_step}: torch threads {before} -> {after} (cores free now)", flush=True)

        def on_epoch_end(self, args, state, control, **kwargs):
            self._recheck(state)

        def on_save(self, args, state, control, **kwargs):
            self._recheck(state)

    return RecheckThreads()


def loss_summary(log_history: list[dict[str, Any]], mean_loss: float) -> dict[str, Any]:
    """The two losses a model card reports, named for what they are: the mean training loss
    over all steps (what ``Trainer.train`` returns) and the last logged step's loss (what the
    model ended at), with that step."""
    logged = [entry for entry in log_history if "loss" in entry]
    last = logged[-1] if logged else {}
    return {"mean_train_loss": mean_loss, "last_logged_loss": last.get("loss"), "last_logged_step": last.get("step")}


def lora_config(recipe: Recipe):
    """The PEFT LoraConfig of a recipe."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=list(recipe.lora.target_modules),
        bias="none",
        task_type=TaskType.SEQ_CLS if recipe.head == "classification" else TaskType.CAUSAL_LM,
    )


def training_args(recipe: Recipe, output_dir: Path, **override: Any):
    """SFTConfig (generative head) or TrainingArguments (classification head) of a recipe.

    ``override`` replaces arguments, e.g. ``use_cpu=True`` to build a GPU recipe's config on
    a machine without one (transformers refuses bf16 there otherwise). ``dtype: auto`` is
    resolved first, so the bf16/fp16 flags match the dtype the model loads in."""
    recipe, _ = resolve_recipe_dtype(recipe)
    t = recipe.train
    common: dict[str, Any] = dict(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_steps,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        optim=t.optimizer,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        activation_checkpointing=t.gradient_checkpointing,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=2,
        seed=t.seed,
        data_seed=t.seed,
        # SFTConfig defaults bf16 to True; on a CPU recipe that would silently train in bf16
        bf16=recipe.dtype == "bfloat16",
        fp16=recipe.dtype == "float16",
        report_to="none",
        dataloader_num_workers=0,
        # without a GPU, processes started by `accelerate launch` join over gloo (accelerate's MULTI_CPU)
        use_cpu=not _cuda_available(),
        train_sampling_strategy="group_by_length" if t.group_by_length and not t.packing else "random",
        # --quiet: no progress bar (the loss still goes to trainer_log.jsonl and the model card)
        disable_tqdm=bool(os.environ.get("DISPUTE_CLASSIFIER_QUIET")),
    )
    common.update(override)
    if recipe.head == "classification":
        from transformers import TrainingArguments

        return TrainingArguments(**common)
    from trl import SFTConfig

    return SFTConfig(**common, max_length=t.max_length, packing=t.packing, completion_only_loss=True, shuffle_dataset=False)


def build_model(recipe: Recipe, tokenizer, n_labels: int):
    """Base model (quantized or not) with LoRA adapters on the recipe's target modules."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if recipe.head == "classification":
        model = load_sequence_classifier(recipe.model, n_labels, recipe.quantization, recipe.dtype, tokenizer.pad_token_id)
    else:
        storage = recipe.dtype if recipe.quant_storage == "compute" else "uint8"
        model = load_causal_lm(recipe.model, quantization=recipe.quantization, dtype=recipe.dtype, quant_storage=storage)
    if recipe.quantization != "none":
        # casts norms to fp32, freezes the base, enables input grads for checkpointing
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.train.gradient_checkpointing)
    elif recipe.train.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need an input that requires grad
    return get_peft_model(model, lora_config(recipe))


def build_trainer(recipe: Recipe, model, tokenizer, rows: list[dict[str, Any]], output_dir: Path):
    """SFTTrainer (generative) or Trainer (classification head) with the recipe's settings."""
    from datasets import Dataset
    from transformers import PrinterCallback

    dataset = Dataset.from_list(rows)
    args = training_args(recipe, output_dir)
    if recipe.head == "classification":
        from transformers import DataCollatorWithPadding, Trainer

        tokenizer.padding_side = "right"
        trainer = Trainer(
            model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer
        )
    else:
        from trl import SFTTrainer

        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    if args.disable_tqdm:
        trainer.remove_callback(PrinterCallback)  # without a bar the Trainer prints every log dict instead
    return trainer


def preflight(
    recipe: Recipe,
    trainer,
    tokenizer,
    rows: list[dict[str, Any]],
    train_texts: list[str],
    test_texts: list[str],
    n_blocks: int,
    task: Any = None,
) -> list[doctor.Check]:
    """Run every pre-flight check against what the trainer will really use."""
    import torch

    checks = [doctor.check_learning_rate(recipe.train.learning_rate), doctor.check_no_test_overlap(train_texts, test_texts)]
    if task is not None:
        checks.append(doctor.check_control_tokens_stay_text(tokenizer, task, recipe.prompt))
    model = trainer.model
    checks.append(doctor.check_lora_layers(model, recipe.lora.target_modules, n_blocks))
    probe = list(range(min(8, len(rows))))
    if recipe.head == "generative":
        from datasets import Dataset
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        # TRL's own preparation, unpacked, so rows can be compared one by one (with packing on,
        # trainer.train_dataset holds packed blocks). _prepare_dataset is TRL-internal; pin TRL <2.
        prepared = trainer._prepare_dataset(Dataset.from_list(rows), tokenizer, trainer.args, False, None, "doctor")
        full_lengths = [len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=False)) for r in rows]
        checks.append(doctor.check_no_rows_lost(len(rows), prepared, full_lengths, recipe.train.max_length))
        sample = [prepared[i] for i in probe]
        checks.append(doctor.check_prompt_matches_inference(tokenizer, [rows[i] for i in probe], sample))
        checks.append(doctor.check_prompt_masked([rows[i] for i in probe], sample, tokenizer))
        checks.append(doctor.check_single_bos(tokenizer, prepared))
        if recipe.train.packing:
            # the padding-free collator of a packed run concatenates the rows it gets into one
            # sequence; collated one at a time, each row's labels stay readable on their own
            singles = [trainer.data_collator([{"input_ids": s["input_ids"], "labels": s["labels"]}])["labels"][0] for s in sample]
            labels = torch.full((len(singles), max(len(x) for x in singles)), -100)
            for i, x in enumerate(singles):
                labels[i, : len(x)] = x
            batch = {"labels": labels}
        else:
            batch = trainer.data_collator([{"input_ids": s["input_ids"], "labels": s["labels"]} for s in sample])
        checks.append(doctor.check_end_of_turn_kept(tokenizer, [rows[i] for i in probe], batch))
        grad_batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(
            [{"input_ids": s["input_ids"], "labels": s["labels"]} for s in sample]
        )
    else:
        lengths = [len(r["input_ids"]) for r in rows]
        checks.append(doctor.check_no_rows_lost(len(rows), trainer.train_dataset, lengths, recipe.train.max_length))
        checks.append(doctor.check_single_bos(tokenizer, trainer.train_dataset))
        grad_batch = trainer.data_collator([rows[i] for i in probe])
    with torch.enable_grad():
        checks.append(doctor.check_lora_gradients(model, dict(grad_batch)))
    return checks


def train(
    recipe: Recipe,
    name: str | None = None,
    resume: bool = False,
    doctor_only: bool = False,
    data_dir: str | None = None,
    runs_dir: str | None = None,
    models_root: Path | None = None,
    fit_override: Any = None,
    callbacks: list[Any] | None = None,
    run_extra: dict[str, Any] | None = None,
) -> Path | None:
    """Train (or only check) a recipe; returns the saved model folder.

    ``fit_override`` (a `Split`) trains on those rows instead of the recipe's fit split (the
    learning-curve and noise experiments); ``callbacks`` are transformers TrainerCallbacks (a
    sweep's pruning); ``run_extra`` goes into the evaluation run records' ``extra``."""
    # 0. hardware, before loading anything
    if recipe.requires_gpu and not _cuda_available():
        raise UserError(
            f"recipe '{recipe.name}' needs a CUDA GPU and none is visible. Run it on a GPU machine, or use"
            " smollm2-135m-lora-cpu / smollm2-135m-qlora-cpu here"
        )
    import warnings

    import torch
    from transformers import set_seed

    # PEFT still reads transformers 5's deprecated alias while preparing and saving the model; the
    # warning says nothing a user can act on and printed twice per run, between the progress lines.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    requested_dtype = recipe.dtype
    recipe, dtype_reason = resolve_recipe_dtype(recipe)
    print(f"dtype: {recipe.dtype} ({dtype_reason})")
    print(f"torch threads: {set_torch_threads(recipe.train.threads)} (train.threads sets it; rechecked at epoch ends and checkpoints)")

    # 1. seed
    set_seed(recipe.train.seed)

    # 2. task data: train (or train+validation) rows, never test rows
    spec = load_task(recipe.task)
    data = load_data(spec, Path(data_dir) if data_dir else None)
    fit = fit_rows(data, recipe.fit_split, recipe.train_limit, recipe.train.seed, override=fit_override)
    if fit.dropped_test_overlap:
        print(f"left out {len(fit.dropped_test_overlap)} training row(s) whose text is also in test: {', '.join(fit.dropped_test_overlap)}")

    # 3. tokenizer and chat template (the model's own; never hand-written)
    tokenizer = load_tokenizer(recipe.model)
    rows = (
        classification_rows(data, fit.split, recipe.prompt, tokenizer)
        if recipe.head == "classification"
        else generative_rows(data, fit.split, recipe.prompt, tokenizer)
    )

    # 4–5. model and LoRA
    model = build_model(recipe, tokenizer, len(spec.labels))
    n_blocks = model.get_base_model().config.num_hidden_layers

    # 6. trainer, into a new registry version (or the interrupted one when resuming)
    name = name or recipe.name
    if doctor_only:
        out = Path(tempfile.mkdtemp(prefix="doctor-"))
    elif resume:
        out = model_store.unfinished_version(name, models_root)
        if out is None:
            raise UserError(f"nothing to resume: model '{name}' has no interrupted version; start without --resume")
    else:
        out = main_then_share(lambda: model_store.new_version(name, models_root))
    trainer = build_trainer(recipe, model, tokenizer, rows, out / "checkpoints")
    threads = threads_callback(recipe.train.threads)
    for callback in [threads, *(callbacks or [])]:
        trainer.add_callback(callback)

    # 7. pre-flight checks
    checks = preflight(recipe, trainer, tokenizer, rows, fit.split.texts, data.split("test").texts, n_blocks, spec)
    print("pre-flight checks:\n" + doctor.report(checks))
    if doctor_only:
        shutil.rmtree(out, ignore_errors=True)
        doctor.enforce(checks)
        return None
    doctor.enforce(checks)

    # 8. train
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if resume else []
    if resume and not checkpoints:
        raise UserError(f"{out}: no checkpoint to resume from (the run stopped before its first save); start again without --resume")
    main = trainer.accelerator.is_main_process
    if main:
        (out / "recipe.json").write_text(json.dumps(to_dict(recipe), indent=2))
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    wall = time.perf_counter() - t0
    processes = trainer.accelerator.num_processes

    # 9. save: adapter (unmerged), tokenizer + chat template, log, card
    if processes > 1:
        print(f"rank {trainer.accelerator.process_index}/{processes}: trained weights sha256 {weights_digest(trainer.model)}", flush=True)
        trainer.save_model(str(out / "adapter"))  # every process takes part (FSDP gathers its shards); the main one writes
        trainer.accelerator.wait_for_everyone()
        if not main:  # the main process registers and evaluates
            return out
    else:
        trainer.model.save_pretrained(out / "adapter")
    tokenizer.save_pretrained(out / "tokenizer")
    with open(out / "trainer_log.jsonl", "w") as f:
        for entry in trainer.state.log_history:
            f.write(json.dumps(entry) + "\n")
    steps = trainer.state.global_step
    rows_seen = steps * recipe.train.batch_size * recipe.train.gradient_accumulation_steps * processes
    lengths = (
        [len(r["input_ids"]) for r in rows]
        if recipe.head == "classification"
        else [len(tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True, return_dict=False)) for r in rows]
    )
    tokens_seen = rows_seen * (sum(lengths) / len(lengths))

    prices = PriceTable.load()
    hourly = prices.hourly(recipe.hardware)
    card: dict[str, Any] = {
        "name": name,
        "version": int(out.name[1:]),
        "task": spec.name,
        "task_file": str(spec.path),
        "labels": spec.label_list,
        "recipe": to_dict(recipe),
        "base_model": model_fingerprint(recipe.model),
        "data": {
            "sha256": data.sha256,
            "data_hash": data.data_hash,
            "fit_split": recipe.fit_split,
            "n_train_rows": len(fit.split),
            "dropped_test_overlap": fit.dropped_test_overlap,
        },
        "seed": recipe.train.seed,
        "git": git_state(),
        "training_key": model_store.training_key(),
        # a sweep's trial or final model says so, so any later evaluation of it can be traced to its trial
        "sweep": {k: v for k, v in (run_extra or {}).items() if k.startswith("sweep_")},
        "training": {
            "wall_s": wall,
            "steps": steps,
            "epochs": trainer.state.epoch,
            **loss_summary(trainer.state.log_history, result.training_loss),
            "dtype": recipe.dtype,
            "dtype_requested": requested_dtype,
            "dtype_reason": dtype_reason,
            "thread_changes": threads.changes,
            "tokens_per_s": tokens_seen / wall if wall else None,
            "peak_memory_mb": _peak_memory_mb(),
            "hardware": recipe.hardware or prices.default_hardware,
            "hourly_usd": hourly,
            "cost_usd": wall / 3600 * hourly,
            "threads": torch.get_num_threads(),
            "processes": processes,
        },
        "evaluations": {},
    }
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # the adapter is saved; checkpoints were for --resume

    # 10. evaluate the reloaded model through the same path as `evaluate --approach finetuned`
    # (reloading proves the save; the same settings give the same config hash)
    (out / "model_card.json").write_text(json.dumps(card, indent=2))  # makes the version loadable
    for split in recipe.eval_splits:
        finetuned = FinetunedConfig(model=f"{name}:v{card['version']}", models_dir=str(models_root) if models_root else None)
        cfg = RunConfig(
            task=str(spec.path),
            approach="finetuned",
            split=split,
            limit=recipe.eval_limit,
            seed=recipe.train.seed,
            runs_dir=runs_dir,
            data_dir=data_dir,
            hardware=recipe.hardware,
            sections={"finetuned": finetuned},
        )
        run, _ = evaluate_config(cfg, data, prices, extra=run_extra)
        m = run.metrics
        card["evaluations"][split] = {
            "run_id": run.run_id,
            "accuracy": m["accuracy"],
            "accuracy_ci95": m["accuracy_ci95"],
            "macro_f1": m["macro_f1"],
            "n": m["n"],
            "throughput_qps": m["throughput_qps"],
        }
        print(
            f"{split}: accuracy {m['accuracy'] * 100:.2f}% (95% CI {m['accuracy_ci95'][0] * 100:.2f}–{m['accuracy_ci95'][1] * 100:.2f}), run {run.path}"
        )
    (out / "model_card.json").write_text(json.dumps(card, indent=2))
    (out / "model_card.md").write_text(model_card_markdown(card))
    print(f"saved {name}:v{card['version']} to {out}")
    return out


def _loss(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def model_card_markdown(card: dict[str, Any]) -> str:
    r, t = card["recipe"], card["training"]
    lines = [
        f"# {card['name']}:v{card['version']}",
        "",
        f"LoRA adapter (r={r['lora']['r']}, alpha={r['lora']['alpha']}, targets {', '.join(r['lora']['target_modules'])})"
        f" on `{card['base_model']['name']}` ({r['quantization']} quantization, {r['dtype']}), {r['head']} head,"
        f" task `{card['task']}` ({len(card['labels'])} labels).",
        "",
        "## Provenance",
        "",
        f"- base model: `{card['base_model'].get('path')}` sha256 `{card['base_model'].get('sha256', 'n/a')}`",
        "- data sha256: " + ", ".join(f"{k} `{v}`" for k, v in card["data"]["sha256"].items()),
        f"- fit split: {card['data']['fit_split']} ({card['data']['n_train_rows']} rows; {len(card['data']['dropped_test_overlap'])} left out for overlapping test)",
        f"- seed {card['seed']}, git commit `{card['git'].get('commit')}`{' (dirty)' if card['git'].get('dirty') else ''}",
        "",
        "## Training",
        "",
        f"- {t['steps']} steps, {t['epochs']:.2f} epochs, mean training loss {t['mean_train_loss']:.4f},"
        f" last logged loss {_loss(t.get('last_logged_loss'))} (step {t.get('last_logged_step')})",
        f"- dtype {t.get('dtype', r['dtype'])} (requested {t.get('dtype_requested', r['dtype'])}: {t.get('dtype_reason', 'set in the recipe')})",
        f"- wall time {t['wall_s'] / 60:.1f} min on {t['hardware']} ({t['threads']} threads), {t['tokens_per_s'] or 0:.0f} tokens/s, peak memory {t['peak_memory_mb']:.0f} MB",
        f"- training cost {money(t['cost_usd'])} at {money(t['hourly_usd'])}/h",
        "",
        "## Evaluation",
        "",
    ]
    for split, e in card["evaluations"].items():
        lines.append(
            f"- {split}: accuracy {e['accuracy'] * 100:.2f}% (95% CI {e['accuracy_ci95'][0] * 100:.2f}–{e['accuracy_ci95'][1] * 100:.2f}), macro-F1 {e['macro_f1'] * 100:.2f}%, n={e['n']}, {e['throughput_qps']:.1f} queries/s (run {e['run_id']})"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m finetune.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--name")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    try:
        train(load_recipe(args.recipe, args.overrides), name=args.name, resume=args.resume)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
