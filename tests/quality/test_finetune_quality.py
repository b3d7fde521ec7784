"""The fine-tuned recipe in the curves experiment and the Optuna sweep, on a tiny LLaMA built
from a config (a few steps each)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("optuna")
pytest.importorskip("peft")

from tests.integration.test_finetune_tiny import env  # noqa: E402,F401,F811  (the tiny-LLaMA task fixture)


def _sweep(tmp, task, model, **kw):
    from finetune.sweep import SweepConfig

    return SweepConfig(
        recipe="smollm2-135m-lora-cpu",
        budget="quick",
        storage=f"sqlite:///{tmp}/sweep.db",
        runs_dir=str(tmp / "runs"),
        overrides=[f"task={task}", f"model={model}", "train.max_steps=2"],
        **kw,
    )


def test_sweep_trials_on_validation_resume_and_final(env):
    import optuna

    from evaluation.runs import scan_runs
    from finetune.sweep import final_refit, run_sweep

    tmp, task, model = env
    study = run_sweep(_sweep(tmp, task, model))
    first = [(t.number, t.state, t.params) for t in study.trials]
    assert len(first) == 2 and all(s == optuna.trial.TrialState.COMPLETE for _, s, _ in first)
    assert all(t.intermediate_values for t in study.trials)  # validation accuracy reported while training
    runs = [r for r in scan_runs(tmp / "runs")[0] if r.meta.extra.get("sweep_study")]
    assert sorted(r.meta.extra["sweep_trial"] for r in runs) == [0, 1]
    assert {r.meta.split for r in runs} == {"validation"}

    # the same command again, asking for 3: it continues from the 2 stored trials
    resumed = run_sweep(_sweep(tmp, task, model, trials=3))
    assert [(t.number, t.state, t.params) for t in resumed.trials][:2] == first and len(resumed.trials) == 3

    out = final_refit(_sweep(tmp, task, model))
    card = json.loads((out / "model_card.json").read_text())
    assert card["data"]["fit_split"] == "train+validation" and list(card["evaluations"]) == ["test"]
    finals = [r for r in scan_runs(tmp / "runs")[0] if r.meta.extra.get("sweep_final")]
    assert len(finals) == 1 and finals[0].meta.split == "test"
    assert finals[0].meta.extra["sweep_trial"] == resumed.best_trial.number

    # the verdict picks the final model on its trial's validation record, never on test
    from evaluation.decision import build_report

    report = build_report(scan_runs(tmp / "runs")[0], finals[0].meta.task, "test")
    assert report["finetune"]["finetuned"] == finals[0].label
    why = report["finetune"]["selection"]
    assert f"trial {resumed.best_trial.number} of sweep" in why and "refit on train+validation" in why
    # the card remembers the trial, so a later evaluation of the final model is traced to it too
    from finetune.classifier import FinetunedClassifier

    info = FinetunedClassifier(f"{card['name']}:{card['version']}", models_dir=str(out.parent.parent)).run_info()
    assert info["sweep_final"] is True and info["sweep_trial"] == resumed.best_trial.number


def test_final_without_trials_is_a_user_error(env):
    from dispute_classifier.core.errors import UserError
    from finetune.sweep import final_refit

    tmp, task, model = env
    with pytest.raises(UserError, match="no finished trial"):
        final_refit(_sweep(tmp, task, model, study="empty"))


def test_finetuned_recipe_as_a_curves_approach(env):
    from dispute_classifier.core.task import load_data, load_task
    from evaluation.curves import CurvesConfig, run_curves
    from finetune.recipe import load_recipe
    from finetune.sweep import RecipeClassifier

    tmp, task, model = env
    recipe = load_recipe(
        "smollm2-135m-lora-cls-cpu",
        [f"task={task}", f"model={model}", "train.max_steps=2", "train.batch_size=4", "train.warmup_steps=0", "train.save_steps=1000"],
    )
    cfg = CurvesConfig(
        task=str(task), approaches=["finetuned"], sizes=["all"], noise=[0.0, 0.2], seeds=[0], recipe=recipe.name, skip_finder=True
    )
    result = run_curves(cfg, load_data(load_task(task)), {"finetuned": lambda: RecipeClassifier(recipe)}, None, log=lambda _: None)
    assert [(p["approach"], p["noise"]) for p in result["points"]] == [("finetuned", 0.0), ("finetuned", 0.2)]
    assert all(0 <= p["accuracy"] <= 1 for p in result["points"])
    assert not list((tmp / "models").glob("*"))  # curve models live in temporary folders only
