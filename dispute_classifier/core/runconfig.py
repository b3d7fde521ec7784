"""The settings of one evaluation: task, approach, split, and each approach's own section.

The general fields are typed here; the per-approach sections (``tfidf``, ``llm``, ``rag``,
...) come from the approach registry (`dispute_classifier.core.plugins`), so a new approach
brings its own settings without touching this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispute_classifier.core import plugins
from dispute_classifier.core.config import from_dict, to_dict
from dispute_classifier.core.errors import UserError


@dataclass
class RunConfig:
    """One evaluation: which task, approach and split, and every approach's settings."""

    task: str = "disputes"
    """Task name (data/tasks/<name>.yaml) or path to a task YAML file."""
    approach: str = "tfidf"
    """Approach to evaluate (see `dispute-classifier evaluate --help` for the registered ones)."""
    split: str = "test"
    """Split to evaluate on: test (report only) or validation (for tuning)."""
    limit: int | None = None
    """Evaluate a seeded, stratified subsample of this many examples (recorded in the run)."""
    seed: int = 0
    """Seed for subsampling, bootstrap intervals and any model randomness."""
    runs_dir: str | None = None
    """Folder that receives run records (default: $DISPUTE_CLASSIFIER_RUNS, then ./runs)."""
    data_dir: str | None = None
    """Folder holding the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    prices: str | None = None
    """Price table YAML (default: dispute_classifier/core/prices.yaml)."""
    hardware: str | None = None
    """Hardware kind from the price table that self-hosted costs are computed for."""
    allow_overlap: bool = False
    """Evaluate even when the split overlaps the rows the model was fitted on (flagged in the record and report)."""
    max_overlap_share: float = 0.02
    """Largest share of scored texts that may also occur (normalised) in the rows the model was fitted on; above it the evaluator refuses unless --allow-overlap."""
    clean_train: str = "none"
    """Before fitting: drop or relabel the rows the label-issue finder suspects among the fit rows (none: as given)."""
    sections: dict[str, Any] = field(default_factory=dict)
    """Each approach's settings by section name; written as top-level keys (tfidf.C=4)."""

    @staticmethod
    def dynamic_sections() -> dict[str, type]:
        return plugins.sections()

    def __post_init__(self) -> None:
        plugins.get_approach(self.approach)  # an unknown name fails here, before any data is loaded
        if self.split not in ("test", "validation"):
            raise UserError(f"split must be 'test' or 'validation', got '{self.split}' (set --split)")
        if not 0 <= self.max_overlap_share <= 1:
            raise UserError(f"max_overlap_share must be between 0 and 1, got {self.max_overlap_share} (set --max-overlap-share 0.02)")
        if self.clean_train not in ("none", "drop", "relabel"):
            raise UserError(f"clean_train must be none, drop or relabel, got '{self.clean_train}' (set --clean-train drop)")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit must be a positive number of examples, got {self.limit} (set --limit)")

    def section(self, name: str) -> Any:
        """The settings section ``name`` (its defaults when it was not set)."""
        if name not in self.sections:
            known = plugins.sections()
            if name not in known:
                raise UserError(f"no settings section '{name}'; known sections: {', '.join(known)}")
            self.sections[name] = known[name]()
        return self.sections[name]

    def approach_settings(self) -> dict[str, Any]:
        """The settings that define this approach's result, as recorded in the run."""
        return {name: to_dict(self.section(name)) for name in plugins.get_approach(self.approach).sections}


def run_config(data: dict[str, Any]) -> RunConfig:
    """A `RunConfig` from a plain mapping (YAML + overrides), with every key checked."""
    return from_dict(RunConfig, data)


def model_override(approach_name: str, model: str, backend: str | None = None) -> dict[str, Any]:
    """The settings that ``--model MODEL`` stands for with this approach, from its registry
    entry's ``model_setting`` (the chosen backend's model for LLM approaches)."""
    approach = plugins.get_approach(approach_name)
    if approach.model_setting is None:
        llm_ones = [a.name for a in plugins.approaches().values() if a.model_setting]
        raise UserError(f"--model does not apply to approach '{approach_name}'; it goes with: {', '.join(llm_ones)}")
    key = approach.model_setting
    if key == "llm":
        key = f"llm.{backend or 'api'}.model"
    nested: dict[str, Any] = {}
    node = nested
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = model
    return nested
