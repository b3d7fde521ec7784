"""The experiment: stages through the shared evaluator, missing approaches and failures
reported in one line while the rest run, finished runs reused on a rerun."""

from __future__ import annotations

import pytest

from dispute_classifier.commands.experiment import (
    Profile,
    Stage,
    available_profiles,
    load_profile,
    run_experiment,
    skipped_stages,
)
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.plugins import Approach
from evaluation.decision import VerdictConfig
from evaluation.runs import scan_runs


def test_shipped_profiles_load_and_quick_says_what_it_cuts():
    assert {"quick", "full"} <= set(available_profiles())
    quick, full = load_profile("quick"), load_profile("full")
    assert quick.cuts and not full.cuts
    assert [s.approach for s in quick.stages[:3]] == ["tfidf", "embedding", "knn"]
    assert all(s.limit for s in quick.stages[3:]) and not any(s.limit for s in full.stages)
    assert {s.approach for s in full.stages} >= {"zero-shot", "prompt", "rag", "finetuned", "tfidf"}
    with pytest.raises(UserError, match="unknown profile 'nope'"):
        load_profile("nope")


def test_quick_names_each_full_stage_it_skips_with_a_command_that_runs_it(tmp_path):
    """make run never trains the guide's generative SFT recipe or the encoder: it must say so and
    how to run them, repeating the task as given; the suggested commands must be accepted."""
    import shlex

    from dispute_classifier.commands.cli import build_parser
    from finetune.recipe import load_recipe

    task = str(tmp_path / "my task.yaml")
    lines = skipped_stages(load_profile("quick"), task)
    assert {line.split(" ")[0] for line in lines} == {"finetuned-sft", "finetuned-encoder"}
    assert skipped_stages(load_profile("full"), task) == []
    for line in lines:
        argv = shlex.split(line.split("run it with: ")[1])[1:]
        if argv[:2] == ["finetune", "train"]:  # the recipe with the line's overrides loads (and may score test)
            recipe, overrides = argv[3], argv[4:]
            assert load_recipe(recipe, overrides).task == task
        else:
            args = build_parser().parse_args(argv)
            assert args.task == task and "finetuned-encoder" in argv


def test_stages_fail_alone_and_reruns_reuse(toy_task, tmp_path, monkeypatch, register_approach):
    def explode(cfg):
        raise RuntimeError("backend crashed\nwith a long second line")

    register_approach(Approach("boom", "always fails", "classical", explode))
    monkeypatch.delenv("NO_SUCH_KEY_FOR_TESTS", raising=False)
    profile = Profile(
        "test profile",
        [
            Stage("tfidf"),
            Stage("crystal-ball", limit=3),
            Stage("tfidf", name="tfidf-bad", overrides=["tfidf.CC=1"]),
            Stage("boom"),
            Stage("tfidf", name="tfidf-api", needs_env=["NO_SUCH_KEY_FOR_TESTS"]),
            Stage("tfidf", name="tfidf-small", limit=3, overrides=["tfidf.C=1"]),
        ],
        cuts=["a test cut"],
        name="test",
    )
    lines: list[str] = []
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    results, report, (js, md) = run_experiment(
        str(toy_task),
        profile,
        runs_root=str(runs),
        reports_dir=str(reports),
        progress=False,
        say=lines.append,
        verdict=VerdictConfig(min_shared_examples=3),
    )
    status = {r.stage: r.status for r in results}
    assert status == {
        "tfidf": "ran",
        "crystal-ball": "not available",
        "tfidf-bad": "failed",
        "boom": "failed",
        "tfidf-api": "skipped",
        "tfidf-small": "ran",
    }
    detail = {r.stage: r.detail for r in results}
    assert "not available in this build" in detail["crystal-ball"]
    assert "unknown config key 'tfidf.CC'" in detail["tfidf-bad"]
    assert detail["boom"] == "RuntimeError: backend crashed"
    assert "NO_SUCH_KEY_FOR_TESTS" in detail["tfidf-api"]
    text = "\n".join(lines)
    assert "cut: a test cut" in text and "[1/6] tfidf: ran" in text and "verdict: " in text
    assert js.is_file() and md.is_file() and (reports / "data-check-toy.json").is_file()
    assert report["verdict"]["recommendation"] == "tfidf"
    assert {s["stage"]: s["status"] for s in report["stages"]}["boom"] == "failed"  # the report shows what failed
    assert "boom" in md.read_text() and "failed" in md.read_text()
    assert len(scan_runs(runs)[0]) == 2

    lines.clear()
    again, report, _ = run_experiment(
        str(toy_task), profile, runs_root=str(runs), reports_dir=str(reports), progress=False, say=lines.append
    )
    assert report["verdict"]["headline"].startswith("Not yet decidable")  # 6 examples are too few by default
    assert {r.stage: r.status for r in again}["tfidf"] == "reused"
    assert {r.stage: r.status for r in again}["tfidf-small"] == "reused"
    assert len(scan_runs(runs)[0]) == 2  # nothing ran twice
    reused = {r.stage: r.run_path for r in again}
    assert reused["tfidf"] == {r.stage: r.run_path for r in results}["tfidf"]


