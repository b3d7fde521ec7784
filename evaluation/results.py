"""Results as data: small committed summaries of reported runs, and the tables rendered from them.

``results export`` writes one JSON per reported run under ``results/<task>/<split>/`` (the run
record minus its predictions: task, split, approach, model, metrics with intervals, speed,
costs, training, provenance, and the paired comparison with the best option without
fine-tuning, computed while the predictions are still at hand). Benchmark result files of the
service (``reports/serving/*.json``) are copied to ``results/serving/``.

``results render`` rewrites every table between ``<!-- results:NAME -->`` and
``<!-- /results:NAME -->`` in the README and the docs from those files; ``results check`` says
which table differs from what the committed results render (the test command runs it), so a
table can never drift from the numbers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from dispute_classifier.core.errors import UserError
from evaluation.compare import latest_per_setting
from evaluation.metrics import mcnemar_exact
from evaluation.runs import RunRecord
from evaluation.stats import tango_interval

RESULT_FORMAT = "dispute-classifier/result/1"
SERVING_FORMAT = "dispute-classifier/serve-capacity/1"
MARKER = re.compile(r"(<!-- results:(?P<key>[\w-]+(?::[\w.-]+)?) -->\n)(?P<body>.*?)(<!-- /results:(?P=key) -->)", re.S)
"""A results table in Markdown: ``<!-- results:NAME -->`` or ``<!-- results:NAME:TASK -->`` (default
task: disputes) up to the matching closing marker."""
DEFAULT_TASK = "disputes"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:120].strip("-")


def _round(value: Any, digits: int = 6) -> Any:
    """``digits`` significant digits: the committed files stay small and stable across reruns
    of the same numbers, and a cost of $6e-09 a query stays what it is."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, (list, tuple)):
        return [_round(v, digits) for v in value]
    if isinstance(value, dict):
        return {k: _round(v, digits) for k, v in value.items()}
    return value


def paired(run: RunRecord, reference: RunRecord) -> dict[str, Any] | None:
    """``run`` minus ``reference`` on the examples both saw: accuracy difference with Tango's 95 %
    interval and the exact McNemar test (b: only ``run`` right, c: only ``reference`` right)."""
    a, b = run.correct_by_id(), reference.correct_by_id()
    shared = sorted(set(a) & set(b))
    if not shared or run.meta.data.data_hash != reference.meta.data.data_hash:
        return None
    test = mcnemar_exact([a[i] for i in shared], [b[i] for i in shared])
    b_, c_ = int(test["a_only"]), int(test["b_only"])
    lo, hi = tango_interval(b_, c_, len(shared))
    return {
        "vs": reference.label,
        "vs_run_id": reference.run_id,
        "n_shared": len(shared),
        "b": b_,
        "c": c_,
        "difference": (b_ - c_) / len(shared),
        "ci95": [float(lo), float(hi)],
        "p_value": test["p_value"],
    }


def reference_run(runs: list[RunRecord], task: str, split: str) -> RunRecord | None:
    """The most accurate full-split run without fine-tuning on ``task`` / ``split``: what a
    fine-tuned model has to beat."""
    pool = [
        r for r in runs if (r.meta.task, r.meta.split) == (task, split) and r.meta.category.value != "finetuned" and not r.meta.data.limit
    ]
    return max(pool, key=lambda r: r.metrics["accuracy"], default=None)


def summarise(run: RunRecord, reference: RunRecord | None, describe: Callable[[str], str | None] = lambda a: None) -> dict[str, Any]:
    """The committed summary of one run record (no predictions)."""
    meta, m = run.meta, run.metrics
    training = meta.training
    keep = ("n", "accuracy", "accuracy_ci95", "macro_f1", "invalid_rate", "ece")
    speed = ("throughput_qps", "latency_p50_s", "latency_p95_s", "capacity_b1_qps", "model_rss_mb")
    result = {
        "format": RESULT_FORMAT,
        "task": meta.task,
        "split": meta.split,
        "approach": meta.approach,
        "category": meta.category.value,
        "model": meta.model,
        "label": run.label,
        "summary": describe(meta.approach),
        "billing": meta.billing,
        "hardware": meta.hardware,
        "limit": meta.data.limit,
        "config": meta.config,
        "metrics": {k: m.get(k) for k in keep} | {"dedup": {k: (m.get("dedup") or {}).get(k) for k in ("n", "accuracy", "accuracy_ci95")}},
        "speed": {k: m.get(k) for k in speed},
        "cost": {"cost_per_1k_usd": m.get("cost_per_1k_usd"), "cost_per_query_usd": m.get("cost_per_query_usd")},
        "training": {
            "wall_s": training.wall_s if training else None,
            "cost_usd": training.cost_usd if training else None,
            "hardware": training.hardware if training else None,
            "fit_s": meta.timing.get("fit_s"),
        },
        "cleaning": {k: v for k, v in (meta.extra.get("cleaning") or {}).items() if k != "changed_ids"} or None,
        "paired": paired(run, reference) if reference is not None and reference.run_id != run.run_id else None,
        "provenance": {
            "run_id": meta.run_id,
            "code_version": meta.code_version,
            "commit": (meta.git or {}).get("commit"),
            "data_hash": meta.data.data_hash,
            "fit_split": meta.data.fit_split,
            "n_fit": meta.data.n_fit,
            "seed": meta.seed,
            "config_hash": meta.config_hash,
            "started_at": meta.started_at,
            "finished_at": meta.finished_at,
        },
    }
    return _round(result)


