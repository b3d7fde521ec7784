"""Leaderboard of several runs on one task and split, with paired exact McNemar tests."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import money
from evaluation.metrics import mcnemar_exact
from evaluation.runs import RunRecord


@dataclass
class Comparison:
    runs: list[RunRecord]
    """Runs sorted best first (accuracy, then macro-F1)."""
    pairs: list[dict[str, Any]]
    """One entry per pair: McNemar counts and p-value, or why the pair was refused."""


def setting_key(run: RunRecord) -> tuple[str, str, str | None, int | None]:
    """What makes two runs the same setting: approach, model, settings hash and subsample."""
    m = run.meta
    return m.approach, m.model, m.config_hash, m.data.limit


def latest_per_setting(runs: list[RunRecord]) -> list[RunRecord]:
    """Keep the newest run of each setting (`setting_key`): a rerun replaces an older one, while
    two settings of one approach (or two models) stay two runs, whatever their display labels."""
    best: dict[tuple, RunRecord] = {}
    for run in sorted(runs, key=lambda r: r.meta.finished_at):
        best[setting_key(run)] = run
    return list(best.values())


def paired_test(a: RunRecord, b: RunRecord, shared_only: bool = False, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Exact McNemar on identical examples; refuses pairs that saw different examples.

    ``shared_only`` tests on the examples both runs saw instead (a subsample run against a
    full-split run: the subsample is drawn from the same split) and reports their number;
    ``exclude`` leaves those example ids out (the de-duplicated subset).
    """
    ca, cb = a.correct_by_id(), b.correct_by_id()
    shared = (set(ca) & set(cb)) - exclude
    if (set(ca) != set(cb) and not shared_only) or not shared:
        return {"a": a.run_id, "b": b.run_id, "refused": f"not run on the same examples ({len(ca)} vs {len(cb)} ids, {len(shared)} shared)"}
    if a.meta.data.data_hash != b.meta.data.data_hash:
        return {"a": a.run_id, "b": b.run_id, "refused": "different data (task files or splits changed between the runs)"}
    ids = sorted(shared)
    result = mcnemar_exact([ca[i] for i in ids], [cb[i] for i in ids])
    return {"a": a.run_id, "b": b.run_id, "n_shared": len(ids), **result}


def compare(runs: list[RunRecord]) -> Comparison:
    """Compare runs that share one task and split; anything else is an error."""
    if not runs:
        raise UserError(
            "no runs to compare; run `dispute-classifier evaluate --task TASK --approach tfidf` first"
            " (TASK: a task from `dispute-classifier tasks`, or the path to its YAML)"
        )
    keys = {(r.meta.task, r.meta.split) for r in runs}
    if len(keys) > 1:
        raise UserError(
            "runs are on different tasks/splits: "
            + ", ".join(f"{t}/{s}" for t, s in sorted(keys))
            + "; pass --task and --split, or name runs of one task and split"
        )
    ordered = sorted(runs, key=lambda r: (-r.metrics["accuracy"], -r.metrics["macro_f1"]))
    pairs = [paired_test(a, b) for a, b in combinations(ordered, 2)]
    return Comparison(ordered, pairs)


def format_leaderboard(comp: Comparison) -> str:
    """A plain-text leaderboard and the pairwise tests."""
    first = comp.runs[0].meta
    lines = [f"task {first.task}, split {first.split}", ""]
    header = f"{'#':>2}  {'approach':<34} {'acc':>6}  {'95% CI':<15} {'macroF1':>7} {'invalid':>7} {'p50 ms':>7} {'q/s':>7} {'$/1k':>10}"
    lines += [header, "-" * len(header)]
    for i, run in enumerate(comp.runs, start=1):
        m = run.metrics
        lo, hi = m["accuracy_ci95"]
        lines.append(
            f"{i:>2}  {run.label[:34]:<34} {m['accuracy'] * 100:6.2f}  [{lo * 100:5.2f}, {hi * 100:5.2f}] "
            f"{m['macro_f1'] * 100:7.2f} {m['invalid_rate'] * 100:6.2f}% {m['latency_p50_s'] * 1000:7.2f} "
            f"{m['throughput_qps']:7.1f} {money(m['cost_per_1k_usd']):>10}"
        )
    if comp.pairs:
        names = {r.run_id: r.label for r in comp.runs}
        lines += ["", "paired exact McNemar (a right/b wrong, a wrong/b right, p):"]
        for pair in comp.pairs:
            a, b = names[pair["a"]], names[pair["b"]]
            if "refused" in pair:
                lines.append(f"  {a} vs {b}: refused, {pair['refused']}")
            else:
                mark = " *" if pair["p_value"] < 0.05 else ""
                lines.append(f"  {a} vs {b}: {pair['a_only']}/{pair['b_only']}, p={pair['p_value']:.4f}{mark}")
        lines.append("  (* p < 0.05: the difference is unlikely to be noise)")
    return "\n".join(lines)