def test_damaged_run_is_not_reused(toy_task, tmp_path):
    profile = Profile("one stage", [Stage("tfidf")], name="one")
    runs = tmp_path / "runs"
    first, _, _ = run_experiment(
        str(toy_task), profile, runs_root=str(runs), reports_dir=str(tmp_path / "r"), progress=False, say=lambda s: None
    )
    (first[0].run_path / "predictions.jsonl").write_text("")  # truncated
    second, _, _ = run_experiment(
        str(toy_task), profile, runs_root=str(runs), reports_dir=str(tmp_path / "r"), progress=False, say=lambda s: None
    )
    assert second[0].status == "ran" and second[0].run_path != first[0].run_path


def test_without_a_terminal_each_stage_prints_one_bar_line_and_one_result_line(toy_task, tmp_path, capsys):
    """In a log (no terminal) a tqdm bar leaves every redraw behind; each stage now leaves one
    progress line (count, time, rate) and one result line."""
    profile = Profile("two stages", [Stage("tfidf"), Stage("tfidf", name="tfidf-c2", overrides=["tfidf.C=2"])], name="test")
    run_experiment(
        str(toy_task),
        profile,
        runs_root=str(tmp_path / "runs"),
        reports_dir=str(tmp_path / "reports"),
        progress=True,
        verdict=VerdictConfig(min_shared_examples=3),
    )
    out, err = capsys.readouterr()
    bars = [line for line in err.splitlines() if line.startswith("predict ")]
    assert len(bars) == 2 and all(line.startswith("predict tfidf: 6/6 ex in ") and "ex/s" in line for line in bars), err
    assert "\r" not in err and "%|" not in err  # no tqdm redraws
    for i, name in ((1, "tfidf"), (2, "tfidf-c2")):
        assert sum(line.startswith(f"[{i}/2] {name}: ran") for line in out.splitlines()) == 1, out


def test_progress_bar_is_tqdm_in_a_terminal_and_nothing_when_quiet():
    import io

    from dispute_classifier.core.progress import LineBar, progress_bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    with progress_bar(3, "predict x", unit="ex", file=Terminal()) as bar:
        assert type(bar).__name__ == "tqdm" or "tqdm" in type(bar).__module__
    log = io.StringIO()
    with progress_bar(3, "predict x", unit="ex", file=log) as bar:
        assert isinstance(bar, LineBar)
        bar.update(3)
    assert log.getvalue().startswith("predict x: 3/3 ex in ") and log.getvalue().count("\n") == 1
    quiet = io.StringIO()
    with progress_bar(3, "predict x", enabled=False, file=quiet) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""
