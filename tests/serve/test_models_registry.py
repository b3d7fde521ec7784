"""Versions and aliases of saved models: register a baseline, promote, rollback, show, and
NAME@ALIAS wherever NAME:VERSION works."""

from __future__ import annotations

import json

import pytest

from dispute_classifier.commands.cli import main
from dispute_classifier.core.errors import UserError


@pytest.fixture
def two_versions(toy_task, models_root):
    from dispute_classifier.commands.models import RegisterConfig, register

    for _ in range(2):
        register(RegisterConfig("tfidf", task=str(toy_task), name="base"))
    return models_root


def test_register_saves_a_fitted_baseline_with_its_monitoring_profile(two_versions, toy_task):
    card = json.loads((two_versions / "base" / "v2" / "model_card.json").read_text())
    assert card["kind"] == "approach" and card["approach"] == "tfidf" and card["version"] == 2
    assert set(card["profile"]["train_distribution"]) == {"refund", "fee", "fraud"}
    assert len(card["profile"]["validation"]["confidence"]) == len(card["profile"]["validation"]["correct"]) > 0
    assert (two_versions / "base" / "v2" / "model.joblib").is_file()


def test_promote_and_rollback_keep_who_when_why(two_versions, capsys):
    from finetune import model_store

    assert main(["models", "promote", "base:1", "--alias", "champion", "--reason", "first release"]) == 0
    assert main(["models", "promote", "base:v2", "--alias", "champion", "--reason", "better on validation"]) == 0
    assert main(["models", "promote", "base:2", "--alias", "challenger"]) == 0
    assert model_store.aliases("base") == {"champion": 2, "challenger": 2}  # one version, several aliases
    assert model_store.resolve("base@champion").name == "v2"
    assert main(["models", "rollback", "base", "--alias", "champion", "--reason", "regression in prod"]) == 0
    assert model_store.aliases("base") == {"champion": 1, "challenger": 2}
    events = model_store.alias_events("base")
    assert [(e["action"], e["alias"], e["version"]) for e in events][-1] == ("rollback", "champion", 1)
    assert all(e["by"] and e["at"] for e in events) and events[-1]["why"] == "regression in prod"
    capsys.readouterr()
    assert main(["models", "show", "base@champion"]) == 0
    out = capsys.readouterr().out
    assert "base@champion -> base:v1" in out and "rollback @champion -> v1 from v2" in out and "regression in prod" in out
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("base:v1") and "@champion" in line for line in lines)
    assert any(line.startswith("base:v2") and "@challenger" in line for line in lines)
    assert main(["finetune", "list"]) == 0 and "base:v2" in capsys.readouterr().out  # finetune list still works


def test_rolling_back_past_the_first_promotion_removes_the_alias(two_versions):
    from finetune import model_store

    model_store.promote("base:1", "champion")
    assert model_store.rollback("base", "champion") == (1, None)
    assert model_store.aliases("base") == {}
    with pytest.raises(UserError, match="no alias 'champion'"):
        model_store.resolve("base@champion")
    with pytest.raises(UserError, match="no alias 'champion' to roll back"):
        model_store.rollback("base", "champion")


def test_bad_alias_names_and_refs_are_user_errors(two_versions):
    from finetune import model_store

    with pytest.raises(UserError, match="must start with a letter"):
        model_store.promote("base:1", "2")
    with pytest.raises(UserError, match="NAME:VERSION"):
        model_store.promote("base", "champion")
    with pytest.raises(UserError, match="no finished version '7'"):
        model_store.promote("base:7", "champion")


def test_name_at_alias_works_where_name_version_works(two_versions, toy_task, tmp_path):
    from dispute_classifier.core.runconfig import RunConfig
    from dispute_classifier.core.task import load_task
    from dispute_classifier.resolution.resolve import resolve_classifier
    from finetune import model_store

    model_store.promote("base:2", "champion")
    spec = load_task(toy_task)
    by_alias = resolve_classifier("base@champion", spec, RunConfig(task=spec.name))
    by_version = resolve_classifier("base:2", spec, RunConfig(task=spec.name))
    assert (by_alias.name, by_alias.version) == (by_version.name, by_version.version) == ("base", "v2")
    out = tmp_path / "out.csv"
    rc = main(
        [
            "classify",
            str(toy_task.parent / "test.csv"),
            "--output",
            str(out),
            "--model",
            "base@champion",
            "--task",
            str(toy_task),
            "--quiet",
        ]
    )
    assert rc == 0 and "base,v2" in out.read_text()


def test_a_missing_or_corrupt_model_fails_serve_in_one_line(two_versions, toy_task, capsys):
    from tests.serve.conftest import free_port

    assert main(["serve", "--model", "nothing:3", "--task", str(toy_task), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: champion model 'nothing:3'") and err.count("\n") == 1 and "Traceback" not in err
    (two_versions / "base" / "v2" / "model.joblib").write_bytes(b"not a pickle")
    assert (
        main(["serve", "--model", "base:2", "--task", str(toy_task), "--port", str(free_port()), "--log-db", str(two_versions / "log.db")])
        == 2
    )
    err = capsys.readouterr().err
    assert "model.joblib is unreadable" in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_fine_tuned_model_resolves_by_alias(models_root):
    """`evaluate --approach finetuned --model NAME@ALIAS` goes through the same registry."""
    from finetune import model_store
    from finetune.classifier import FinetunedClassifier

    for v in (1, 2):
        folder = models_root / "ft" / f"v{v}"
        folder.mkdir(parents=True)
        card = {
            "name": "ft",
            "version": v,
            "task": "toy",
            "labels": ["refund", "fee", "fraud"],
            "recipe": {"prompt": {}, "head": "classification"},
        }
        (folder / "model_card.json").write_text(json.dumps(card))
    model_store.promote("ft:1", "champion")
    clf = FinetunedClassifier("ft@champion")  # reads the card only; the weights load on first use
    assert clf.folder == models_root / "ft" / "v1" and clf.name == "finetuned:ft:v1"