def result_name(result: dict[str, Any]) -> str:
    """File name of a result: its display label, made safe."""
    return f"{_slug(result['label'])}.json"


def export(
    runs: list[RunRecord], out: Path, describe: Callable[[str], str | None] = lambda a: None, serving: list[Path] = ()
) -> list[Path]:
    """Write the summaries of the newest run of each setting in ``runs`` (and copy the serving
    benchmark files) under ``out``; returns the files written. Existing summaries of other runs
    stay: export adds and replaces, never deletes."""
    by_task: dict[str, list[RunRecord]] = {}
    for run in runs:  # the newest run of each setting, per task (a setting does not name its task)
        by_task.setdefault(run.meta.task, []).append(run)
    runs = [r for group in by_task.values() for r in latest_per_setting(group)]
    references = {key: reference_run(runs, *key) for key in {(r.meta.task, r.meta.split) for r in runs}}
    written: list[Path] = []
    for run in sorted(runs, key=lambda r: (r.meta.task, r.meta.split, r.label, r.meta.config_hash or "")):
        result = summarise(run, references[run.meta.task, run.meta.split], describe)
        path = out / run.meta.task / run.meta.split / result_name(result)
        if path in written:  # two settings whose labels read alike: the config hash tells them apart
            path = path.with_name(f"{path.stem}-{(run.meta.config_hash or run.run_id)[:8]}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        written.append(path)
    for src in serving:
        data = json.loads(Path(src).read_text())
        if data.get("format") != SERVING_FORMAT:
            raise UserError(f"{src}: not a serving benchmark result (format {data.get('format')!r}, expected {SERVING_FORMAT})")
        path = out / "serving" / Path(src).name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def load_results(root: Path) -> list[dict[str, Any]]:
    """Every committed summary under ``root`` (serving files included), with its ``path``."""
    found = []
    for path in sorted(root.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}); run `dispute-classifier results export` again") from None
        if data.get("format") in (RESULT_FORMAT, SERVING_FORMAT):
            found.append({**data, "path": str(path.relative_to(root))})
    return found


# ---- tables -------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def ci(pair: list[float] | None) -> str:
    return "" if not pair else f" ({100 * pair[0]:.2f}–{100 * pair[1]:.2f})"


def vs(p: dict[str, Any] | None) -> str:
    if not p:
        return "—"
    return (
        f"{100 * p['difference']:+.2f} points ({100 * p['ci95'][0]:+.2f} to {100 * p['ci95'][1]:+.2f}),"
        f" {p['b']}/{p['c']}, p = {p['p_value']:.2g}"
    )


def minutes(r: dict[str, Any]) -> str:
    t = r["training"]
    seconds = t.get("wall_s") or t.get("fit_s")
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def qps(r: dict[str, Any]) -> str:
    q = r["speed"].get("throughput_qps")
    return "—" if q is None else f"{q:,.1f}" if q < 100 else f"{q:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _runs(results: list[dict[str, Any]], task: str, split: str, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return sorted(
        (r for r in results if r.get("format") == RESULT_FORMAT and (r["task"], r["split"]) == (task, split) and keep(r)),
        key=lambda r: (r["category"], r["label"]),
    )


def headline(results: list[dict[str, Any]], task: str) -> str:
    """The README's table: the approaches without an LLM on the whole test split, most accurate
    first, each paired against the most accurate one."""
    runs = _runs(results, task, "test", lambda r: r["category"] == "classical" and not r["limit"])
    rows = [
        [
            f"`{r['label']}`",
            r.get("summary") or "",
            pct(r["metrics"]["accuracy"]) + ci(r["metrics"]["accuracy_ci95"]),
            pct(r["metrics"]["macro_f1"]),
            mcnemar(r["paired"]),
        ]
        for r in sorted(runs, key=lambda r: -r["metrics"]["accuracy"])
    ]
    return _table(["approach", "what it is", "accuracy (Wilson 95 %)", "macro-F1", "vs the most accurate: b/c, McNemar"], rows)


def mcnemar(p: dict[str, Any] | None) -> str:
    return "—" if not p else f"{p['b']}/{p['c']} vs `{p['vs']}`, p = {p['p_value']:.2g}"


