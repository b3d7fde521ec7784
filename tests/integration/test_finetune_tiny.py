"""The whole fine-tuning script on a tiny LLaMA built from a config: LoRA and 4-bit QLoRA,
both heads, a few steps each; the saved adapter reloads with identical predictions."""

import json

import pytest
import torch

from finetune.recipe import load_recipe
from tests.conftest import write_task

# enough rows per label for a stratified validation cut, short texts for speed
ROWS = [
    (f"{w} {i}", label)
    for label, w in (("refund", "refund please"), ("fee", "why this fee"), ("fraud", "not my payment"))
    for i in range(12)
]


@pytest.fixture
def env(tmp_path, monkeypatch, tiny_llama):
    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("DISPUTE_CLASSIFIER_RUNS", str(tmp_path / "runs"))
    task = write_task(
        tmp_path, train=ROWS, test=[("refund please 99", "refund"), ("why this fee 99", "fee"), ("not my payment 99", "fraud")]
    )
    return tmp_path, task, tiny_llama


def _recipe(task, model, *extra):
    return load_recipe(
        "smollm2-135m-lora-cpu",
        [
            f"task={task}",
            f"model={model}",
            "train.max_steps=4",
            "train.batch_size=4",
            "train.logging_steps=1",
            "train.warmup_steps=0",
            "train.learning_rate=2e-3",
            "eval_splits=[validation]",
            *extra,
        ],
    )


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["lora", "qlora"])
def test_few_steps_change_lora_only_and_reload_identically(env, mode):
    from dispute_classifier.core.model_source import load_tokenizer
    from dispute_classifier.core.task import load_data, load_task
    from finetune import model_store
    from finetune.classifier import FinetunedClassifier
    from finetune.train import build_model, build_trainer
    from finetune.training_rows import fit_rows, generative_rows

    tmp, task, model_dir = env
    extra = ["quantization=4bit", "train.optimizer=paged_adamw_32bit", "train.gradient_checkpointing=true"] if mode == "qlora" else []
    recipe = _recipe(task, model_dir, *extra)

    # loss falls on a repeated batch, LoRA weights move, base weights do not
    tok = load_tokenizer(str(model_dir))
    data = load_data(load_task(task))
    rows = generative_rows(data, fit_rows(data, "train").split, recipe.prompt)[:4]
    model = build_model(recipe, tok, 3)
    trainer = build_trainer(recipe, model, tok, rows * 8, tmp / "ckpt")
    before = _snapshot(model)
    trainer.train()
    after = _snapshot(model)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses
    lora_changed = [n for n in before if "lora_" in n and not torch.equal(before[n], after[n])]
    base_changed = [n for n in before if "lora_" not in n and not torch.equal(before[n], after[n])]
    assert lora_changed and not base_changed, base_changed[:3]

    # the whole script: doctor, train, save, evaluate; then reload and predict identically
    from finetune.train import train

    out = train(recipe, runs_dir=str(tmp / "runs"))
    card = json.loads((out / "model_card.json").read_text())
    assert card["recipe"]["quantization"] == ("4bit" if mode == "qlora" else "none")
    assert card["training"]["steps"] == 4 and "validation" in card["evaluations"]
    logged = [e["loss"] for e in map(json.loads, (out / "trainer_log.jsonl").read_text().splitlines()) if "loss" in e]
    t = card["training"]
    assert t["last_logged_loss"] == logged[-1] and t["last_logged_step"] == 4
    assert t["mean_train_loss"] == pytest.approx(sum(logged) / len(logged), rel=1e-2)  # logging_steps=1: every step
    assert t["dtype"] == "float32" and t["dtype_requested"] == "float32" and isinstance(t["thread_changes"], list)
    assert "mean training loss" in (out / "model_card.md").read_text()
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "trainer_log.jsonl").is_file()
    assert model_store.resolve(f"{recipe.name}:v{card['version']}") == out
    texts = ["refund please 5", "why this fee 7", "not my payment 1", "hello"]
    first = FinetunedClassifier(recipe.name).predict(texts)
    second = FinetunedClassifier(recipe.name).predict(texts)  # a fresh load from disk
    assert [(p.label, round(p.confidence, 5)) for p in first] == [(p.label, round(p.confidence, 5)) for p in second]
    assert all(p.label in ("refund", "fee", "fraud") for p in first)

    # unconstrained decoding of the same model: greedy text, parsed; a tiny random model's
    # free answers are mostly not labels, and those are counted invalid, never guessed
    from dispute_classifier.core.types import INVALID

    free = FinetunedClassifier(recipe.name, decoding="free")
    answers = free.predict(texts)
    assert free.model_name.endswith("+free") and all(p.raw is not None for p in answers)
    assert all(p.label in ("refund", "fee", "fraud", INVALID) for p in answers)
    assert all(p.label == INVALID or p.raw.strip().strip("`\"'*.").lower() == p.label.lower() for p in answers)


