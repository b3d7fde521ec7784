"""The one-command experiment: every approach this build can run, then the verdict.

A profile (``dispute_classifier/commands/profiles/<name>.yaml``) lists stages; each stage is one evaluation
through the shared evaluator, as ``dispute-classifier evaluate`` would run it. A stage whose
approach is not registered in this build, whose API key is missing, or that fails, is
reported in one line and the rest still run. A stage whose settings already have a finished
run on the same data reuses it. The data check, the decision report and a pointer to the
dashboard close the run.
"""

from __future__ import annotations

import math
import os
import shlex
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dispute_classifier.core import datacheck
from dispute_classifier.core.config import from_dict, merge, parse_overrides, read_yaml, to_dict
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable, money
from dispute_classifier.core.runconfig import run_config
from dispute_classifier.core.task import TaskData, load_data, load_task, stratified_sample, task_command
from dispute_classifier.resolution.approaches import load_approaches
from evaluation.decision import build_report, write_report, write_stages
from evaluation.evaluate import evaluate_config
from evaluation.runs import runs_dir, scan_runs
from finetune.model_store import find_trained
from finetune.recipe import load_recipe
from finetune.train import train

PROFILE_DIR = Path(__file__).with_name("profiles")


@dataclass
class Stage:
    """One evaluation of the experiment."""

    approach: str
    """Approach name from the registry (`dispute-classifier evaluate --help` lists them)."""
    name: str | None = None
    """Name shown in the progress lines (default: the approach)."""
    limit: int | None = None
    """Evaluate a seeded, stratified subsample of this many examples (as evaluate --limit)."""
    overrides: list[str] = field(default_factory=list)
    """Settings as evaluate --set KEY=VALUE takes them."""
    needs_env: list[str] = field(default_factory=list)
    """Environment variables the stage needs (an API key); without them it is skipped, and says so."""
    recipe: str | None = None
    """For a finetuned stage: train this recipe first, unless a saved model was already trained
    with exactly these recipe settings, and evaluate that model."""
    recipe_overrides: list[str] = field(default_factory=list)
    """KEY=VALUE settings of the recipe (e.g. train.max_steps=60 for a short run)."""

    @property
    def label(self) -> str:
        return self.name or self.approach


@dataclass
class Profile:
    """A named list of stages, and what it leaves out compared to the full run."""

    description: str
    """One paragraph shown at the start of the experiment."""
    stages: list[Stage]
    """The evaluations, in order (cheap ones first, so a failure late costs least)."""
    cuts: list[str] = field(default_factory=list)
    """What this profile cuts compared to the full reference run that its stages do not show,
    printed at start and end after the cuts measured on the task (`measured_cuts`: subsample
    sizes, per-label counts, interval widths, shortened training)."""
    name: str = ""
    """Filled in from the file name."""


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> Profile:
    """A profile by name (``dispute_classifier/commands/profiles/<name>.yaml``) or by path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UserError(f"unknown profile '{name_or_path}'; known profiles: {', '.join(available_profiles())} (or pass a YAML file)")
    profile = from_dict(Profile, read_yaml(path))
    profile.name = path.stem
    return profile


@dataclass
class StageResult:
    """What happened to one stage."""

    stage: str
    status: str
    """ran, reused, not available, skipped or failed."""
    detail: str
    run_path: Path | None = None
    seconds: float = 0.0
    approach: str = ""
    """The stage's approach (a failed stage's older runs are not used in its place)."""
    limit: int | None = None
    """The stage's subsample size."""

    def as_dict(self) -> dict[str, Any]:
        """What the decision report records of the stage."""
        return {
            "stage": self.stage,
            "status": self.status,
            "detail": self.detail,
            "approach": self.approach,
            "limit": self.limit,
            "run": str(self.run_path) if self.run_path else None,
            "seconds": round(self.seconds, 1),
        }


def _one_line(exc: BaseException) -> str:
    """The first line of an error; unexpected ones keep their type name."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return first if isinstance(exc, UserError) else f"{type(exc).__name__}: {first}"


def interval_ratio(n_full: int, n_sub: int) -> float:
    """How many times as wide a 95 % accuracy interval on ``n_sub`` examples is as one on
    ``n_full``: a binomial interval's width shrinks as 1/√n (the bootstrap's too, which the
    run records report; a test checks this against it)."""
    return math.sqrt(n_full / n_sub)


def _per_label(sample: Any, labels: set[str]) -> str:
    """Examples per label of a subsample: "3 per label", "1–3 per label", and how many of the
    split's ``labels`` it leaves out when it is smaller than the label set."""
    have = Counter(sample.labels)
    counts = [have[label] for label in labels]
    lo, hi = min(counts), max(counts)
    text = f"{lo} per label" if lo == hi else f"{lo}–{hi} per label"
    absent = sum(c == 0 for c in counts)
    return text + (f"; {absent} of {len(labels)} labels have none" if absent else "")


