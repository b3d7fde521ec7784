"""Batch classification, either engine: ``classify --engine local`` (one process, `classify`)
or ``--engine ray`` (Ray Data actors, `classify_ray`). Both read, check, route and resume
through the same job machinery (`batchjob`) and write byte-identical files."""

from __future__ import annotations

from typing import Any

from dispute_classifier.commands.batchjob import ClassifyConfig, Summary
from dispute_classifier.commands.classify import classify_file
from dispute_classifier.commands.classify_ray import classify_file_ray


def classify(cfg: ClassifyConfig, run_cfg: Any = None, model: Any = None, out: Any = None) -> Summary:
    """Run (or resume) one batch job on the engine ``cfg.engine`` names and return its summary."""
    if cfg.engine == "ray":
        return classify_file_ray(cfg, run_cfg, model, out)
    return classify_file(cfg, run_cfg, model, out)