def test_free_decoding_needs_a_generative_model(env):
    from dispute_classifier.core.errors import UserError
    from finetune.classifier import FinetunedClassifier, FinetunedConfig
    from finetune.train import train

    tmp, task, model_dir = env
    train(_recipe(task, model_dir, "head=classification", "name=tiny-cls-free", "train.max_steps=1"), runs_dir=str(tmp / "runs"))
    with pytest.raises(UserError, match="decoding=free needs a generative model"):
        FinetunedClassifier("tiny-cls-free", decoding="free")
    with pytest.raises(UserError, match="finetuned.decoding must be constrained or free"):
        FinetunedConfig(decoding="sampled")


def test_classification_head_trains_and_reloads(env):
    from finetune.classifier import FinetunedClassifier
    from finetune.train import train

    tmp, task, model_dir = env
    recipe = _recipe(task, model_dir, "head=classification", "name=tiny-cls")
    out = train(recipe, runs_dir=str(tmp / "runs"))
    texts = ["refund please 5", "why this fee 7", "not my payment 1"]
    a = FinetunedClassifier("tiny-cls").predict(texts)
    b = FinetunedClassifier("tiny-cls", batch_size=1).predict(texts)  # batched == one by one
    assert [p.label for p in a] == [p.label for p in b]
    assert [p.confidence for p in a] == pytest.approx([p.confidence for p in b], abs=1e-4)
    # the fast path (adapter merged into the fp32 weights, shared prefix cached once, the rows'
    # own tokens packed into one sequence) gives the plain full forward pass of the unmerged
    # adapter's probabilities, row by row, in the callers' order
    from dispute_classifier.core.backends.local import prompt_ids
    from finetune.classifier import load_peft_model

    clf = FinetunedClassifier("tiny-cls", batch_size=3)
    unmerged = load_peft_model(clf.card, clf.folder)
    varied = ["refund please 5 " * 6, "fee", "not my payment 1, and again not my payment", "why this fee 7", "<|im_start|>system hi"]
    fast = clf.predict(varied)
    clf.PACK_TOKENS = 12  # a pack per row or two: splitting a batch into packs changes nothing
    split = clf.predict(varied)
    assert [p.probs[label] for p in split for label in clf.labels] == pytest.approx(
        [p.probs[label] for p in fast for label in clf.labels], abs=1e-5
    )
    assert not hasattr(clf.model, "peft_config")  # merged
    assert 10 < len(clf._shared_prefix()) < len(prompt_ids(clf.tokenizer, clf.messages(["x"])[0]))
    with torch.inference_mode():
        for text, p in zip(varied, fast):
            ids = torch.tensor([prompt_ids(clf.tokenizer, clf.messages([text])[0])])
            plain = torch.softmax(unmerged(input_ids=ids).logits.float(), dim=-1)[0]
            assert [p.probs[label] for label in clf.labels] == pytest.approx(plain.tolist(), abs=1e-5)
    assert json.loads((out / "model_card.json").read_text())["recipe"]["head"] == "classification"
    # int8 inference: the adapter merged into fp32 weights, the blocks' Linear layers quantised
    quantized = FinetunedClassifier("tiny-cls", quantize="int8")
    preds = quantized.predict(texts)
    assert quantized.model_name == "finetuned:tiny-cls:v1+int8" and all(p.label in quantized.labels for p in preds)
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantized.model.modules())

    down = [m for n, m in quantized.model.named_modules() if n.endswith("down_proj")]
    assert down and all(type(m) is torch.nn.Linear for m in down)  # left in fp32 (activation outliers)


def test_resume_needs_an_interrupted_run(env):
    from dispute_classifier.core.errors import UserError
    from finetune.train import train

    tmp, task, model_dir = env
    with pytest.raises(UserError, match="nothing to resume"):
        train(_recipe(task, model_dir), resume=True)


def test_evaluate_cli_on_saved_model(env):
    import subprocess
    import sys

    from finetune.train import train
    from tests.conftest import REPO

    tmp, task, model_dir = env
    train(_recipe(task, model_dir, "name=tiny-gen"), runs_dir=str(tmp / "runs"))
    import os

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "dispute_classifier.commands.cli",
            "evaluate",
            "--task",
            str(task),
            "--approach",
            "finetuned",
            "--model",
            "tiny-gen:v1",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert "finetuned" in res.stdout and "accuracy" in res.stdout
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "dispute_classifier.commands.cli",
            "evaluate",
            "--task",
            str(task),
            "--approach",
            "finetuned",
            "--model",
            "nope:v3",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
        timeout=600,
    )
    assert res.returncode == 2 and "no saved model 'nope'" in res.stderr and "Traceback" not in res.stderr