def measured_cuts(profile: Profile, data: TaskData, split: str, seed: int, task: str) -> list[str]:
    """What the profile's stages cut, in the numbers of this task: each subsample size with its
    examples per label and how much wider its intervals are, and each shortened training with
    the share of an epoch it is."""
    rows = data.split(split)
    by_limit: dict[int, list[str]] = {}
    for stage in profile.stages:
        if stage.limit and stage.limit < len(rows):
            by_limit.setdefault(stage.limit, []).append(stage.label)
    lines = []
    for limit, names in by_limit.items():
        sample = stratified_sample(rows, limit, seed)  # the rows the evaluator scores (same seed)
        lines.append(
            f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} scored on a seeded, stratified subsample of {limit:,} of the"
            f" {len(rows):,} {split} examples ({_per_label(sample, set(rows.labels))}), so {'its' if len(names) == 1 else 'their'}"
            f" 95 % intervals are about {interval_ratio(len(rows), limit):.1f} times as wide"
        )
    for stage in profile.stages:
        if not stage.recipe:
            continue
        try:
            recipe = load_recipe(stage.recipe, [f"task={task}", *stage.recipe_overrides])
        except UserError:
            continue  # the stage itself reports a broken recipe when it runs
        t = recipe.train
        if t.max_steps > 0:
            fit = data.fit_split("test") if recipe.fit_split == "train+validation" else data.split("train")
            epochs = t.max_steps * t.batch_size * t.gradient_accumulation_steps / len(fit)
            share = f"{epochs:.2g} of an epoch" if epochs < 1 else f"{epochs:.2g} epochs"
            lines.append(
                f"{stage.label} trains {recipe.name} for {t.max_steps:,} steps, about {share} over its"
                f" {len(fit):,} training rows, instead of the recipe's {t.epochs:g} epochs"
            )
    lines += skipped_stages(profile, task)
    return lines


def stage_command(stage: Stage, task: str) -> str:
    """The command line that runs ``stage`` on its own (what a profile that leaves it out suggests)."""
    if stage.recipe:  # train the recipe (it scores its own eval splits), then evaluate the saved model
        overrides = list(stage.recipe_overrides)
        if "fit_split=train+validation" in overrides and not any(o.startswith("eval_splits=") for o in overrides):
            overrides.append("eval_splits=[test]")  # trained on the whole training file, it may only score test
        rest = " ".join(["--recipe", stage.recipe, *(shlex.quote(o) for o in overrides)])
        return f"dispute-classifier finetune train {rest} task={shlex.quote(task)}"
    rest = " ".join([f"--approach {stage.approach}", *(f"--set {shlex.quote(o)}" for o in stage.overrides)])
    return task_command("evaluate", task, rest)


def skipped_stages(profile: Profile, task: str) -> list[str]:
    """The full profile's stages this profile does not run, each with the command that runs it."""
    if profile.name == "full":
        return []
    full = load_profile("full")
    mine = {s.label for s in profile.stages}
    return [
        f"{s.label} (in the full profile) is not run here; run it with: {stage_command(s, task)}"
        for s in full.stages
        if s.label not in mine
    ]


def _summary(run: Any) -> str:
    m = run.metrics
    lo, hi = m["accuracy_ci95"]
    return f"{run.label}: accuracy {m['accuracy'] * 100:.2f}% ({lo * 100:.1f}–{hi * 100:.1f}), macro-F1 {m['macro_f1'] * 100:.2f}%, $/1k {money(m['cost_per_1k_usd'])}"


def train_for_stage(stage: Stage, base: dict[str, Any]) -> str:
    """The saved model (NAME:VERSION) that a finetuned stage evaluates: one trained earlier with
    exactly the stage's recipe settings, or a new one trained now."""

    task_override = [f"task={base['task']}"] if "task" in base else []
    # The experiment scores the model on its own split below. Training scores the validation
    # split when it learnt from train only, so every trained model has a validation record (what
    # "chosen on validation" rests on); one that learnt from train + validation scores nothing there.
    recipe = load_recipe(stage.recipe, task_override + list(stage.recipe_overrides))
    recipe = load_recipe(
        stage.recipe,
        task_override + list(stage.recipe_overrides) + [f"eval_splits=[{'validation' if recipe.fit_split == 'train' else ''}]"],
    )
    found = find_trained(to_dict(recipe))
    if found is None:
        found = train(recipe, data_dir=base.get("data_dir"), runs_dir=base.get("runs_dir"))
    return f"{found.parent.name}:{found.name}"


def run_stage(stage: Stage, data: Any, base: dict[str, Any], prices: Any, progress: bool) -> StageResult:
    """Evaluate one stage, or reuse its finished run; never raises (except Ctrl-C)."""
    result = _run_stage(stage, data, base, prices, progress)
    result.approach, result.limit = stage.approach, stage.limit
    return result


