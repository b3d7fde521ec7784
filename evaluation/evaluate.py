"""The shared evaluator: any `Classifier`, one split, one run record."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from dispute_classifier.core import plugins
from dispute_classifier.core.datacheck import exact_overlap, near_twins
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.progress import progress_bar
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import Split, TaskData, stratified_sample
from dispute_classifier.core.types import INVALID, Billing, Classifier, Prediction
from evaluation import metrics as M
from evaluation.runmeta import Category, DataInfo, RunMeta
from evaluation.runs import (
    RunRecord,
    code_version,
    config_hash,
    find_finished_run,
    git_state,
    new_run_id,
    now_iso,
    package_versions,
    reuse_key,
    runs_dir,
    write_run,
)
from evaluation.stats import wilson_interval


def compute_metrics(
    gold: Sequence[str],
    preds: Sequence[Prediction],
    labels: Sequence[str],
    predict_seconds: float,
    cost_per_query: float | None,
    ids: Sequence[str] = (),
    near_duplicates: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every number a run reports, from gold labels and predictions.

    Accuracy intervals are Wilson score intervals (`evaluation.stats.wilson_interval`) at every
    n. With ``near_duplicates`` (``threshold`` and the ``ids`` of scored items that have a
    same-label near-twin among the fitted rows), ``dedup`` is the accuracy without them.
    """
    pred_labels = [p.label for p in preds]
    correct = [g == p for g, p in zip(gold, pred_labels)]
    lo, hi = wilson_interval(sum(correct), len(correct))
    dedup = None
    if near_duplicates is not None:
        twins = set(near_duplicates["ids"])
        kept = [ok for rid, ok in zip(ids, correct) if rid not in twins]
        d_lo, d_hi = wilson_interval(sum(kept), len(kept))
        dedup = {
            "n": len(kept),
            "n_removed": len(correct) - len(kept),
            "threshold": near_duplicates["threshold"],
            "accuracy": sum(kept) / len(kept) if kept else None,
            "accuracy_ci95": [d_lo, d_hi],
        }
    latencies = [p.usage.latency_s for p in preds]
    n = len(gold)
    throughput = n / predict_seconds if predict_seconds > 0 else 0.0
    confidences = [p.confidence for p in preds]
    return {
        "n": n,
        "accuracy": M.accuracy(gold, pred_labels),
        "accuracy_ci95": [lo, hi],
        "macro_f1": M.macro_f1(gold, pred_labels, labels),
        "invalid_rate": sum(p.label == INVALID for p in preds) / n if n else 0.0,
        "per_class": M.per_class(gold, pred_labels, labels),
        "confusion": {"labels": list(labels), "matrix": M.confusion_matrix(gold, pred_labels, labels).tolist()},
        "ece": M.expected_calibration_error(confidences, correct),
        "coverage_curve": M.coverage_curve(confidences, correct),
        "latency_p50_s": M.percentile(latencies, 50),
        "latency_p95_s": M.percentile(latencies, 95),
        "throughput_qps": throughput,
        "input_tokens_per_query": sum(p.usage.input_tokens for p in preds) / n if n else 0.0,
        "output_tokens_per_query": sum(p.usage.output_tokens for p in preds) / n if n else 0.0,
        "cost_per_query_usd": cost_per_query,
        "cost_per_1k_usd": cost_per_query * 1000 if cost_per_query is not None else None,
        "dedup": dedup,
    }


def training_overlap(clf: Classifier, data: TaskData, split: str) -> str | None:
    """The split name when ``clf`` was trained elsewhere on rows of ``split`` of this task
    (a fine-tuned model trained on train+validation, scored on validation), else None."""
    rows = clf.fitted_rows()
    if not rows or rows.get("task") != data.spec.name:
        return None
    return split if split in rows.get("splits", []) else None


def _category(approach: str) -> str:
    """The registered approach's category; an unregistered one must name its category."""
    entry = plugins.approaches().get(approach)
    if entry is None:
        raise UserError(f"approach '{approach}' is not registered: register it, or pass evaluate(category=...)")
    return entry.category


