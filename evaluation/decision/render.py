"""The decision report on disk: Markdown for people, JSON for the dashboard, and the stages of
the experiment that made the runs (kept with the runs, so `report` rebuilds the same report)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import money
from evaluation.decision.report import READABLE


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f} %"


def _ci(pair: list[float] | tuple[float, float] | None) -> str:
    return "—" if not pair else f"{pair[0] * 100:.1f}–{pair[1] * 100:.1f}"


def _assumptions(a: dict[str, Any]) -> list[str]:
    gain = a.get("required_gain_points")
    return [
        f"- margin: {a['margin_points']:g} accuracy points; one-sided level alpha {a['alpha']:g} (Tango's paired score tests; intervals at"
        f" {100 * (1 - 2 * a['alpha']):g} %); power {a.get('power', 0.8):.0%}; required gain for fine-tuning: {a['margin_points'] if gain is None else gain:g} points;"
        f" minimum shared examples to be adequate: {a['min_shared_examples']}",
        f"- cost view: {a.get('cost_view', 'dedicated')} (peak factor {a.get('peak_factor', 3):g}); cost per error {money(a.get('cost_per_error_usd', 0))},"
        f" per review {money(a.get('cost_per_review_usd', 0))}"
        + (f", {a['review_coverage']:.0%} answered automatically" if a.get("review_coverage") else ", no review")
        + f"; differences under {money(a.get('min_saving_usd', 1))} or {a.get('min_saving_share', 0.01):.0%} a month are the same cost",
        f"- monthly volume: {a['monthly_volume']:,} queries; workload: {a['workload']}"
        + (f", cached input share {a['cached_input_share']:g}" if a.get("cached_input_share") else "")
        + (f"; latency budget p95 ≤ {a['max_p95_latency_ms']:g} ms" if a.get("max_p95_latency_ms") else "; no latency budget"),
        "- self-hosted on: the cheapest machine that holds each model and serves its peak"
        + (f"; declared: {a.get('hosting')}" if a.get("hosting") else "")
        + (f"; fine-tuned on {a['hosting_hardware']}" if a.get("hosting_hardware") else "")
        + f", {a['hours_per_month']:g} h/month; training cost amortised over {a['amortisation_months']} months"
        + (f" (training {money(a['training_cost']['usd'])}, {a['training_cost']['source']})" if a["training_cost"] else ""),
        f"- simplicity order for ties: {' → '.join(a['preference_order'])}",
        f"- price table: {a['prices']}",
    ]


def _standing_rows(standing: list[dict[str, Any]]) -> list[str]:
    rows = ["| approach | standing | shared n | Δ points (95 % CI) | $ per month | why |", "| --- | --- | ---: | --- | ---: | --- |"]
    for e in standing:
        ci = e.get("delta_ci95_points")
        delta = f"{e['delta_points']:+.2f} ({ci[0]:+.2f} to {ci[1]:+.2f})" if ci and e.get("delta_points") is not None else "—"
        rows.append(
            f"| {e['challenger']} | {e['status']} | {e.get('n_shared') or '—'} | {delta} | {money(e['monthly_cost_usd'])} | {e['reason']} |"
        )
    return rows


def to_markdown(report: dict[str, Any]) -> str:
    """A readable decision report."""
    v, fq = report["verdict"], report["finetune"]
    lines = [f"# Decision: task `{report['task']}`, split `{report['split']}`", "", f"**{v['headline']}**", ""]
    lines += [f"- {r}" for r in v["reasons"]]
    lines += ["", "## The rule", "", report["rule"]]
    lines += ["", "## Assumptions (change with `dispute-classifier report --set KEY=VALUE`)", ""] + _assumptions(report["assumptions"])
    if report["stages"]:
        lines += ["", "## Stages", "", "| stage | status | detail |", "| --- | --- | --- |"]
        lines += [f"| {s['stage']} | {s['status']} | {s['detail']} |" for s in report["stages"]]
    lines += [
        "",
        "## Leaderboard",
        "",
        "Accuracy intervals are Wilson score intervals; *de-duplicated* leaves out the test items with a"
        " same-label near-duplicate among the training texts.",
        "",
        "| approach | kind | n | accuracy (95 % CI) | de-duplicated (n) | macro-F1 | invalid | p50 / p95 ms | $ per 1k | $ per month |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["leaderboard"]:
        d = r.get("dedup") or {}
        dedup = f"{_pct(d.get('accuracy'))} ({_ci(d.get('accuracy_ci95'))}, n={d.get('n')})" if d else "—"
        flag = " ⚠ overlap" if r.get("overlap") else ""
        lines.append(
            f"| {r['label']}{flag} | {r['category']} | {r['n']} | {_pct(r['accuracy'])} ({_ci(r['accuracy_ci95'])}) | {dedup} | {_pct(r['macro_f1'])} | "
            f"{_pct(r['invalid_rate'])} | {r['latency_p50_s'] * 1000:.1f} / {r['latency_p95_s'] * 1000:.1f} | {money(r['cost_per_1k_usd'])} | {money(r['monthly_cost_usd'])} |"
        )
    lines += [
        "",
        f"## Monthly cost at {report['assumptions']['monthly_volume']:,} queries, and why",
        "",
        "| approach | hardware | machines | capacity q/s | serving | training | errors + reviews | total (accuracy CI) | how it is priced |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in report["leaderboard"]:
        p = r.get("cost_parts") or {}
        ci = r.get("monthly_cost_ci_usd")
        total = money(r["monthly_cost_usd"]) + (f" ({money(ci[0])}–{money(ci[1])})" if ci and ci[0] != ci[1] else "")
        why = r["cost_basis"] + (f" — unknown: needs {r['cost_missing']}" if r.get("cost_missing") else "")
        lines.append(
            f"| {r['label']} | {p.get('hardware') or '—'} | {p.get('machines') or '—'} | {'—' if not p.get('capacity_qps') else format(p['capacity_qps'], '.1f')} |"
            f" {money(p.get('serving_usd'))} | {money(p.get('training_usd'))} | {money(p.get('errors_and_reviews_usd'))} | {total} | {why} |"
        )
    if len(report.get("answer_changes") or []) > 1:
        lines += [
            "",
            "The cheapest adequate option by volume: "
            + "; ".join(f"{c['cheapest']} from {c['from_volume']:,.0f}" for c in report["answer_changes"])
            + " queries/month.",
        ]
    lines += ["", "## Each approach against the most accurate one (paired, shared examples)", ""] + _standing_rows(report["standing"])
    dedup = report.get("dedup") or {}
    if dedup.get("standing"):
        lines += [
            "",
            f"## On the de-duplicated subset ({dedup['n_removed']} items left out)",
            "",
            dedup["note"] + ".",
            "",
        ] + _standing_rows(dedup["standing"])
    lines += ["", "## The comparison set", "", "| row | status | run | accuracy |", "| --- | --- | --- | ---: |"]
    for c in report["comparison_set"]:
        lines.append(f"| {c['row']} | {c['status']} | {c['label'] or '`' + c['how'] + '`'} | {_pct(c['accuracy'])} |")
    lines += ["", "## Fine-tune?", "", f"**{fq['answer']}** — {fq['reason']}"]
    if fq.get("selection"):
        lines += ["", f"Fine-tuned model: {fq['finetuned']} ({fq['selection']}); compared with {fq.get('against') or 'nothing yet'}."]
    if fq.get("delta_ci95_points"):
        lo, hi = fq["delta_ci95_points"]
        lines.append(
            f"On {fq['n_shared']} shared examples: {fq['delta_points']:+.2f} points (95 % CI {lo:+.2f} to {hi:+.2f}),"
            f" right only {fq['challenger_only']} / {fq['incumbent_only']}, McNemar p = {fq['p_value']:.4g}."
        )
    be = report["break_even"]
    lines += ["", "## Break-even volume", "", f"`{be['formula']}`", "", be["note"] + "."]
    if be.get("terms"):
        t = be["terms"]
        lines += [
            "",
            f"T = {money(t['T_usd'])}, m = {t['m_months']}, H = {money(t['H_usd_per_hour'])}/h, h = {t['h_hours']:g}, "
            f"c_ft = {money(t['c_ft_usd'])}, c_api = {money(t['c_api_usd'])}",
        ]
    labels = list(dict.fromkeys(p["label"] for p in be["curve"]))
    if labels:
        shown = [x for x in sorted({p["volume"] for p in be["curve"]}) if x in (100, 1000, 10000, 100000, 1000000, 10000000, 100000000)]
        cost = {(p["label"], p["volume"]): p["monthly_usd"] for p in be["curve"]}
        lines += [
            "",
            "$ per month by monthly volume:",
            "",
            "| approach | " + " | ".join(f"{x:,}" for x in shown) + " |",
            "| --- |" + " ---: |" * len(shown),
        ]
        lines += [f"| {label} | " + " | ".join(money(cost.get((label, x))) for x in shown) + " |" for label in labels]
    if report["excluded"]:
        lines += ["", "## Left out", ""] + [f"- {e}" for e in report["excluded"]]
    if report["skipped"]:
        lines += ["", f"Skipped {len(report['skipped'])} unreadable run folder(s):"] + [f"- {s}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def report_paths(out_dir: Path, task: str, split: str) -> tuple[Path, Path]:
    """Where the decision report of a task and split is written (and where the dashboard looks)."""
    stem = f"decision-{Path(task).stem}-{split}"
    return Path(out_dir) / f"{stem}.json", Path(out_dir) / f"{stem}.md"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    js, md = report_paths(out_dir, report["task"], report["split"])
    js.parent.mkdir(parents=True, exist_ok=True)
    js.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    md.write_text(to_markdown(report), encoding="utf-8")
    return js, md


def read_report(path: Path) -> dict[str, Any]:
    """Read a decision report JSON; errors name the file."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no decision report; run `dispute-classifier report` first") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt decision report ({exc}); run `dispute-classifier report` again") from None
    if not isinstance(report, dict) or report.get("schema") not in READABLE:
        raise UserError(
            f"{path}: not a decision report this version reads (expected schema {READABLE[-1]}); run `dispute-classifier report` again"
        )
    return report


def stages_path(runs_root: Path, task: str, split: str) -> Path:
    """Where an experiment leaves the stages it ran, beside the runs they made."""
    return Path(runs_root) / f"experiment-stages-{Path(task).stem}-{split}.json"


def write_stages(runs_root: Path, task: str, split: str, stages: list[dict[str, Any]]) -> Path:
    path = stages_path(runs_root, task, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stages, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
    return path


def read_stages(runs_root: Path, task: str, split: str) -> list[dict[str, Any]]:
    """The stages the last experiment on this task and split ran ([] when none ran here)."""
    path = stages_path(runs_root, task, split)
    if not path.is_file():
        return []
    try:
        stages = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: corrupt stages file ({exc}); run the experiment again or delete it") from None
    return stages if isinstance(stages, list) else []
