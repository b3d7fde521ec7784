"""``dispute-classifier monitor``: the monitoring report over the prediction log
(`evaluation.monitoring`), in the terminal and optionally as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from evaluation.monitoring import MonitorSettings, format_summary, load_labels, summarize
from evaluation.predlog import db_url, read_log


@dataclass
class MonitorConfig(MonitorSettings):
    """One monitoring report over the prediction log."""

    log_db: str | None = None
    """Prediction log written by `serve`: a SQLite file or a SQLAlchemy URL such as postgresql+psycopg://USER@HOST/DB (default: runs/serve/predictions.db)."""
    labels: str | None = None
    """CSV of gold labels (id,label as `replay --labels-out` writes, or text,label): true accuracy next to the estimate, and the shadow pair judged on the labelled disagreements."""
    model: str | None = None
    """Report on this champion model only (default: every champion prediction in the log)."""
    json: str | None = None
    """Also write the report as JSON to this file."""


def run_monitor(cfg: MonitorConfig) -> tuple[dict[str, Any], str]:
    """The report (as data and as text) over the log that ``cfg`` names."""

    settings = MonitorSettings(**{f.name: getattr(cfg, f.name) for f in fields(MonitorSettings)})
    log = read_log(db_url(cfg.log_db))
    labels = load_labels(cfg.labels) if cfg.labels else None
    summary = summarize(log, settings, labels, cfg.model)
    if cfg.json:
        Path(cfg.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary, format_summary(summary)