SERVING_PROBE = 16
"""Texts sent one at a time after the run to measure per-request latency (as a service sees it)."""


def current_rss_mb() -> float | None:
    """Resident memory of this process now, in MB (None where /proc is not available)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def serving_profile(clf: Classifier, texts: list[str], billing: Billing, rss_before: float | None) -> dict[str, Any]:
    """What a service needs to know to be sized: per-request latency at batch 1 (one text per
    call, as a request without micro-batching sees it), the capacity that gives one worker
    (1 / mean latency), and the memory the model added to this process. API-billed runs are
    not probed again (each call costs money): their per-request latency is already measured."""
    out: dict[str, Any] = {
        "latency_b1_p50_s": None,
        "latency_b1_p95_s": None,
        "capacity_b1_qps": None,
        "model_rss_mb": None,
        "process_rss_mb": current_rss_mb(),
    }
    if rss_before is not None and out["process_rss_mb"] is not None:
        out["model_rss_mb"] = max(0.0, out["process_rss_mb"] - rss_before)
    if billing is Billing.API or not texts:
        return out
    seconds = []
    for text in texts[:SERVING_PROBE]:
        t0 = time.perf_counter()
        clf.predict([text])
        seconds.append(time.perf_counter() - t0)
    out.update(
        latency_b1_p50_s=M.percentile(seconds, 50),
        latency_b1_p95_s=M.percentile(seconds, 95),
        capacity_b1_qps=len(seconds) / sum(seconds) if sum(seconds) > 0 else None,
    )
    return out


def run_config_hash(
    approach: str,
    config: dict[str, Any],
    *,
    model: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    split: str = "test",
) -> str:
    """The ``config_hash`` a run of these settings records; known before running, so a
    rerun can find and reuse a finished run (see `evaluation.runs.find_finished_run`)."""
    return config_hash({"approach": approach, "model": model, "config": config, "limit": limit, "seed": seed, "split": split})


def _predict_in_batches(clf: Classifier, texts: list[str], batch_size: int, progress: bool) -> tuple[list[Prediction], float]:
    """Predict with a progress bar; batch models get their batch time spread over the batch."""
    preds: list[Prediction] = []
    total = 0.0
    # a tqdm bar in a terminal, one line at the end in a log (core.progress)
    with progress_bar(len(texts), f"predict {clf.name}", unit="ex", enabled=progress) as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            t0 = time.perf_counter()
            out = clf.predict(chunk)
            elapsed = time.perf_counter() - t0
            total += elapsed
            if len(out) != len(chunk):
                raise RuntimeError(f"{clf.name}.predict returned {len(out)} predictions for {len(chunk)} texts")
            for p in out:
                if not p.usage.latency_s:
                    p.usage.latency_s = elapsed / len(chunk)
            preds.extend(out)
            bar.update(len(chunk))
    return preds, total


def evaluate(
    clf: Classifier,
    data: TaskData,
    split: str = "test",
    *,
    approach: str,
    config: dict[str, Any] | None = None,
    runs_root: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    prices: PriceTable | None = None,
    hardware: str | None = None,
    model: str | None = None,
    extra: dict[str, Any] | None = None,
    category: str | None = None,
    fit: bool = True,
    batch_size: int = 64,
    progress: bool = True,
    allow_overlap: bool = False,
    max_overlap_share: float = 0.02,
) -> RunRecord:
    """Fit ``clf`` on the rows allowed for ``split`` (never the test split), predict ``split``,
    and write a run record. ``limit`` evaluates a seeded, stratified subsample and says so.

    The classifier's ``billing`` is ``api`` (cost from its per-token usage; unknown when any
    prediction's cost is None) or self-hosted (hardware $/hour over the measured throughput).
    Its ``model_name`` names the model when ``model`` is not given, and ``run_info()`` (called
    after predicting) is merged into the record's ``extra``: endpoint, prompt, truncated texts.
    """
    prices = prices or PriceTable.load()
    config = dict(config or {})
    started = now_iso()
    requested_hardware = hardware
    target: Split = data.split(split)
    if limit and limit >= len(target):
        limit = None  # the whole split: the same run as no limit
    if limit:
        target = stratified_sample(target, limit, seed)
    fit_rows = data.fit_split(split)
    trained_on = training_overlap(clf, data, split)
    if trained_on and not allow_overlap:
        raise UserError(
            f"{clf.name} was trained on the {trained_on} rows of task {data.spec.name}, so scoring it on {split} would"
            " measure memory, not accuracy; evaluate another split (test), or pass --allow-overlap to record it flagged"
        )
    # The data itself, for every approach: a split whose texts are also fitted rows (a task whose
    # train file is its test file) measures memory, whatever the model.
    shared = exact_overlap(target.texts, fit_rows.texts)
    share = len(shared) / len(target) if len(target) else 0.0
    if share > max_overlap_share and not allow_overlap:
        examples = ", ".join(target.ids[i] for i in shared[:5])
        raise UserError(
            f"{len(shared)} of {len(target)} {split} texts ({share:.1%}) also occur in the {fit_rows.name} rows of task"
            f" {data.spec.name} (e.g. {examples}), above the {max_overlap_share:.0%} allowed: check the task's source files"
            " (is the training file the test file?), or pass --allow-overlap to record it flagged"
        )
    overlap = (
        f"trained on the {trained_on} rows"
        if trained_on
        else f"{share:.1%} of the scored texts are also fitted rows"
        if share > max_overlap_share
        else None
    )
    twins = {
        "threshold": data.spec.near_duplicate_threshold,
        "ids": [t["id"] for t in near_twins(target, fit_rows, data.spec.near_duplicate_threshold)],
    }
    fit_seconds = 0.0
    rss_before = current_rss_mb()
    if fit:
        t0 = time.perf_counter()
        clf.fit(fit_rows.texts, fit_rows.labels)
        fit_seconds = time.perf_counter() - t0
    preds, predict_seconds = _predict_in_batches(clf, target.texts, batch_size, progress)
    billing = Billing(clf.billing)
    run_info = clf.run_info()  # before the latency probe, so its counts are the run's own
    serving = serving_profile(clf, target.texts, billing, rss_before)
    n = len(target)
    if billing is Billing.API:
        costs = [p.usage.cost_usd for p in preds]
        cost_per_query = sum(costs) / n if n and all(c is not None for c in costs) else None  # type: ignore[arg-type]
    else:
        # a self-hosted endpoint this project did not start runs on a machine nobody named here:
        # its hardware (and so its cost) is unknown unless --hardware says it
        llm = run_info.get("llm") or {}
        remote = llm.get("backend") == "api" and not llm.get("project_started_server")
        hardware = hardware or clf.hardware or (None if remote else prices.default_hardware)
        cost_per_query = (
            None if hardware is None else prices.self_hosted_cost_per_query(hardware, n / predict_seconds if predict_seconds else 0.0)
        )
        for p in preds:
            p.usage.cost_usd = cost_per_query
    labels = data.spec.label_list
    model = model or clf.model_name
    metrics = {**compute_metrics(target.labels, preds, labels, predict_seconds, cost_per_query, target.ids, twins), **serving}
    cfg_hash = run_config_hash(approach, config, model=model, limit=limit, seed=seed, split=split)
    is_api = billing is Billing.API
    meta = RunMeta(
        run_id=new_run_id(data.spec.name, approach, split, cfg_hash),
        task=data.spec.name,
        task_file=str(data.spec.path),
        split=split,
        approach=approach,
        category=Category(category or _category(approach)),
        model=model or approach,
        billing=billing,
        hardware=None if is_api else hardware,
        config=config,
        config_hash=cfg_hash,
        reuse_key=reuse_key(cfg_hash, requested_hardware),
        code_version=code_version(),
        seed=seed,
        data=DataInfo(
            sha256=data.sha256,
            data_hash=data.data_hash,
            n_examples=n,
            limit=limit,
            fit_split=fit_rows.name if fit else None,
            overlap=overlap,
            overlap_share=share,
            overlap_ids=tuple(target.ids[i] for i in shared),
            near_duplicate_ids=tuple(twins["ids"]),
            n_fit=len(fit_rows) if fit else 0,
            license=data.spec.source.license,
            citation=data.spec.source.citation,
        ),
        git=git_state(),
        versions=package_versions(),
        python=sys.version.split()[0],
        started_at=started,
        finished_at=now_iso(),
        timing={"fit_s": fit_seconds, "predict_s": predict_seconds},
        prices={"table": str(prices.path), "hourly_usd": None if is_api or hardware is None else prices.hourly(hardware)},
        extra={**run_info, **(extra or {})},
        metrics=metrics,
    )
    rows = [
        {
            "id": rid,
            "text": text,
            "gold": gold,
            "predicted": p.label,
            "confidence": p.confidence,
            "input_tokens": p.usage.input_tokens,
            "output_tokens": p.usage.output_tokens,
            "latency_s": p.usage.latency_s,
            "cost_usd": p.usage.cost_usd,
            **({"raw": p.raw} if p.raw is not None else {}),
        }
        for rid, text, gold, p in zip(target.ids, target.texts, target.labels, preds)
    ]
    folder = write_run(runs_dir(runs_root), meta, rows)
    return RunRecord(folder, meta, rows)


def evaluate_config(
    cfg: RunConfig,
    data: TaskData,
    prices: PriceTable | None = None,
    progress: bool = True,
    reuse: bool = False,
    extra: dict[str, Any] | None = None,
) -> tuple[RunRecord, bool]:
    """Build the approach of ``cfg`` from the registry and run the shared evaluator on it: the
    one path that ``evaluate``, ``experiment`` and the fine-tuning script share, so all of them
    record the same model, category and config hash for the same settings.

    With ``reuse``, a finished run with the same settings on the same data is returned
    instead of running again. ``extra`` goes into the record's ``extra`` (e.g. a sweep's trial
    number). Returns ``(run record, reused)``.
    """
    approach = plugins.get_approach(cfg.approach)
    prices = prices or PriceTable.load(Path(cfg.prices) if cfg.prices else None)  # once, for the check and the run
    if cfg.hardware:  # a bad --hardware fails now, not after fitting
        prices.hourly(cfg.hardware)
    clf = approach.build(cfg)  # cheap: models load on first predict
    config = cfg.approach_settings()
    model = clf.model_name or clf.name
    if cfg.clean_train != "none":  # a cleaned model is its own setting: its own hash and candidate
        config["clean_train"] = cfg.clean_train
        model = f"{model}, label issues {'dropped' if cfg.clean_train == 'drop' else 'relabelled'}"
    if reuse:
        limit = cfg.limit if cfg.limit and cfg.limit < len(data.split(cfg.split)) else None
        cfg_hash = run_config_hash(cfg.approach, config, model=model, limit=limit, seed=cfg.seed, split=cfg.split)
        found = find_finished_run(runs_dir(cfg.runs_dir), reuse_key(cfg_hash, cfg.hardware), data.data_hash)
        if found is not None:
            clf.close()
            return found, True
    if cfg.clean_train != "none":
        from evaluation.cleaning import cleaned_fit_rows

        data, cleaning = cleaned_fit_rows(data, cfg.split, cfg.clean_train, seed=cfg.seed)
        extra = {**(extra or {}), "cleaning": cleaning}
        if progress:
            print(
                f"clean-train: {cleaning['suspects']} suspected label issues in {cleaning['rows_before']:,} fit rows;"
                f" fitting on {cleaning['rows_after']:,} rows ({len(cleaning['changed_ids'])} {cfg.clean_train == 'drop' and 'dropped' or 'relabelled'})"
            )
    try:
        run = evaluate(
            clf,
            data,
            cfg.split,
            approach=cfg.approach,
            config=config,
            runs_root=cfg.runs_dir,
            limit=cfg.limit,
            seed=cfg.seed,
            prices=prices,
            hardware=cfg.hardware,
            progress=progress,
            model=model,
            category=approach.category,
            allow_overlap=cfg.allow_overlap,
            max_overlap_share=cfg.max_overlap_share,
            extra=extra,
        )
    finally:  # LLM approaches stop the llama.cpp server they started
        clf.close()
    return run, False
