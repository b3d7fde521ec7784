"""``dispute-classifier replay``: send a file (or a task split) through a running service, as
traffic, so the monitoring loop can be shown offline.

Each request carries ``X-Request-ID`` = a run prefix + the row id (the log keeps it as the
client's id); gold labels written with ``--labels-out`` are keyed by the id the service answered
with (its ``X-Request-Id`` response header, the log's key), so they join the prediction log
(`dispute-classifier monitor --labels`). ``--split
other`` replays the texts of the task's source test file whose labels are *not* in the task
(for the disputes task: the 61 other BANKING77 intents), i.e. drifted traffic.
"""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dispute_classifier.core import task as tasks
from dispute_classifier.core.errors import UserError
from evaluation.monitoring import percentile

SPLITS = ("test", "validation", "other")


@dataclass
class ReplayConfig:
    """One replay of texts through a running service."""

    input: str | None = None
    """CSV file with a text column (and optionally id and label columns); or use --split."""
    split: str | None = None
    """Instead of a file, replay a split of --task: test, validation, or other (source rows whose labels are not in the task: drifted traffic)."""
    url: str = "http://127.0.0.1:8000"
    """Base address of the running service."""
    task: str = "disputes"
    """Task whose split --split replays."""
    text_column: str = "text"
    """Input CSV column with the text."""
    id_column: str | None = None
    """Input CSV column with a row id (default: the row number)."""
    label_column: str | None = None
    """Input CSV column with the gold label, for --labels-out (default: label, when present)."""
    concurrency: int = 8
    """Requests in flight at once."""
    batch_size: int = 1
    """Texts per request."""
    limit: int | None = None
    """Send at most this many rows."""
    api_key_env: str | None = None
    """Environment variable with the service's API key, when it needs one."""
    labels_out: str | None = None
    """Write id,label of the replayed rows here, for `monitor --labels`."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    timeout_s: float = 60.0
    """Seconds one request may take."""

    def __post_init__(self) -> None:
        if (self.input is None) == (self.split is None):
            raise UserError("replay needs exactly one of INPUT (a CSV file) or --split (test, validation, other)")
        if self.split is not None and self.split not in SPLITS:
            raise UserError(f"--split must be one of {', '.join(SPLITS)}, got '{self.split}'")
        if self.concurrency < 1 or self.batch_size < 1:
            raise UserError("--concurrency and --batch-size must be at least 1")


def read_rows(cfg: ReplayConfig) -> list[tuple[str, str, str | None]]:
    """(id, text, gold label or None) of every row to replay."""

    if cfg.split is not None:
        spec = tasks.load_task(cfg.task)
        data_dir = Path(cfg.data_dir) if cfg.data_dir else None
        if cfg.split == "other":
            rows = tasks.read_rows(tasks.resolve_file(spec, "test", data_dir), spec)
            out = [(rid, text, label) for rid, text, label, _ in rows if label not in spec.labels and text.strip()]
            if not out:
                raise UserError(
                    f"task '{spec.name}': its source test file has no rows outside its labels; replay a file of other texts instead"
                )
        else:
            split = tasks.load_data(spec, data_dir).split(cfg.split)
            out = list(zip(split.ids, split.texts, split.labels))
    else:
        path = Path(cfg.input)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                cols = reader.fieldnames or []
                if cfg.text_column not in cols:
                    raise UserError(f"{path}: no column '{cfg.text_column}' (columns: {', '.join(cols)}); set --text-column")
                label_col = cfg.label_column or ("label" if "label" in cols else None)
                out = [
                    (row[cfg.id_column] if cfg.id_column else str(i), row[cfg.text_column], row.get(label_col) if label_col else None)
                    for i, row in enumerate(reader, start=2)
                ]
        except FileNotFoundError:
            raise UserError(f"{path}: file not found") from None
    return out[: cfg.limit] if cfg.limit else out


async def _send_all(cfg: ReplayConfig, batches: list[tuple[str, list[str]]], headers: dict[str, str]) -> list[dict[str, Any]]:
    import asyncio

    import httpx

    sem = asyncio.Semaphore(cfg.concurrency)
    results: list[dict[str, Any]] = []

    async def send(client: httpx.AsyncClient, rid: str, texts: list[str]) -> None:
        async with sem:
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/classify", json={"input": texts}, headers={**headers, "X-Request-ID": rid})
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                results.append(
                    {
                        "status": r.status_code,
                        "latency_s": time.perf_counter() - t0,
                        "body": body,
                        "rid": rid,
                        "server_id": r.headers.get("x-request-id"),
                    }
                )
            except httpx.HTTPError as exc:
                results.append(
                    {"status": 0, "latency_s": time.perf_counter() - t0, "body": {"error": {"message": str(exc) or exc.__class__.__name__}}}
                )

    limits = httpx.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency)
    async with httpx.AsyncClient(base_url=cfg.url, timeout=cfg.timeout_s, limits=limits) as client:
        await asyncio.gather(*(send(client, rid, texts) for rid, texts in batches))
    return results


def replay(cfg: ReplayConfig) -> dict[str, Any]:
    """Send the rows, write the labels file, and return the summary."""
    import asyncio

    rows = read_rows(cfg)
    headers = {}
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env, "")
        if not key:
            raise UserError(f"--api-key-env {cfg.api_key_env}: that environment variable is not set or empty")
        headers["Authorization"] = f"Bearer {key}"
    prefix = f"replay-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-"
    batches, gold = [], []
    for start in range(0, len(rows), cfg.batch_size):
        part = rows[start : start + cfg.batch_size]
        rid = prefix + (part[0][0] if cfg.batch_size == 1 else str(start))
        batches.append((rid, [text for _, text, _ in part]))
        gold += [(rid, None if cfg.batch_size == 1 else i, label) for i, (_, _, label) in enumerate(part)]
    t0 = time.perf_counter()
    results = asyncio.run(_send_all(cfg, batches, headers))
    elapsed = time.perf_counter() - t0
    server_ids = {r["rid"]: r["server_id"] for r in results if r.get("server_id")}  # the service's log keys
    gold = [(server_ids.get(rid, rid) + ("" if i is None else f"/{i}"), label) for rid, i, label in gold]
    if cfg.labels_out:
        with open(cfg.labels_out, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "label"])
            w.writerows([(k, v) for k, v in gold if v is not None])
    ok = [r for r in results if r["status"] == 200]
    answers = [d for r in ok for d in r["body"].get("data", [])]
    latencies = [r["latency_s"] * 1000 for r in results]
    statuses = Counter(r["status"] for r in results if r["status"] != 200)
    if results and not ok and statuses.get(0) == len(results):
        raise UserError(f"no answer from {cfg.url}: {results[0]['body']['error']['message']}; is `dispute-classifier serve` running there?")
    return {
        "rows": len(rows),
        "requests": len(results),
        "ok": len(ok),
        "errors": dict(statuses),
        "first_error": next((r["body"].get("error", {}).get("message") for r in results if r["status"] != 200), None),
        "elapsed_s": elapsed,
        "texts_per_s": len(answers) / elapsed if elapsed else 0.0,
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "abstain_rate": sum(a["abstain"] for a in answers) / len(answers) if answers else None,
        "labels": dict(Counter(a["label"] for a in answers).most_common(5)),
    }


def format_replay(summary: dict[str, Any]) -> str:
    """The replay command's terminal summary."""
    s = summary
    line = (
        f"replayed {s['rows']} rows in {s['requests']} requests: {s['ok']} answered, errors {s['errors'] or 'none'};"
        f" {s['elapsed_s']:.1f} s, {s['texts_per_s']:.1f} texts/s, latency p50 {s['latency_p50_ms'] or 0:.1f} ms p95 {s['latency_p95_ms'] or 0:.1f} ms"
    )
    if s["abstain_rate"] is not None:
        line += f"; abstained {s['abstain_rate'] * 100:.1f}%; top labels {s['labels']}"
    if s["first_error"]:
        line += f"\nfirst error: {s['first_error']}"
    return line
