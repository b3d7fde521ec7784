"""A validation-only hyperparameter search over a recipe, with Optuna.

    dispute-classifier sweep --recipe smollm2-135m-lora-cls-cpu --trials 20 --timeout 43200 \\
        --storage sqlite:///reports/sweep.db                 # the real budget: trials on validation
    dispute-classifier sweep --recipe smollm2-135m-lora-cls-cpu --storage sqlite:///reports/sweep.db --final
    dispute-classifier sweep --recipe smollm2-135m-lora-cpu --budget quick   # CI: tiny model, 2 trials, few steps

Each trial trains the recipe on the train split with the values the TPE sampler proposes
(learning rate, epochs, LoRA rank/alpha/dropout, head, max length) and is evaluated on the
validation split by the shared evaluator: one run record per trial, its trial number in the
record's ``extra``. While it trains, its validation accuracy is reported after every epoch
(every step in the quick budget), and the median pruner stops trials that fall behind the
others at the same point. The study lives in SQLite storage: run the same command again and
it continues from the trials already stored, until the study holds ``--trials`` finished
ones. ``--final`` refits the best trial's settings on train+validation and evaluates that
model on the test split, once.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

from dispute_classifier.core.config import to_dict
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.model_source import build_tiny_llama
from dispute_classifier.core.task import Split, cache_dir, load_data, load_task, stratified_sample
from dispute_classifier.core.types import ClassifierBase, Prediction
from finetune import model_store
from finetune.classifier import FinetunedClassifier
from finetune.recipe import Recipe, load_recipe
from finetune.train import train

BUDGETS: dict[str, dict[str, Any]] = {
    # CI: a 2-layer LLaMA built from a config (unless model= is overridden), a few steps per trial
    "quick": {
        "trials": 2,
        "overrides": [
            "train.max_steps=3",
            "train.batch_size=4",
            "train.warmup_steps=0",
            "train.logging_steps=1",
            "train.save_steps=1000",
            "train_limit=48",
            "eval_limit=32",
        ],
    },
    # the real search: whole train split, 1-3 epochs per trial. About 10-50 min a trial for
    # SmolLM2-135M on 2 idle CPU cores (docs/fine-tuning/results.md: 1 epoch of the classification head in about
    # 10 min, the generative head about 3x that), so 20 trials fit a night; minutes on a GPU.
    "real": {"trials": 20, "overrides": []},
    # the reference search on 2 CPU cores: the classification head only (the generative head
    # trains about 3x slower and scores each label, so a trial would not fit an afternoon),
    # 1-2 epochs, validation reported every half epoch so the median pruner can stop a trial
    # early. The same study on a GPU: use "real".
    "cpu": {"trials": 8, "overrides": [], "heads": ["classification"], "epochs": (1, 2), "report_steps": 75},
}
"""What each ``--budget`` means: trials when --trials is not given, recipe overrides, and where
it narrows the search (heads, epochs) or reports validation every ``report_steps`` steps
(default: every step for quick, every epoch otherwise)."""


@dataclass
class SweepConfig:
    """A validation-only hyperparameter search over one recipe (``dispute-classifier sweep``)."""

    recipe: str
    """Recipe to search around (finetune/recipes/*.yaml name or path)."""
    trials: int | None = None
    """Finished trials the study should hold (a resumed study runs only the rest; default: the budget's)."""
    timeout: float | None = None
    """Stop starting new trials after this many seconds."""
    storage: str | None = None
    """Optuna storage URL, e.g. sqlite:///reports/sweep.db (default: sqlite:///reports/sweep-<study>.db)."""
    study: str | None = None
    """Study name in the storage (default: sweep-<recipe>-<budget>)."""
    budget: Literal["quick", "real", "cpu"] = "real"
    """quick: tiny model built from a config, 2 trials of 3 steps (CI); real: the whole train split, both heads, 1-3
    epochs a trial; cpu: the whole train split, classification head, 1-2 epochs (the reference run on 2 cores)."""
    final: bool = False
    """Refit the best trial on train+validation and evaluate it on the test split (once) instead of searching."""
    seed: int = 0
    """Seed of the sampler and of every trial's training."""
    overrides: list[str] = field(default_factory=list)
    """Recipe overrides applied to every trial (comma-separated KEY=VALUE, e.g. task=my.yaml)."""
    runs_dir: str | None = None
    """Where the trials' run records go (default: runs)."""
    models_dir: str | None = None
    """Where trial models are saved (default: $DISPUTE_CLASSIFIER_MODELS, then ./models)."""
    data_dir: str | None = None
    """Folder with the task's source files."""

    def __post_init__(self) -> None:
        if self.trials is not None and self.trials < 1:
            raise UserError(f"--trials must be at least 1, got {self.trials}")


def study_name(config: SweepConfig) -> str:
    """The study's name: --study, else sweep-<recipe>-<budget>."""
    return config.study or f"sweep-{Path(config.recipe).stem}-{config.budget}"


def storage_url(config: SweepConfig) -> str:
    """The storage URL: --storage, else a SQLite file under reports/ (its folder is made)."""
    if config.storage:
        url = config.storage
    else:
        url = f"sqlite:///reports/{study_name(config)}.db"
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def suggest(trial: Any, budget: str) -> list[str]:
    """The recipe overrides one trial tries: learning rate, LoRA rank/alpha/dropout, head,
    max length, and epochs (real budget; the quick one counts steps)."""
    space = BUDGETS[budget]
    r = trial.suggest_categorical("lora_r", [4, 8, 16, 32])
    alpha_ratio = trial.suggest_categorical("lora_alpha_ratio", [1, 2, 4])
    head = trial.suggest_categorical("head", space.get("heads", ["generative", "classification"]))
    out = [
        f"train.learning_rate={trial.suggest_float('learning_rate', 1e-4, 2e-3, log=True)}",
        f"lora.r={r}",
        f"lora.alpha={r * alpha_ratio}",
        f"lora.dropout={trial.suggest_float('lora_dropout', 0.0, 0.1)}",
        f"head={head}",
        f"train.max_length={trial.suggest_categorical('max_length', [128, 160, 256])}",
    ]
    if head == "classification":
        out.append("train.packing=false")  # packing is a generative-head option
    if budget != "quick":
        low, high = space.get("epochs", (1, 3))
        out.append(f"train.epochs={trial.suggest_int('epochs', low, high)}")
    return out


def base_overrides(config: SweepConfig) -> list[str]:
    """Overrides every trial shares: the budget's, a tiny model for quick, then --overrides."""
    out = list(BUDGETS[config.budget]["overrides"]) + [f"train.seed={config.seed}"]
    if config.budget == "quick" and not any(o.startswith("model=") for o in config.overrides):
        out.append(f"model={tiny_model()}")
    return out + list(config.overrides)


def tiny_model() -> Path:
    """The quick budget's model: a 2-layer LLaMA built from a config with SmolLM2's tokenizer
    (built once into the cache; no download)."""

    folder = cache_dir() / "tiny-llama"
    if not (folder / "config.json").is_file():
        build_tiny_llama(folder)
    return folder


def pruning_callback(trial: Any, recipe: Recipe, every_steps: int, data_dir: str | None):
    """A TrainerCallback that reports validation accuracy of the model in training to the
    trial (after every epoch, or every ``every_steps`` steps) and prunes the trial when the
    median pruner says so."""
    import optuna
    from transformers import TrainerCallback

    data = load_data(load_task(recipe.task), Path(data_dir) if data_dir else None)
    validation = data.split("validation")
    if recipe.eval_limit:
        validation = stratified_sample(validation, recipe.eval_limit, recipe.train.seed)
    card = {
        "name": f"trial-{trial.number}",
        "version": 0,
        "recipe": to_dict(recipe),
        "labels": data.spec.label_list,
        "task": data.spec.name,
        "task_file": str(data.spec.path),
    }

    class ReportValidation(TrainerCallback):
        def _report(self, state, model, tokenizer) -> None:
            side, was_training = tokenizer.padding_side, model.training
            clf = FinetunedClassifier(card["name"], model=model, tokenizer=tokenizer, card=card)
            preds = clf.predict(validation.texts)
            tokenizer.padding_side = side  # prediction pads left; training keeps its own side
            model.train(was_training)
            accuracy = sum(p.label == g for p, g in zip(preds, validation.labels)) / len(validation)
            trial.report(accuracy, state.global_step)
            print(f"trial {trial.number} step {state.global_step}: validation accuracy {accuracy * 100:.2f}%")
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {accuracy:.4f} at step {state.global_step}")

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if every_steps and state.global_step % every_steps == 0:
                self._report(state, model, processing_class)

        def on_epoch_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if not every_steps:
                self._report(state, model, processing_class)

    return ReportValidation()


def _trial_recipe(config: SweepConfig, overrides: list[str]) -> Recipe:
    return load_recipe(config.recipe, base_overrides(config) + overrides)


def run_sweep(config: SweepConfig) -> Any:
    """Search until the study holds ``trials`` finished trials (or ``timeout`` passes); returns
    the Optuna study. Trials left running by an interrupted search are marked failed."""
    import optuna

    name = study_name(config)
    study = optuna.create_study(
        study_name=name,
        storage=storage_url(config),
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    for stale in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(stale.number, state=optuna.trial.TrialState.FAIL)
        print(f"trial {stale.number} was left running by an interrupted search: marked failed")
    total = config.trials or BUDGETS[config.budget]["trials"]
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)))
    models_root = Path(config.models_dir) if config.models_dir else None

    def objective(trial: Any) -> float:
        recipe = _trial_recipe(config, suggest(trial, config.budget))
        model_name = f"{name}-trial{trial.number}"
        trial.set_user_attr("recipe", to_dict(recipe))
        every = BUDGETS[config.budget].get("report_steps", 1 if config.budget == "quick" else 0)
        try:
            out = train(
                recipe,
                name=model_name,
                runs_dir=config.runs_dir,
                data_dir=config.data_dir,
                models_root=models_root,
                callbacks=[pruning_callback(trial, recipe, every, config.data_dir)],
                run_extra={"sweep_study": name, "sweep_trial": trial.number, "sweep_budget": config.budget},
            )
        except optuna.TrialPruned:
            unfinished = model_store.unfinished_version(model_name, models_root)
            if unfinished is not None:
                shutil.rmtree(unfinished, ignore_errors=True)
            raise
        import json

        card = json.loads((out / "model_card.json").read_text())
        evaluation = card["evaluations"]["validation"]
        trial.set_user_attr("run_id", evaluation["run_id"])
        trial.set_user_attr("model", f"{model_name}:v{card['version']}")
        return float(evaluation["accuracy"])

    remaining = total - done
    print(f"study {name}: {done} finished trial(s) stored, {max(remaining, 0)} to run (storage {storage_url(config)})")
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=config.timeout, catch=(UserError,))
    return study


def final_refit(config: SweepConfig) -> Path:
    """Refit the best trial's recipe on train+validation and evaluate it on the test split."""
    import optuna

    name = study_name(config)
    try:
        study = optuna.load_study(study_name=name, storage=storage_url(config))
        best = study.best_trial
    except (KeyError, ValueError):
        raise UserError(f"study '{name}' has no finished trial in {storage_url(config)}; run the sweep first (without --final)") from None
    recipe = load_recipe(
        config.recipe,
        base_overrides(config) + _overrides_of(best.params, config.budget) + ["fit_split=train+validation", "eval_splits=[test]"],
    )
    print(
        f"best trial {best.number}: validation accuracy {best.value * 100:.2f}%, {best.params}; refit on train+validation, evaluated on test once"
    )
    out = train(
        recipe,
        name=f"{name}-final",
        runs_dir=config.runs_dir,
        data_dir=config.data_dir,
        models_root=Path(config.models_dir) if config.models_dir else None,
        run_extra={"sweep_study": name, "sweep_trial": best.number, "sweep_final": True},
    )
    assert out is not None
    return out


def _overrides_of(params: dict[str, Any], budget: str) -> list[str]:
    """A finished trial's parameters as recipe overrides (the same mapping as `suggest`)."""
    import optuna

    return suggest(optuna.trial.FixedTrial(params), budget)


def summary(study: Any) -> str:
    """One line per trial and the best one."""
    import optuna

    lines = []
    for t in study.trials:
        value = f"{t.value * 100:.2f}%" if t.value is not None else "-"
        lines.append(f"trial {t.number:>3} {t.state.name:<8} validation {value:>7}  {t.params}")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if finished:
        best = study.best_trial
        lines.append(
            f"best: trial {best.number}, validation accuracy {best.value * 100:.2f}% ({best.user_attrs.get('model')}); "
            "refit it on train+validation and test it once with --final"
        )
    return "\n".join(lines)


class RecipeClassifier(ClassifierBase):
    """A recipe as a `Classifier` that trains on whatever rows ``fit`` gets (the learning-curve
    and noise experiments); the model lives in a temporary folder until ``close``."""

    name = "finetuned"

    def __init__(self, recipe: Recipe, data_dir: str | None = None) -> None:
        self.recipe = dataclasses.replace(recipe, eval_splits=[])
        self.data_dir = data_dir

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "RecipeClassifier":
        self.root_ = Path(tempfile.mkdtemp(prefix="curve-model-"))
        rows = Split("train", [f"row{i}" for i in range(len(texts))], list(texts), list(labels))
        out = train(self.recipe, data_dir=self.data_dir, models_root=self.root_, fit_override=rows)
        self.model_ = FinetunedClassifier(self.recipe.name, folder=out)
        return self

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return self.model_.predict(texts)

    def close(self) -> None:
        if hasattr(self, "root_"):
            shutil.rmtree(self.root_, ignore_errors=True)
