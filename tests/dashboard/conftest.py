"""A fixture runs folder made by the project's own evaluator on the toy task: a real TF-IDF
run, a scripted API-prompted run and a scripted fine-tuned run (with a trainer log and a
model card), plus the decision and data-check reports the dashboard reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispute_classifier.core.types import ClassifierBase, Prediction, Usage
from tests.conftest import write_task

APP = Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py"


class Scripted(ClassifierBase):
    """Right on every test text except those in ``wrong``, where it answers the next label;
    bills like an API model (tokens at list price) when ``model`` has a price."""

    def __init__(self, name: str, gold: dict[str, str], wrong: set[str], labels: list[str], model: str | None = None) -> None:
        self.name, self.gold, self.wrong, self.labels, self.model = name, gold, wrong, labels, model
        if model:
            self.billing = "api"

    def fit(self, texts, labels):
        return self

    def predict(self, texts):
        from dispute_classifier.core.prices import PriceTable

        prices = PriceTable.load()
        out = []
        for text in texts:
            label = self.gold[text]
            if text in self.wrong:
                label = self.labels[(self.labels.index(label) + 1) % len(self.labels)]
            cost = prices.token_cost(self.model, 400, 3) if self.model else None
            out.append(Prediction(label, 0.7 if text in self.wrong else 0.95, Usage(400, 3, 0.01, cost)))
        return out


@dataclass
class Folders:
    runs: Path
    reports: Path
    tfidf_accuracy: float
    break_even: float | None


def make_folders(root: Path) -> Folders:
    from baselines.classical import TfidfClassifier
    from dispute_classifier.core import datacheck
    from dispute_classifier.core.task import load_data, load_task
    from evaluation.decision import VerdictConfig, build_report, write_report
    from evaluation.evaluate import evaluate
    from evaluation.runs import scan_runs

    (root / "task").mkdir(parents=True)
    data = load_data(load_task(write_task(root / "task")))
    runs, reports = root / "runs", root / "reports"
    test = data.split("test")
    gold = dict(zip(test.texts, test.labels))
    labels = data.spec.label_list
    tfidf = evaluate(TfidfClassifier(), data, "test", approach="tfidf", runs_root=runs, progress=False)
    evaluate(
        Scripted("prompt", gold, {test.texts[0], test.texts[3]}, labels, model="gpt-4o-mini"),
        data,
        "test",
        approach="prompt",
        model="gpt-4o-mini",
        extra={"llm": {"backend": "api", "model": "gpt-4o-mini", "where": "OpenAI"}},
        runs_root=runs,
        progress=False,
    )
    model_dir = root / "models" / "smol-ft-1"
    model_dir.mkdir(parents=True)
    (model_dir / "trainer_log.jsonl").write_text(
        "".join(
            json.dumps({"step": s, "loss": 2.5 / s, "learning_rate": 5e-4 * (1 - s / 40), "epoch": s / 40}) + "\n" for s in range(1, 41)
        )
    )
    (model_dir / "model_card.md").write_text("# smol-ft:1\n\nLoRA r=16 on SmolLM2-135M, 40 steps, toy data.\n")
    (model_dir / "model_card.json").write_text(json.dumps({"base_model": "SmolLM2-135M-Instruct", "lora_r": 16}))
    extra = {"training_cost_usd": 0.05, "train_wall_s": 1800, "hardware": "cpu-2core", "model_dir": str(model_dir)}
    evaluate(
        Scripted("finetuned", gold, {test.texts[3]}, labels),
        data,
        "test",
        approach="finetuned",
        model="smol-ft:1",
        extra=extra,
        runs_root=runs,
        progress=False,
    )
    # six toy test examples: the report is made with a minimum of 1 shared example so that it decides
    report = build_report(scan_runs(runs)[0], "toy", "test", VerdictConfig(min_shared_examples=1))
    write_report(report, reports)
    datacheck.write_report(datacheck.check(data, sample_size=10), reports)
    # the learning-curve and label-noise report, as `dispute-classifier curves` writes it (tfidf, two sizes, two noise levels)
    from evaluation.curves import CurvesConfig, run_curves, write_curves
    from evaluation.label_issues import approach_maker

    tfidf_maker = approach_maker("tfidf", str(data.spec.path))
    curves = CurvesConfig(task=str(data.spec.path), approaches=["tfidf"], sizes=["12", "all"], noise=[0.0, 0.3], seeds=[0, 1], folds=3)
    write_curves(run_curves(curves, data, {"tfidf": tfidf_maker}, {"tfidf": tfidf_maker}, log=lambda _: None), reports)
    return Folders(runs, reports, tfidf.metrics["accuracy"], report["break_even"]["volume"])


def add_sweep(runs: Path, root: Path, models: Path) -> None:
    """Run records of a two-trial search (validation) and its final model (test), made by the
    evaluator as `dispute-classifier sweep` makes them, each model's card holding its recipe."""
    from dispute_classifier.core.task import load_data, load_task
    from evaluation.evaluate import evaluate

    data = load_data(load_task(str(root / "task" / "toy.yaml")))
    labels = data.spec.label_list
    study = "sweep-toy-cpu"
    for trial, split, lr, n_wrong in ((0, "validation", 1e-3, 2), (1, "validation", 4e-4, 0), (1, "test", 4e-4, 1)):
        rows = data.split(split)
        final = split == "test"
        folder = models / f"{study}-{'final' if final else f'trial{trial}'}"
        folder.mkdir(parents=True)
        recipe = {
            "head": "classification",
            "train": {"learning_rate": lr, "epochs": 2, "max_length": 160},
            "lora": {"r": 8, "alpha": 16, "dropout": 0.05},
        }
        (folder / "model_card.json").write_text(json.dumps({"recipe": recipe}))
        extra = {"sweep_study": study, "sweep_trial": trial, "model_dir": str(folder), **({"sweep_final": True} if final else {})}
        clf = Scripted("finetuned", dict(zip(rows.texts, rows.labels)), set(rows.texts[:n_wrong]), labels)
        evaluate(clf, data, split, approach="finetuned", model=f"{folder.name}:1", extra=extra, runs_root=runs, progress=False)


UNPRICED = "mystery-model-xl"
"""An API model the price table does not list: its cost is unknown."""


def add_unpriced_run(runs: Path, root: Path) -> str:
    """A prompted API run of a model without a price (its costs unknown), made by the evaluator;
    returns its label."""
    from dispute_classifier.core.task import load_data, load_task
    from evaluation.evaluate import evaluate

    data = load_data(load_task(str(root / "task" / "toy.yaml")))
    test = data.split("test")
    clf = Scripted("prompt", dict(zip(test.texts, test.labels)), {test.texts[1]}, data.spec.label_list, model=UNPRICED)
    run = evaluate(
        clf,
        data,
        "test",
        approach="prompt",
        model=UNPRICED,
        extra={"llm": {"backend": "api", "model": UNPRICED, "where": "elsewhere"}},
        runs_root=runs,
        progress=False,
    )
    return run.label


@pytest.fixture(scope="session")
def dashboard_folders(tmp_path_factory: pytest.TempPathFactory) -> Folders:
    return make_folders(tmp_path_factory.mktemp("dashboard"))