def finetuning(results: list[dict[str, Any]], task: str) -> str:
    """Every fine-tuned setting: validation, test, paired against the best option without fine-tuning."""
    settings: dict[tuple, dict[str, dict[str, Any]]] = {}
    for split in ("validation", "test"):  # one row per setting: its validation and test runs side by side
        for r in _runs(results, task, split, lambda r: r["category"] == "finetuned"):
            key = (r["approach"], r["model"], json.dumps(r["config"], sort_keys=True))
            settings.setdefault(key, {})[split] = r
    rows = []
    for _, by in sorted(settings.items(), key=lambda kv: re.sub(r" \(n=\d+\)$", "", (kv[1].get("validation") or kv[1]["test"])["label"])):
        val, test = by.get("validation"), by.get("test")
        any_run = test or val
        name = f"`{re.sub(r' [(]n=[0-9]+[)]$', '', any_run['label'])}`"
        rows.append(
            [
                name,
                pct(val["metrics"]["accuracy"]) if val else "not run",
                (
                    pct(test["metrics"]["accuracy"])
                    + ci(test["metrics"]["accuracy_ci95"])
                    + (f", on {test['limit']} examples" if test["limit"] else "")
                )
                if test
                else "not run",
                vs(test["paired"]) if test else "—",
                minutes(any_run),
                qps(any_run),
            ]
        )
    return _table(
        [
            "model",
            "validation",
            "test (Wilson 95 %)",
            "vs the best without fine-tuning (Tango 95 %), b/c, McNemar",
            "training",
            "queries/s",
        ],
        rows,
    )


def runs_table(results: list[dict[str, Any]], task: str) -> str:
    """Every full-split run on the test split, most accurate first."""
    runs = sorted(_runs(results, task, "test", lambda r: not r["limit"]), key=lambda r: -r["metrics"]["accuracy"])
    rows = [
        [
            f"`{r['label']}`",
            pct(r["metrics"]["accuracy"]) + ci(r["metrics"]["accuracy_ci95"]),
            pct(r["metrics"]["macro_f1"]),
            mcnemar(r["paired"]),
        ]
        for r in runs
    ]
    return _table(["approach", "accuracy (Wilson 95 %)", "macro-F1", "vs the most accurate without fine-tuning: b/c, McNemar"], rows)


def serving(results: list[dict[str, Any]], task: str) -> str:
    """Measured service throughput per model at each concurrency level (the load benchmark)."""
    found = sorted((r for r in results if r.get("format") == SERVING_FORMAT and r.get("task") == task), key=lambda r: r["model"])
    levels = sorted({int(k) for r in found for k in r["levels"]})
    rows = []
    for r in found:
        cells = []
        for level in levels:
            lv = r["levels"].get(str(level))
            cells.append("—" if lv is None else f"{lv['texts_per_s']:,.1f} texts/s, p50 {lv['p50_ms']:.1f} ms, p95 {lv['p95_ms']:.1f} ms")
        sets = (r.get("settings") or {}).get("set") or []
        name = f"`{r['model']}` ({r['version']})" + "".join(f", `--set {kv}`" for kv in sets)
        rows.append([name, *cells, f"{r['measured_at'][:10]}, {r['machine']['cpus']} CPUs"])
    return _table(["model", *(f"concurrency {c}" for c in levels), "measured"], rows)


TABLES: dict[str, Callable[[list[dict[str, Any]], str], str]] = {
    "headline": headline,
    "finetuning": finetuning,
    "runs": runs_table,
    "serving": serving,
}
"""The tables a marker can name."""


def rendered(key: str, results: list[dict[str, Any]]) -> str:
    """The text between the markers ``<!-- results:KEY -->`` (KEY: NAME or NAME:TASK)."""
    name, _, task = key.partition(":")
    task = task or DEFAULT_TASK
    if name not in TABLES:
        raise UserError(f"unknown results table '{name}' in a <!-- results:{key} --> marker; known: {', '.join(TABLES)}")
    source = "results/serving" if name == "serving" else f"results/{task}"
    return f"<!-- generated by `dispute-classifier results render` from {source}/: edit those files, not this table -->\n" + TABLES[name](
        results, task
    )


def render_text(text: str, results: list[dict[str, Any]]) -> str:
    """``text`` with every results table rewritten."""
    return MARKER.sub(lambda m: m.group(1) + rendered(m.group("key"), results) + m.group(4), text)


def render_files(files: list[Path], results: list[dict[str, Any]], check: bool = False) -> list[str]:
    """Rewrite the tables in ``files`` (or, with ``check``, only compare); returns the
    ``file: table`` names that differed."""
    differ = []
    for path in files:
        text = path.read_text()
        new = render_text(text, results)
        if new != text:
            old_tables = {m.group("key"): m.group("body") for m in MARKER.finditer(text)}
            new_tables = {m.group("key"): m.group("body") for m in MARKER.finditer(new)}
            differ += [f"{path}: {name}" for name in new_tables if new_tables[name] != old_tables.get(name)]
            if not check:
                path.write_text(new)
    return differ


def doc_files(root: Path) -> list[Path]:
    """The README and every docs page that holds a results marker."""
    candidates = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in candidates if p.is_file() and "<!-- results:" in p.read_text()]