def _run_stage(stage: Stage, data: Any, base: dict[str, Any], prices: Any, progress: bool) -> StageResult:
    t0 = time.perf_counter()
    if stage.approach not in load_approaches():
        return StageResult(stage.label, "not available", f"approach '{stage.approach}' is not available in this build")
    missing = [v for v in stage.needs_env if not os.environ.get(v)]
    if missing:
        return StageResult(stage.label, "skipped", f"needs {', '.join(missing)} (set it to run this stage)")
    try:
        settings = merge({**base, "approach": stage.approach, "limit": stage.limit}, parse_overrides(stage.overrides))
        if stage.recipe:
            settings = merge(settings, {"finetuned": {"model": train_for_stage(stage, base)}})
        cfg = run_config(settings)
        run, reused = evaluate_config(cfg, data, prices, progress=progress, reuse=True)
        if reused:
            return StageResult(stage.label, "reused", f"{_summary(run)} (run {run.run_id})", run.path, time.perf_counter() - t0)
        return StageResult(stage.label, "ran", _summary(run), run.path, time.perf_counter() - t0)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a broken stage must not stop the others; its cause is one line
        if not isinstance(exc, UserError) and os.environ.get("DISPUTE_CLASSIFIER_DEBUG"):
            traceback.print_exc()
        return StageResult(stage.label, "failed", _one_line(exc), None, time.perf_counter() - t0)


def run_experiment(
    task: str,
    profile: Profile,
    *,
    split: str = "test",
    runs_root: str | None = None,
    reports_dir: str = "reports",
    data_dir: str | None = None,
    prices_path: str | None = None,
    hardware: str | None = None,
    seed: int = 0,
    verdict: Any = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[list[StageResult], dict[str, Any], tuple[Path, Path]]:
    """Run every stage of ``profile`` on ``task``, then write the data check and the decision
    report. Returns the stage results, the report and its (JSON, Markdown) paths."""

    started = time.perf_counter()
    root = runs_dir(runs_root)
    prices = PriceTable.load(Path(prices_path) if prices_path else None)
    data = load_data(load_task(task), Path(data_dir) if data_dir else None)
    cuts = measured_cuts(profile, data, split, seed, task) + profile.cuts
    say(f"experiment: task {data.spec.name}, split {split}, profile {profile.name} ({len(profile.stages)} stages), runs in {root}")
    say(f"  {profile.description}")
    for cut in cuts:
        say(f"  cut: {cut}")

    check = datacheck.check(data)
    datacheck.write_report(check, Path(reports_dir))
    say(
        f"[data] {data.spec.name}: "
        + ", ".join(f"{k} {v:,}" for k, v in check["sizes"].items())
        + f"; {len(check['train_test_overlap'])} test text(s) also in train, {check['near_duplicates']['n']} with a same-label near-duplicate"
        f" (left out of the de-duplicated accuracy) -> {reports_dir}/data-check-{data.spec.name}.json"
    )

    base = {
        "task": task,
        "split": split,
        "seed": seed,
        "runs_dir": str(root),
        "data_dir": data_dir,
        "prices": prices_path,
        "hardware": hardware,
    }
    base = {k: v for k, v in base.items() if v is not None}
    results = []
    for i, stage in enumerate(profile.stages, start=1):
        say(f"[{i}/{len(profile.stages)}] {stage.label} ...")
        result = run_stage(stage, data, base, prices, progress)
        results.append(result)
        say(f"[{i}/{len(profile.stages)}] {stage.label}: {result.status} ({result.seconds:.0f} s) — {result.detail}")

    runs, skipped = scan_runs(root)
    stages = [r.as_dict() for r in results]
    write_stages(root, data.spec.name, split, stages)
    report = build_report(
        runs, data.spec.name, split, verdict, skipped, data_hash=data.data_hash, stages=stages, split_size=len(data.split(split))
    )
    paths = write_report(report, Path(reports_dir))
    counts = {s: sum(r.status == s for r in results) for s in ("ran", "reused", "not available", "skipped", "failed")}
    say("")
    say("stages: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" in {time.perf_counter() - started:.0f} s")
    if cuts:
        say(f"profile {profile.name} cut: " + "; ".join(cuts) + ". Use --profile full for the reference run.")
    say(f"verdict: {report['verdict']['headline']}")
    for reason in report["verdict"]["reasons"]:
        say(f"  - {reason}")
    failed = [r for r in results if r.status == "failed"]
    if failed:
        say(f"  ! {len(failed)} stage(s) failed and are not in the verdict: " + "; ".join(f"{r.stage}: {r.detail}" for r in failed))
    say(f"decision report: {paths[0]} and {paths[1]}")
    return results, report, paths
