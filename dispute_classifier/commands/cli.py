"""The `dispute-classifier` command line: the composition root of the project.

Subcommands import what they need when they run, so ``--help`` and the classical
baselines start without loading torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any, Callable

from dispute_classifier import __version__
from dispute_classifier.batch.driver import classify
from dispute_classifier.batch.job import (
    ClassifyConfig,
    approach_settings,
    format_summary,
)
from dispute_classifier.commands import models
from dispute_classifier.commands.args import (
    CompareArgs,
    DashboardArgs,
    DataCheckArgs,
    EvaluateArgs,
    ExperimentArgs,
    FinetuneArgs,
    LlamaServerArgs,
    ReportArgs,
    ResultsExportArgs,
    ResultsRenderArgs,
)
from dispute_classifier.commands.experiment import load_profile, run_experiment
from dispute_classifier.commands.models import AliasConfig, RegisterConfig, list_lines
from dispute_classifier.commands.monitor import MonitorConfig, run_monitor
from dispute_classifier.commands.replay import (
    SPLITS,
    ReplayConfig,
    format_replay,
    replay,
)
from dispute_classifier.commands.serve import serve
from dispute_classifier.core import datacheck, plugins
from dispute_classifier.core.backends.llama_server import LlamaServer, ServerConfig
from dispute_classifier.core.config import (
    describe,
    field_docs,
    from_dict,
    load_config,
    merge,
    parse_overrides,
    read_yaml,
)
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable, money
from dispute_classifier.core.runconfig import RunConfig, model_override, run_config
from dispute_classifier.core.task import available_tasks, load_data, load_task
from dispute_classifier.resolution.approaches import load_approaches
from dispute_classifier.serving.settings import ServeConfig, check_port_free
from evaluation.compare import compare, format_leaderboard, latest_per_setting
from evaluation.curves import CurvesConfig, run_curves, write_curves
from evaluation.decision import VerdictConfig, build_report, read_stages, write_report
from evaluation.evaluate import evaluate_config
from evaluation.label_issues import LabelIssueConfig, approach_maker, label_issues
from evaluation.predlog import PREDLOG_ENV, db_url
from evaluation.runs import read_run, resolve_run, runs_dir, scan_runs
from finetune.recipe import Recipe, available_recipes, load_recipe
from finetune.sweep import (
    BUDGETS,
    RecipeClassifier,
    SweepConfig,
    final_refit,
    run_sweep,
    summary,
)
from finetune.train import train


def _config_epilog(cls: type) -> str:
    rows = describe(cls)
    width = max(len(k) for k, _, _ in rows)
    return "settings (--config FILE with these keys, or --set KEY=VALUE):\n" + "\n".join(
        f"  {k:<{width}}  {doc} [default {default}]" for k, default, doc in rows
    )


def _approaches_epilog(approaches: dict[str, Any]) -> str:
    """The registered approaches, from their registry entries, for ``evaluate --help``."""
    width = max(len(name) for name in approaches)
    return "approaches (--approach NAME):\n" + "\n".join(f"  {a.name:<{width}}  {a.category:<10} {a.summary}" for a in approaches.values())


# ---------------------------------------------------------------------------- commands


def cmd_tasks(args: argparse.Namespace) -> int:
    for name in available_tasks():
        spec = load_task(name)
        print(f"{name:<12} {len(spec.labels):>3} labels  {spec.description.split('.')[0]}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    spec = load_task(args.task)
    data = load_data(spec, Path(args.data_dir) if args.data_dir else None, strict=False)
    report = datacheck.check(data, sample_size=args.sample, seed=args.seed)
    if args.label_issues:
        report["label_issues"] = label_issues(data, _config_from_args(LabelIssueConfig, args), seed=args.seed)
    js, md = datacheck.write_report(report, Path(args.out))
    print(datacheck.summary(report))
    if args.label_issues:
        print(f"suspected label errors in train: {report['label_issues']['n_issues']} of {report['label_issues']['n_rows']:,} rows")
    print(f"wrote {js} and {md}")
    if report["bad_rows"] and not args.allow_bad_rows:
        print(
            f"error: {len(report['bad_rows']):,} bad row(s), listed in {md}: fix them, or pass --allow-bad-rows to go on", file=sys.stderr
        )
        return 1
    return 0


def _config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    positional: tuple[str, ...] = (),
    optional: bool = False,
    choices: dict[str, list[str]] | None = None,
    with_defaults: bool = False,
) -> None:
    """One argument per field of the config dataclass ``cls``, its docstring as the help text.

    By default every flag defaults to None (or False) so that only what the user typed
    overrides the dataclass (`_config_from_args` builds it); ``with_defaults`` puts the
    dataclass defaults on the namespace itself (for the plain argument classes of `args`).
    A list field is comma-separated text, or a repeatable flag with ``metadata={"repeat": True}``;
    a positional list takes any number of values.
    """
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "sections":  # registry-backed settings: --set SECTION.KEY=VALUE
            continue
        tp = hints[f.name]
        is_list = typing.get_origin(tp) is list
        tp = str if is_list else next((a for a in typing.get_args(tp) if a is not type(None)), tp)
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
        value = f.default if f.default is not dataclasses.MISSING else (f.default_factory() if has_default else None)  # type: ignore[misc]
        shown = "" if value in (None, False, []) or not has_default else f" [default {value}]"
        help_text = (docs.get(f.name, "") + shown).replace("%", "%%")
        extra: dict[str, Any] = {"default": value} if with_defaults and has_default else {}
        if f.name in positional:
            nargs = {"nargs": "*"} if is_list else ({"nargs": "?"} if has_default else {})
            parser.add_argument(f.name, metavar=f.name.upper(), help=help_text, **nargs, **extra)
        elif tp is bool:
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, action="store_true", help=help_text)
        elif is_list and f.metadata.get("repeat"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, action="append", metavar="KEY=VALUE", help=help_text)
        else:
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f.name,
                type=tp if tp in (int, float) else str,
                required=not has_default and not optional,
                help=help_text,
                choices=(choices or {}).get(f.name),
                **extra,
            )


def cmd_classify(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(ClassifyConfig)}
    cfg = from_dict(ClassifyConfig, {k: v for k, v in vars(args).items() if k in names and v is not None})
    summary = classify(cfg, approach_settings(cfg.task, args.config, args.set))
    print(format_summary(summary))
    return 0


def _run_config(args: argparse.Namespace):
    data: dict[str, Any] = read_yaml(Path(args.config)) if args.config else {}
    flags = {k: getattr(args, k, None) for k in _field_names(RunConfig)}
    data = merge(data, {k: v for k, v in flags.items() if v is not None and v is not False})
    if getattr(args, "backend", None):
        data = merge(data, {"llm": {"backend": args.backend}})
    if getattr(args, "model", None):
        # --model names the model of the chosen approach, as its registry entry says: a saved
        # model for finetuned, the chosen backend's LLM for the prompted approaches
        backend = (data.get("llm") or {}).get("backend")
        data = merge(data, model_override(data.get("approach", "tfidf"), args.model, backend))
    data = merge(data, parse_overrides(args.set or []))
    return run_config(data)


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name != "sections"]


def cmd_evaluate(args: argparse.Namespace) -> int:
    cfg = _run_config(args)
    prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
    data = load_data(load_task(cfg.task), Path(cfg.data_dir) if cfg.data_dir else None)
    run, _ = evaluate_config(cfg, data, prices, progress=not args.quiet)
    m = run.metrics
    lo, hi = m["accuracy_ci95"]
    cost = money(m["cost_per_1k_usd"])
    print(
        f"{data.spec.name}/{cfg.split} {run.label}: accuracy {m['accuracy'] * 100:.2f}% (95% CI {lo * 100:.2f}–{hi * 100:.2f}),"
        f" macro-F1 {m['macro_f1'] * 100:.2f}%, invalid {m['invalid_rate'] * 100:.1f}%,"
        f" {m['throughput_qps']:.1f} q/s, cost per 1k {cost}"
    )
    print(f"run record: {run.path}")
    return 0


def cmd_llama_server(args: argparse.Namespace) -> int:
    import signal
    import threading

    config = ServerConfig(model_path=args.model, n_ctx=args.n_ctx, threads=args.threads, **({"alias": args.alias} if args.alias else {}))
    # SIGTERM (a supervisor's stop, `kill`) must end the child as Ctrl-C does. Both only set a flag:
    # an exception raised at an arbitrary point (KeyboardInterrupt inside Popen.poll) can leave the
    # child's wait lock held, and stopping the child then hangs.
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stopping.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with LlamaServer(config, port=args.port) as server:
            print(f"llama.cpp server for {server.model_path.name} (model '{config.alias}') on {server.base_url}")
            print(f"use it:  export OPENAI_BASE_URL={server.base_url}   (Ctrl-C stops the server)", flush=True)
            while not stopping.wait(0.5):
                if server.process is None or server.process.poll() is not None:
                    raise UserError(f"the llama.cpp server stopped unexpectedly; log: {server.log_path}")
            print("stopping", file=sys.stderr)
            return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_results_export(args: argparse.Namespace) -> int:
    from evaluation.results import export

    runs = []
    for folder in args.runs_dirs or [None]:
        root = runs_dir(folder)
        if not root.is_dir():
            raise UserError(f"runs folder {root} does not exist; pass --runs-dirs with the folders that hold run records")
        found, skipped = scan_runs(root)
        for line in skipped:
            print(f"skipped: {line}", file=sys.stderr)
        runs += [r for r in found if args.task is None or r.meta.task == args.task]
    serving = [Path(f) for f in (args.serving or "").split(",") if f]
    for f in serving:
        if not f.is_file():
            raise UserError(f"serving result {f}: file not found (benchmarks/test_bench_serve.py writes reports/serving/<model>.json)")
    approaches = load_approaches()
    written = export(runs, Path(args.out), lambda a: approaches[a].summary if a in approaches else None, serving)
    print(f"wrote {len(written)} result file(s) under {args.out} from {len(runs)} run record(s); then: dispute-classifier results render")
    return 0


def cmd_results_render(args: argparse.Namespace) -> int:
    from evaluation.results import doc_files, load_results, render_files

    root = Path(args.results)
    if not root.is_dir():
        raise UserError(f"results folder {root} does not exist; write it with `dispute-classifier results export`")
    files = [Path(f) for f in args.files] or doc_files(Path.cwd())
    differ = render_files(files, load_results(root), check=args.check)
    if args.check:
        if differ:
            print(
                "tables that differ from the committed results (run `dispute-classifier results render`):\n  " + "\n  ".join(differ),
                file=sys.stderr,
            )
            return 1
        print(f"{len(files)} file(s): every results table matches {root}")
        return 0
    print(
        f"rendered {len(differ)} table(s) in {len(files)} file(s) from {root}"
        + (": " + ", ".join(differ) if differ else " (all were up to date)")
    )
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    root = runs_dir(args.runs_dir)
    if args.runs:
        runs = [read_run(resolve_run(ref, root)) for ref in args.runs]
    else:
        runs, skipped = scan_runs(root)
        try:
            task = load_task(args.task).name  # a task name or the path to its YAML
        except UserError:
            if not any(r.meta.task == args.task for r in runs):  # a task of the runs alone (its YAML moved)
                raise
            task = args.task
        for line in skipped:
            print(f"skipped: {line}", file=sys.stderr)
        if skipped:
            print(f"skipped {len(skipped)} unreadable run folder(s) under {root}", file=sys.stderr)
        runs = [r for r in runs if r.meta.task == task and r.meta.split == args.split]
        if not args.all:
            runs = latest_per_setting(runs)
        if not runs:
            raise UserError(
                f"no runs for task '{task}', split {args.split} under {root}; run `dispute-classifier evaluate --task {args.task}` first"
            )
    print(format_leaderboard(compare(runs)))
    return 0


def _recipe_epilog() -> str:
    return f"recipes: {', '.join(available_recipes())}\n\n" + _config_epilog(Recipe).replace(
        "--config FILE with these keys, or --set KEY=VALUE", "KEY=VALUE after the options"
    )


def cmd_finetune(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, args.overrides)
    if args.finetune_command == "doctor":
        train(recipe, doctor_only=True, data_dir=args.data_dir)
        print("all pre-flight checks passed")
        return 0
    train(recipe, name=args.name, resume=args.resume, data_dir=args.data_dir, runs_dir=args.runs_dir)
    return 0


def cmd_finetune_list(args: argparse.Namespace) -> int:
    print("\n".join(list_lines()))  # the same registry as `models list`
    return 0


def _verdict_config(args: argparse.Namespace):
    return load_config(VerdictConfig, Path(args.config) if args.config else None, args.set)


def cmd_experiment(args: argparse.Namespace) -> int:
    verdict = _verdict_config(args)
    verdict.prices = verdict.prices or args.prices  # one price table for the runs and the verdict
    results, _, _ = run_experiment(
        args.task,
        load_profile(args.profile),
        split=args.split,
        runs_root=args.runs_dir,
        reports_dir=args.out,
        data_dir=args.data_dir,
        prices_path=args.prices,
        hardware=args.hardware,
        seed=args.seed,
        verdict=verdict,
        progress=not args.quiet,
    )
    runs = f" --runs-dir {args.runs_dir}" if args.runs_dir else ""
    print(f"open the dashboard: dispute-classifier dashboard{runs} --reports-dir {args.out}   (or: make dashboard)")
    return 1 if results and all(r.status == "failed" for r in results) else 0


def cmd_report(args: argparse.Namespace) -> int:
    cfg = _verdict_config(args)
    root = runs_dir(args.runs_dir)
    runs, skipped = scan_runs(root)
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    spec = load_task(args.task)
    data = load_data(spec, Path(args.data_dir) if getattr(args, "data_dir", None) else None)
    task = spec.name
    # the stages the experiment ran are kept beside the runs, so this rebuilds the experiment's report
    report = build_report(
        runs,
        task,
        args.split,
        cfg,
        skipped,
        data_hash=data.data_hash,
        stages=read_stages(root, task, args.split),
        split_size=len(data.split(args.split)),
    )
    if not report["leaderboard"]:
        raise UserError(
            f"no runs for task {task}, split {args.split} under {root}; run `dispute-classifier experiment --task {args.task}` first"
        )
    js, md = write_report(report, Path(args.out))
    print(f"verdict: {report['verdict']['headline']}")
    for reason in report["verdict"]["reasons"]:
        print(f"  - {reason}")
    print(f"wrote {js} and {md}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        raise UserError("the dashboard needs streamlit: pip install -e '.[dashboard]' (make setup installs it)")

    app = Path(__file__).resolve().parents[2] / "dashboard" / "streamlit_app.py"
    env = {
        **os.environ,
        "DISPUTE_CLASSIFIER_RUNS": str(runs_dir(args.runs_dir).resolve()),
        "DISPUTE_CLASSIFIER_REPORTS": str(Path(args.reports_dir).resolve()),
    }

    env[PREDLOG_ENV] = db_url(args.log_db)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(args.port),
        "--server.address",
        args.host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]
    check_port_free(args.host, args.port)  # before printing an address that another program holds
    print(
        f"dashboard: http://{args.host}:{args.port}  (runs {env['DISPUTE_CLASSIFIER_RUNS']}, reports {env['DISPUTE_CLASSIFIER_REPORTS']}; Ctrl-C stops it)",
        flush=True,
    )
    return run_forwarding_signals(cmd, env)


def run_forwarding_signals(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` in the foreground; SIGTERM and SIGINT to this process go to it, and this
    process waits for it to exit, so it is never left orphaned."""
    import signal

    child = subprocess.Popen(cmd, env=env)

    def forward(signum, _frame):  # noqa: ANN001
        if child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # a signal raced the handler: keep waiting for the child
                forward(signal.SIGINT, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ------------------------------------------------------------ serve, monitor, replay, models


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(_config_from_args(ServeConfig, args))


def cmd_monitor(args: argparse.Namespace) -> int:
    _, text = run_monitor(_config_from_args(MonitorConfig, args))
    print(text)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    summary = replay(_config_from_args(ReplayConfig, args))
    print(format_replay(summary))
    return 0 if summary["ok"] else 1


def cmd_models(args: argparse.Namespace) -> int:
    if args.models_command == "list":
        print("\n".join(models.list_lines()))
    elif args.models_command == "show":
        print("\n".join(models.show_lines(args.ref)))
    elif args.models_command == "register":
        folder = models.register(_config_from_args(models.RegisterConfig, args))
        print(
            f"registered {folder.parent.name}:{folder.name} ({folder}); promote it with `dispute-classifier models promote {folder.parent.name}:{folder.name} --alias champion`"
        )
    else:
        cfg = _config_from_args(models.AliasConfig, args)
        print(models.promote(cfg) if args.models_command == "promote" else models.rollback(cfg))
    return 0


# ------------------------------------------------------- data quality, curves, sweep (issue 14)


def _config_from_args(cls: type, args: argparse.Namespace):
    """The config dataclass ``cls`` from the flags `_config_arguments` made: only what the user
    typed overrides the dataclass defaults; list fields take comma-separated values."""

    import yaml

    hints = typing.get_type_hints(cls)
    data: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None or value is False:
            continue
        if typing.get_origin(hints[f.name]) is list and isinstance(value, str):
            value = [yaml.safe_load(v) for v in value.split(",") if v.strip()]
        data[f.name] = value
    return from_dict(cls, data)


def cmd_curves(args: argparse.Namespace) -> int:
    cfg = _config_from_args(CurvesConfig, args)
    if cfg.split == "test":
        print("scoring the TEST split: for reporting only; choose sizes and settings on validation", file=sys.stderr)
    spec = load_task(cfg.task)
    data = load_data(spec, Path(cfg.data_dir) if cfg.data_dir else None)
    task_ref = str(spec.path)
    makers = {}
    for name in cfg.approaches:
        if name == "finetuned":
            recipe = load_recipe(cfg.recipe, [f"task={task_ref}", *cfg.recipe_overrides])
            makers[name] = lambda recipe=recipe: RecipeClassifier(recipe, cfg.data_dir)
        else:
            entry = plugins.get_approach(name)
            makers[name] = lambda entry=entry, name=name: entry.build(RunConfig(task=task_ref, approach=name))
    finder = None if cfg.skip_finder else {name: approach_maker(name, task_ref) for name in cfg.finder_approaches}
    result = run_curves(cfg, data, makers, finder)
    path = write_curves(result, Path(cfg.out))
    for row in result["summary"]:
        lo, hi = row["accuracy_ci95"]
        print(
            f"{row['approach']:<10} size {row['size']:>5} noise {row['noise']:.2f}: {row['accuracy_mean'] * 100:.2f}% ({lo * 100:.2f}–{hi * 100:.2f}) over {row['accuracy_n_seeds']} seed(s)"
        )
    for row in result["finder_summary"]:
        print(
            f"finder     size {row['size']:>5} noise {row['noise']:.2f}: precision=recall at k={row['n_flipped']}: {row['precision_at_k'] * 100:.1f}%; flags {row['n_flagged']} rows, recall {row['flagged_recall'] * 100:.1f}%"
        )
    print(f"wrote {path} (the dashboard's Curves page)")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    cfg = _config_from_args(SweepConfig, args)
    if cfg.final:
        out = final_refit(cfg)
        print(f"final model {out}")
        return 0
    study = run_sweep(cfg)
    print(summary(study))
    return 0


def _add_quality_commands(sub: Any) -> None:
    """The ``curves`` and ``sweep`` subcommands, flags built from their config dataclasses."""

    p = sub.add_parser(
        "curves",
        help="learning curve and label-noise experiment on the validation split -> reports/curves-<task>-<split>.json",
        description="Train each approach on seeded, stratified subsets of the train split with a share of labels flipped;"
        " score on validation (--split test only to report). Also scores the label-issue finder on the flipped rows.",
    )
    _config_arguments(p, CurvesConfig, optional=True, choices={"split": ["validation", "test"]})
    p.set_defaults(func=cmd_curves)

    p = sub.add_parser(
        "sweep",
        help="validation-only hyperparameter search over a recipe (Optuna TPE, median pruning, resumable SQLite study)",
        description="Each trial trains on train and is scored on validation through the shared evaluator; --final refits the"
        " best trial on train+validation and evaluates it on test once.",
    )
    _config_arguments(p, SweepConfig, choices={"budget": list(BUDGETS)})
    p.set_defaults(func=cmd_sweep)


# ---------------------------------------------------------------------------- parser


def _verdict_parser(sub: Any, name: str, cls: type, helptext: str) -> argparse.ArgumentParser:
    """The one parser builder of experiment and report: their own flags from ``cls`` and the
    verdict's assumptions (`VerdictConfig`) as --config/--set keys in the epilog."""
    p = sub.add_parser(name, help=helptext, epilog=_config_epilog(VerdictConfig), formatter_class=argparse.RawDescriptionHelpFormatter)
    _config_arguments(p, cls, with_defaults=True, choices={"split": ["test", "validation"]})
    return p


def build_parser() -> argparse.ArgumentParser:
    approaches = load_approaches()

    parser = argparse.ArgumentParser(
        prog="dispute-classifier",
        description="Prompt, retrieve or fine-tune? Evaluate every approach to a classification task (a task YAML:"
        " `dispute-classifier tasks` lists the shipped ones, or pass the path to your own) on one held-out test set.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("tasks", help="list the tasks under data/tasks")
    p.set_defaults(func=cmd_tasks)

    data = sub.add_parser("data", help="data-quality tools")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = data_sub.add_parser("check", help="data-quality report (JSON + Markdown)")
    _config_arguments(p, DataCheckArgs, with_defaults=True)

    _config_arguments(p, LabelIssueConfig, optional=True)
    p.set_defaults(func=cmd_data_check)

    p = sub.add_parser(
        "classify",
        help="classify a CSV/JSONL/Parquet file: resumable, with errors and needs-review files",
        description="Classify every row of INPUT in chunks. Killed at any point, the same command continues"
        " where it stopped; OUTPUT appears only when the run is complete.",
    )
    _config_arguments(p, ClassifyConfig, positional=("input",))
    p.add_argument("--config", help="YAML file of approach settings (the keys of `evaluate --help`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one approach setting, e.g. --set tfidf.C=4 (repeatable)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "evaluate",
        help="evaluate one approach on a split and write a run record",
        epilog=_approaches_epilog(approaches) + "\n\n" + _config_epilog(RunConfig),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_arguments(p, RunConfig, optional=True)
    _config_arguments(p, EvaluateArgs, with_defaults=True, choices={"backend": list(plugins.backends())})
    p.set_defaults(func=cmd_evaluate)

    ft = sub.add_parser("finetune", help="LoRA / QLoRA fine-tuning: train, doctor, list")
    ft_sub = ft.add_subparsers(dest="finetune_command", metavar="SUBCOMMAND", required=True)
    for cmd, helptext in (("train", "train a recipe, save the adapter, evaluate it"), ("doctor", "pre-flight checks only (no training)")):
        p = ft_sub.add_parser(cmd, help=helptext, epilog=_recipe_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
        _config_arguments(p, FinetuneArgs, positional=("overrides",), with_defaults=True)
        p.set_defaults(func=cmd_finetune)
    p = ft_sub.add_parser("list", help="saved fine-tuned models")
    p.set_defaults(func=cmd_finetune_list)
    p = sub.add_parser("llama-server", help="run the local OpenAI-compatible llama.cpp server in the foreground")
    _config_arguments(p, LlamaServerArgs, with_defaults=True)
    p.set_defaults(func=cmd_llama_server)

    p = sub.add_parser("compare", help="leaderboard and paired McNemar tests of run records")
    _config_arguments(p, CompareArgs, positional=("runs",), with_defaults=True, choices={"split": ["test", "validation"]})
    p.set_defaults(func=cmd_compare)

    for name, cls, func, helptext in (
        ("experiment", ExperimentArgs, cmd_experiment, "run every approach of a profile, then the verdict (the main job)"),
        ("report", ReportArgs, cmd_report, "decision report (JSON + Markdown) from the run records of a task and split"),
    ):
        _verdict_parser(sub, name, cls, helptext).set_defaults(func=func)

    p = sub.add_parser("dashboard", help="serve the Streamlit dashboard over run records and decision reports")
    _config_arguments(p, DashboardArgs, with_defaults=True)
    p.set_defaults(func=cmd_dashboard)

    _add_quality_commands(sub)

    res = sub.add_parser("results", help="results as data: export run summaries to results/, render the docs' tables from them")
    res_sub = res.add_subparsers(dest="results_command", metavar="SUBCOMMAND", required=True)
    p = res_sub.add_parser("export", help="write results/<task>/<split>/*.json from run records (the record minus its predictions)")
    _config_arguments(p, ResultsExportArgs, positional=("runs_dirs",), with_defaults=True)
    p.set_defaults(func=cmd_results_export)
    p = res_sub.add_parser("render", help="rewrite the tables between <!-- results:NAME --> markers from results/ (--check: only compare)")
    _config_arguments(p, ResultsRenderArgs, positional=("files",), with_defaults=True)
    p.set_defaults(func=cmd_results_render)

    p = sub.add_parser("serve", help="HTTP classification service (FastAPI): POST /v1/classify, metrics, prediction log, shadow model")
    _config_arguments(p, ServeConfig)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "monitor", help="monitoring report over the prediction log: volume, latency, drift, estimated accuracy, shadow verdict"
    )
    _config_arguments(p, MonitorConfig)
    p.set_defaults(func=cmd_monitor)
    p = sub.add_parser("replay", help="send a CSV (or a task split) through a running service as traffic")
    _config_arguments(p, ReplayConfig, positional=("input",), choices={"split": list(SPLITS)})
    p.set_defaults(func=cmd_replay)
    md = sub.add_parser("models", help="saved model versions and aliases: list, register, promote, rollback, show")
    md_sub = md.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    md_sub.add_parser("list", help="every saved version (fine-tuned and registered baselines) with its aliases").set_defaults(
        func=cmd_models
    )
    p = md_sub.add_parser("show", help="what NAME[:VERSION|@ALIAS] resolves to, and the alias history")
    p.add_argument("ref", metavar="REF", help="NAME, NAME:VERSION or NAME@ALIAS")
    p.set_defaults(func=cmd_models)
    p = md_sub.add_parser("register", help="fit an approach on the task's training file and save it as a new version")
    _config_arguments(p, RegisterConfig, positional=("approach",))
    p.set_defaults(func=cmd_models)
    for name, helptext in (
        ("promote", "point an alias at NAME:VERSION"),
        ("rollback", "point an alias of NAME back at its previous version"),
    ):
        p = md_sub.add_parser(name, help=helptext)
        _config_arguments(p, AliasConfig, positional=("ref",))
        p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Library notices users cannot act on: bitsandbytes warns at import that an optional fast
    # 4-bit CPU kernel package is missing (its fallback works); the composition root sets this.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    quiet = getattr(args, "quiet", False) and "DISPUTE_CLASSIFIER_QUIET" not in os.environ
    if quiet:
        os.environ["DISPUTE_CLASSIFIER_QUIET"] = "1"  # library notes stay quiet too (core/model_source.py)
    try:
        return func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if quiet:
            os.environ.pop("DISPUTE_CLASSIFIER_QUIET", None)


if __name__ == "__main__":
    sys.exit(main())