def test_doctor_cli_passes_and_fails_loudly(env):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    tmp, task, model_dir = env
    base = [
        sys.executable,
        "-m",
        "dispute_classifier.commands.cli",
        "finetune",
        "doctor",
        "--recipe",
        "smollm2-135m-lora-cpu",
        f"task={task}",
        f"model={model_dir}",
    ]
    ok = subprocess.run(base, capture_output=True, text=True, cwd=REPO, env=os.environ.copy(), timeout=600)
    assert ok.returncode == 0, ok.stderr
    assert "all pre-flight checks passed" in ok.stdout and "[FAIL]" not in ok.stdout
    bad = subprocess.run(base + ["train.learning_rate=0.1"], capture_output=True, text=True, cwd=REPO, env=os.environ.copy(), timeout=600)
    assert bad.returncode == 2 and "[FAIL] learning rate" in bad.stdout
    assert "error: pre-flight checks failed: learning rate" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp / "models").exists()  # the doctor saves nothing


def test_interrupted_training_resumes_from_last_checkpoint(env):
    """SIGKILL the training process after its first checkpoint, then --resume finishes it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    tmp, task, model_dir = env
    args = [
        "--recipe",
        "smollm2-135m-lora-cpu",
        f"task={task}",
        f"model={model_dir}",
        "train.max_steps=8",
        "train.save_steps=2",
        "train.batch_size=2",
        "train.warmup_steps=0",
        "eval_limit=3",
        "name=resumable",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "finetune.train", *args],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ckpt_root = tmp / "models" / "resumable" / "v1" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckpt_root.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list(ckpt_root.glob("checkpoint-*")), "no checkpoint was written before the kill"
    assert not (tmp / "models" / "resumable" / "v1" / "model_card.json").exists()
    done = subprocess.run(
        [sys.executable, "-m", "finetune.train", "--resume", *args],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    card = json.loads((tmp / "models" / "resumable" / "v1" / "model_card.json").read_text())
    assert card["training"]["steps"] == 8
    assert not (tmp / "models" / "resumable" / "v2").exists()


def test_experiment_trains_once_then_reuses(env):
    from dispute_classifier.commands.experiment import Profile, Stage, run_experiment

    tmp, task, model_dir = env
    stage = Stage(
        approach="finetuned",
        name="ft",
        recipe="smollm2-135m-lora-cpu",
        recipe_overrides=[f"model={model_dir}", "train.max_steps=2", "train.batch_size=4"],
    )
    profile = Profile(description="tiny", stages=[stage], name="tiny")
    lines: list[str] = []
    results, report, _ = run_experiment(
        str(task), profile, runs_root=str(tmp / "runs"), reports_dir=str(tmp / "reports"), progress=False, say=lines.append
    )
    assert results[0].status == "ran", results[0].detail
    again, _, _ = run_experiment(
        str(task), profile, runs_root=str(tmp / "runs"), reports_dir=str(tmp / "reports"), progress=False, say=lines.append
    )
    assert again[0].status == "reused", again[0].detail
    assert sorted(p.name for p in (tmp / "models" / "smollm2-135m-lora-cpu").iterdir()) == ["v1"]  # trained once
    (row,) = [r for r in report["leaderboard"] if r["approach"] == "finetuned"]
    assert row["model"] == "finetuned:smollm2-135m-lora-cpu:v1" and row["category"] == "finetuned"


def test_an_experiment_stage_that_trains_leaves_a_validation_record(env):
    """The quick profile's fine-tuned stage learns from train only, so its model is also scored
    on validation: every trained model has the record that "chosen on validation" rests on."""
    from dispute_classifier.commands.experiment import Profile, Stage, run_experiment
    from evaluation.runs import scan_runs

    tmp, task, model_dir = env
    stage = Stage(
        "finetuned",
        name="finetuned-cls",
        recipe="smollm2-135m-lora-cls-cpu",
        recipe_overrides=[f"model={model_dir}", "train.max_steps=1", "train.batch_size=4", "name=tiny-stage"],
    )
    results, _, _ = run_experiment(
        str(task), Profile("one stage", [stage]), runs_root=str(tmp / "runs"), reports_dir=str(tmp / "reports"), progress=False
    )
    assert [r.status for r in results] == ["ran"], results
    runs, _ = scan_runs(tmp / "runs")
    assert sorted(r.meta.split for r in runs if r.meta.approach == "finetuned") == ["test", "validation"]
