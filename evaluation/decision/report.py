"""The decision report (plain data) from run records: select → price → judge → explain.

`build_report` runs the named steps in order: `select_runs` (this task, split and data; not the
older runs of a failed stage), `cost_line` per run, the comparison set, `recommend` with and
without the fine-tuned option, `finetune_question` (once), the same rule on the de-duplicated
subset, the headline, and the break-even volume against the best prompted API run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_classifier.core.config import to_dict
from dispute_classifier.core.prices import PriceTable, money
from dispute_classifier.core.task import task_command, task_ref
from evaluation.compare import latest_per_setting
from evaluation.decision.assumptions import CATEGORY_NAMES, VerdictConfig
from evaluation.decision.breakeven import answer_changes, break_even
from evaluation.decision.costs import CostLine, cost_line, training_cost
from evaluation.decision.evidence import best_run
from evaluation.decision.rule import COMPARISON_SET, Recommendation, finetune_question, recommend
from evaluation.decision.selection import choose_on_validation, review_plan
from evaluation.runmeta import Category
from evaluation.runs import RunRecord, now_iso

SCHEMA = "dispute-classifier/decision/3"
READABLE = ("dispute-classifier/decision/2", SCHEMA)


@dataclass
class Selection:
    """The runs a report judges, and what it left out and why."""

    runs: list[RunRecord]
    validation: list[RunRecord]
    excluded: list[str] = field(default_factory=list)


def select_runs(runs: list[RunRecord], task: str, split: str, data_hash: str | None, stages: list[dict[str, Any]]) -> Selection:
    """This task's runs on ``split`` (and validation, for choosing), on this data; older runs of a
    stage that failed this time are not used in its place."""
    task_runs = [r for r in runs if r.meta.task == task]
    excluded: list[str] = []
    if data_hash is not None:
        other = [r for r in task_runs if r.meta.data.data_hash != data_hash]
        if other:
            excluded.append(f"{len(other)} run(s) made on other data (task files or splits changed since) are left out")
        task_runs = [r for r in task_runs if r.meta.data.data_hash == data_hash]
    failed = {(s.get("approach"), s.get("limit")) for s in stages if s.get("status") == "failed"}
    produced = {str(s.get("run")) for s in stages if s.get("run")}
    stale = [r for r in task_runs if (r.meta.approach, r.meta.data.limit) in failed and str(r.path) not in produced]
    if stale:
        excluded.append(
            f"{len(stale)} older run(s) of failed stages are not used in their place: " + ", ".join(sorted({r.label for r in stale}))
        )
        task_runs = [r for r in task_runs if r not in stale]
    on_split = latest_per_setting([r for r in task_runs if r.meta.split == split])
    on_split.sort(key=lambda r: (-r.metrics["accuracy"], -r.metrics["macro_f1"]))
    return Selection(on_split, latest_per_setting([r for r in task_runs if r.meta.split == "validation"]), excluded)


def leaderboard_row(run: RunRecord, cost: CostLine, volume: int) -> dict[str, Any]:
    """One leaderboard line of the decision report, with the monthly cost at ``volume`` and its parts."""
    m, meta = run.metrics, run.meta
    serving, quality = cost.serving(volume), cost.quality(volume)
    interval = cost.monthly_interval(volume)
    return {
        "label": run.label,
        "run_id": run.run_id,
        "approach": meta.approach,
        "category": meta.category.value,
        "model": meta.model,
        "backend": run.backend,
        "billing": meta.billing.value,
        "n": m["n"],
        "limit": meta.data.limit,
        "overlap": bool(meta.data.overlap),
        "overlap_share": meta.data.overlap_share,
        "accuracy": m["accuracy"],
        "accuracy_ci95": m["accuracy_ci95"],
        "macro_f1": m["macro_f1"],
        "dedup": m.get("dedup"),
        "invalid_rate": m["invalid_rate"],
        "latency_p50_s": m["latency_p50_s"],
        "latency_p95_s": m["latency_p95_s"],
        "throughput_qps": m["throughput_qps"],
        "cost_per_1k_usd": m["cost_per_1k_usd"],
        "monthly_cost_usd": cost.monthly(volume),
        "monthly_cost_ci_usd": list(interval) if interval else None,
        "cost_parts": {
            "serving_usd": serving,
            "training_usd": cost.fixed_monthly_usd,
            "errors_and_reviews_usd": quality,
            "hardware": cost.hardware,
            "machines": cost.machines(volume) if cost.capacity_qps else None,
            "capacity_qps": cost.capacity_qps,
            "view": "dedicated" if cost.dedicated else "shared",
            "error_rate": cost.error_rate,
            "review_rate": cost.review_rate,
        },
        "latency_b1_p95_s": m.get("latency_b1_p95_s"),
        "model_rss_mb": m.get("model_rss_mb"),
        "cost_basis": cost.basis + ("; " + "; ".join(cost.notes) if cost.notes else ""),
        "cost_missing": cost.missing,
    }


def _dedup_accuracy(run: RunRecord) -> float:
    d = run.metrics.get("dedup") or {}
    return d["accuracy"] if d.get("accuracy") is not None else run.metrics["accuracy"]


def dedup_check(
    options: list[RunRecord], rule: Recommendation, cfg: VerdictConfig, costs: dict[str, CostLine], split_size: int | None
) -> dict[str, Any]:
    """The same rule on the test split less its near-duplicates of training texts: does the
    answer hold where a memorising model cannot answer by recall?"""
    removed = frozenset(i for r in options for i in r.meta.data.near_duplicate_ids)
    if not removed:
        return {"n_removed": 0, "holds": True, "note": "no scored item has a same-label near-duplicate in the fitted rows"}
    sub = recommend(options, cfg, costs, split_size=split_size, exclude=removed, accuracy=_dedup_accuracy)
    same = (sub.choice.run_id if sub.choice else None) == (rule.choice.run_id if rule.choice else None) and sub.decided == rule.decided
    name = sub.choice.label if sub.choice else "nothing"
    note = (
        f"the answer holds on the de-duplicated subset ({len(removed)} near-duplicate item(s) left out)"
        if same
        else f"on the de-duplicated subset ({len(removed)} near-duplicate item(s) left out) the rule picks {name}"
        + ("" if sub.decided else " (not decided)")
        + " instead"
    )
    return {
        "n_removed": len(removed),
        "holds": same,
        "choice": sub.choice.label if sub.choice else None,
        "decided": sub.decided,
        "standing": [s.as_dict() for s in sub.standing],
        "note": note,
    }


def headline(
    task: str, split: str, rule: Recommendation, costs: dict[str, CostLine], cfg: VerdictConfig, answer: str, any_runs: bool
) -> str:
    """The one sentence the report leads with."""
    choice = rule.choice
    if not any_runs:
        text = f"No runs yet for {task}/{split}: run `{task_command('experiment', task)}` first."
    elif choice is None and rule.unknown_cost:
        text = (
            "Not yet decidable: the approaches shown adequate have unknown costs ("
            + ", ".join(s.evidence.challenger for s in rule.unknown_cost)
            + ")."
        )
    elif choice is None:
        text = (
            "Not yet decidable: no approach is shown adequate"
            + (f" within the {cfg.max_p95_latency_ms:g} ms latency budget" if cfg.max_p95_latency_ms else "")
            + "."
        )
    elif not rule.decided:
        first = rule.undecided_by[0]
        theirs, ours = first.monthly_cost_usd, costs[choice.run_id].monthly(cfg.monthly_volume)
        if theirs is not None and ours is not None and cfg.tie(theirs, ours):
            how = f"adequate at the same cost and preferred ({first.category.value} before {choice.meta.category.value})"
        elif theirs is not None and ours is not None:
            how = f"adequate and cheaper by {money(ours - theirs)} a month ({money(theirs)} against {money(ours)})"
        else:
            how = "adequate and cheaper"
        text = (
            f"Not yet decidable: {choice.label} is the cheapest approach shown adequate, but {first.evidence.challenger} might be"
            f" {how} — {first.evidence.reason}."
        )
    else:
        text = f"Use {choice.label} ({CATEGORY_NAMES[choice.meta.category.value]}): the cheapest adequate approach at {cfg.monthly_volume:,} queries/month."
    return text + f" Fine-tune? {answer}."


def rule_text(cfg: VerdictConfig) -> str:
    """The rule, in words, with the names of its tests (printed at the top of every report)."""
    return (
        "Candidates: every approach with a run (one fine-tuned model: the version chosen on validation)."
        f" Adequate (non-inferiority, Tango's paired score test at one-sided level {cfg.alpha:g}): the {100 * cfg.level:g} % interval of its accuracy"
        f" difference to the most accurate approach stays above −{cfg.margin_points:g} points, on at least {cfg.min_shared_examples} shared examples."
        f" Worse: the interval lies below −{cfg.margin_points:g}, at any number of examples."
        f" Recommended: the cheapest adequate approach at {cfg.monthly_volume:,} queries/month"
        + (f" within a p95 latency of {cfg.max_p95_latency_ms:g} ms" if cfg.max_p95_latency_ms else "")
        + f", ties broken by {' → '.join(cfg.preference_order)}. Fine-tune when the fine-tuned model is shown more accurate than that choice"
        f" by more than {cfg.gain_points:g} points (superiority: the interval's lower bound), or adequate against it and cheaper."
        f" Undecided comparisons say how many shared examples would settle them with {cfg.power:.0%} power."
    )


def build_report(
    runs: list[RunRecord],
    task: str,
    split: str,
    cfg: VerdictConfig | None = None,
    skipped: list[str] | None = None,
    *,
    data_hash: str | None = None,
    stages: list[dict[str, Any]] | None = None,
    split_size: int | None = None,
) -> dict[str, Any]:
    """The decision report (plain data) from run records of ``task`` on ``split``.

    ``data_hash`` (the task's current data) excludes runs made on other data; ``stages`` (what
    an experiment did) are reported, and the runs of a failed stage are never used in its place;
    ``split_size`` (rows in the split) words sample sizes this data cannot reach.
    """
    cfg = cfg or VerdictConfig()
    stages = stages or []
    prices = PriceTable.load(Path(cfg.prices) if cfg.prices else None)
    sel = select_runs(runs, task, split, data_hash, stages)
    split_size = split_size or max((r.metrics["n"] for r in sel.runs), default=None)
    costs = {r.run_id: cost_line(r, cfg, prices, review_plan(r, sel.validation, cfg.review_coverage)) for r in sel.runs}

    # suggested commands repeat the task as the user can give it again: its name, or its YAML path
    ref = task_ref(task, next((r.meta.task_file for r in sorted(sel.runs, key=lambda r: r.run_id, reverse=True) if r.meta.task_file), None))
    comparison = []
    for row, matches, how in COMPARISON_SET:
        best = best_run([r for r in sel.runs if matches(r.meta)])
        comparison.append(
            {
                "row": row,
                "status": "run" if best else "not run",
                "label": best.label if best else None,
                "accuracy": best.metrics["accuracy"] if best else None,
                "how": None if best else task_command("evaluate", ref, how),
            }
        )

    # Fine-tuned versions compete as one option: the one chosen on validation.
    is_ft = [r.meta.category is Category.FINETUNED for r in sel.runs]
    best_ft, why_ft = choose_on_validation(
        [r for r, f in zip(sel.runs, is_ft) if f], [r for r in sel.validation if r.meta.category is Category.FINETUNED]
    )
    without_ft = [r for r, f in zip(sel.runs, is_ft) if not f]
    options = without_ft + ([best_ft] if best_ft else [])
    rule = recommend(options, cfg, costs, split_size=split_size)
    question = finetune_question(best_ft, why_ft, recommend(without_ft, cfg, costs, split_size=split_size), cfg, costs, split_size)
    dedup = dedup_check(options, rule, cfg, costs, split_size)
    be = break_even(best_ft, sel.runs, costs, cfg)
    adequate = [
        costs[s.run.run_id]
        for s in rule.standing
        if s.evidence.status.value in ("adequate", "reference") and s.monthly_cost_usd is not None
    ]
    order = {
        s.run.run_id: f"{cfg.preference_order.index(s.category.value) if s.category.value in cfg.preference_order else 9}"
        for s in rule.standing
    }
    changes = answer_changes(adequate, order, cfg)

    reasons: list[str] = []
    if rule.reference is not None:
        reasons.append(
            f"reference: {rule.reference.label}, {rule.reference.metrics['accuracy'] * 100:.2f} % on {rule.reference.metrics['n']} examples"
        )
    for s in rule.standing:
        budget = "" if s.within_latency_budget else "; over the latency budget"
        reasons.append(
            f"{s.evidence.challenger}: {s.evidence.status.value} — {s.evidence.reason}; {money(s.monthly_cost_usd)}/month{budget}"
        )
    reasons.append(f"fine-tune: {question['answer']} — {question['reason']}")
    reasons.append(f"de-duplicated test subset: {dedup['note']}")
    flagged = [r for r in sel.runs if r.meta.data.overlap]
    if flagged:
        reasons.append(
            "warning: scored on rows the model was fitted on (forced with --allow-overlap): "
            + ", ".join(f"{r.label} ({r.meta.data.overlap})" for r in flagged)
        )
    for s in rule.unknown_cost:
        reasons.append(
            f"{s.evidence.challenger} is adequate but its cost is unknown ({costs[s.run.run_id].missing}): listed, not recommended on cost"
        )
    if len(changes) > 1:
        reasons.append(
            "the cheapest adequate option changes with volume: "
            + "; ".join(f"{c['cheapest']} from {c['from_volume']:,.0f}" for c in changes)
            + " queries/month"
        )
    reasons += sel.excluded
    if be.get("finetuned"):
        reasons.append(be["note"] + f" (against {be['api']})")

    tc = None if best_ft is None else dict(zip(("usd", "source"), training_cost(best_ft.meta, cfg, prices)))
    return {
        "schema": SCHEMA,
        "task": task,
        "split": split,
        "created_at": now_iso(),
        "data_hash": data_hash,
        "split_size": split_size,
        "rule": rule_text(cfg),
        "assumptions": {**to_dict(cfg), "prices": str(prices.path), "training_cost": tc, "hosting_hardware": cfg.hosting_hardware},
        "leaderboard": [leaderboard_row(r, costs[r.run_id], cfg.monthly_volume) for r in sel.runs],
        "comparison_set": comparison,
        "standing": [s.as_dict() for s in rule.standing],
        "finetune": question,
        "dedup": dedup,
        "break_even": be,
        "answer_changes": changes,
        "stages": stages,
        "excluded": sel.excluded,
        "verdict": {
            "recommendation": rule.choice.label if rule.choice else None,
            "recommendation_run_id": rule.choice.run_id if rule.choice else None,
            "category": rule.choice.meta.category.value if rule.choice else None,
            "decided": rule.decided,
            "finetune": question["answer"],
            "holds_on_dedup": dedup["holds"],
            "headline": headline(ref, split, rule, costs, cfg, question["answer"], bool(sel.runs)),
            "reasons": reasons,
        },
        "skipped": skipped or [],
    }
