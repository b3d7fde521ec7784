"""A model is never scored on rows it was trained on, unless the user forces it (then flagged)."""

from __future__ import annotations

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import load_data, load_task
from dispute_classifier.core.types import ClassifierBase, Prediction
from evaluation.decision import VerdictConfig, build_report
from evaluation.evaluate import evaluate
from finetune.recipe import load_recipe


class TrainedElsewhere(ClassifierBase):
    """Stands for a saved model trained on train+validation of the toy task."""

    name = "trained-elsewhere"

    def fitted_rows(self):
        return {"task": "toy", "data_hash": None, "splits": ["train", "validation"]}

    def predict(self, texts):
        return [Prediction("refund", 0.5) for _ in texts]


def test_scoring_a_split_the_model_learnt_from_is_refused_or_flagged(toy_task, tmp_path):
    data = load_data(load_task(toy_task))
    with pytest.raises(UserError, match="was trained on the validation rows of task toy"):
        evaluate(TrainedElsewhere(), data, "validation", approach="x", category="finetuned", runs_root=tmp_path, progress=False)
    run = evaluate(
        TrainedElsewhere(), data, "validation", approach="x", category="finetuned", runs_root=tmp_path, progress=False, allow_overlap=True
    )
    assert run.meta.data.overlap == "trained on the validation rows"
    test = evaluate(TrainedElsewhere(), data, "test", approach="x", category="finetuned", runs_root=tmp_path, progress=False)
    assert test.meta.data.overlap is None
    report = build_report([run], "toy", "validation", VerdictConfig(min_shared_examples=1))
    assert report["leaderboard"][0]["overlap"] and any("fitted on (forced" in r for r in report["verdict"]["reasons"])


def test_a_recipe_cannot_evaluate_on_the_rows_it_trains_on():
    with pytest.raises(UserError, match="fit_split=train\\+validation trains on the validation rows"):
        load_recipe("smollm2-135m-lora-cls-cpu", ["fit_split=train+validation"])
    assert load_recipe("smollm2-135m-lora-cls-cpu", ["fit_split=train+validation", "eval_splits=[test]"]).eval_splits == ["test"]


def test_finetuned_quantize_setting_is_checked():
    from finetune.classifier import FinetunedConfig

    with pytest.raises(UserError, match="finetuned.quantize must be none or int8"):
        FinetunedConfig(quantize="int4")
