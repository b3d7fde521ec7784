"""The typed run record: what `record.json` says, parsed once.

The evaluator builds a `RunMeta` and writes `RunMeta.to_dict()`; every reader (compare, the
decision, the dashboard, monitoring) takes a `RunMeta` from `evaluation.runs.read_run`. The
approach-specific provenance a classifier reports (``run_info``) stays in ``extra`` for display;
what the decision reads from it (the LLM endpoint, the training facts, a sweep's trial) is
parsed here into `LlmInfo` and `TrainingInfo`, so nothing downstream digs through dicts.

Schema 2 is written now; schema 1 records (written before this module) are read by
`RunMeta.from_dict`, which fills what they lack (category from the registry, no de-duplicated
metrics, no overlap share).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from dispute_classifier.core import plugins
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.types import Billing

SCHEMA = "dispute-classifier/run/2"
READABLE_SCHEMAS = ("dispute-classifier/run/1", SCHEMA)


class Category(str, Enum):
    """What kind of approach produced a run (the registry's categories)."""

    CLASSICAL = "classical"
    PROMPTED = "prompted"
    RAG = "rag"
    FINETUNED = "finetuned"


@dataclass(frozen=True)
class LlmInfo:
    """Where a language-model run's answers came from (``extra.llm``)."""

    backend: str | None = None
    """api or local (the registered backend)."""
    model: str | None = None
    """The model id asked for ("server default" when the endpoint chose)."""
    served_model: str | None = None
    """The model name the endpoint answered with."""
    where: str | None = None
    """Where it ran, for display (e.g. llama.cpp, api.openai.com)."""
    usage_reported: bool | None = None
    """Whether the endpoint returned token usage for every request (None: not recorded)."""
    project_started: bool = False
    """Whether this project started the server (the local llama.cpp), so it ran on this machine."""


@dataclass(frozen=True)
class TrainingInfo:
    """What a fine-tuned run's model card says about its training (from ``extra``)."""

    model_dir: str | None = None
    cost_usd: float | None = None
    """One-off training cost recorded by the training run (None: unknown)."""
    wall_s: float | None = None
    """Training wall time in seconds."""
    hardware: str | None = None
    """Price-table hardware the model was trained on."""
    sweep_study: str | None = None
    sweep_trial: int | None = None
    sweep_final: bool = False
    """A sweep's final model (refit on train+validation)."""


@dataclass(frozen=True)
class DataInfo:
    """Which rows a run scored and what it was fitted on."""

    data_hash: str | None
    n_examples: int
    limit: int | None = None
    fit_split: str | None = None
    n_fit: int = 0
    overlap: str | None = None
    """Set when the run was scored despite overlapping the fitted rows (--allow-overlap): why."""
    overlap_share: float | None = None
    """Share of scored texts (normalised) that also occur in the fitted rows (None: not measured)."""
    overlap_ids: tuple[str, ...] = ()
    """Ids of the scored examples whose text also occurs in the fitted rows."""
    near_duplicate_ids: tuple[str, ...] = ()
    """Ids of the scored examples with a same-label near-duplicate among the fitted rows (left out of ``metrics.dedup``)."""
    sha256: Any = None
    license: str | None = None
    citation: str | None = None


@dataclass(frozen=True)
class RunMeta:
    """One run record (``record.json``) as typed fields."""

    run_id: str
    task: str
    split: str
    approach: str
    category: Category
    model: str
    billing: Billing
    data: DataInfo
    metrics: dict[str, Any]
    """Every number `evaluation.evaluate.compute_metrics` reports (accuracy, intervals, latency, …)."""
    task_file: str | None = None
    hardware: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str | None = None
    reuse_key: str | None = None
    code_version: str | None = None
    seed: int = 0
    git: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    python: str | None = None
    started_at: str = ""
    finished_at: str = ""
    timing: dict[str, float] = field(default_factory=dict)
    prices: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    """The classifier's own provenance (prompt samples, endpoint, model card facts), for display."""
    schema: str = SCHEMA

    @property
    def is_api(self) -> bool:
        """Billed per token by an API provider (not a self-hosted server)."""
        return self.billing is Billing.API

    @property
    def llm(self) -> LlmInfo | None:
        raw = self.extra.get("llm")
        if not isinstance(raw, dict):
            return None
        return LlmInfo(
            backend=raw.get("backend"),
            model=raw.get("model"),
            served_model=raw.get("served_model"),
            where=raw.get("where"),
            usage_reported=None if "usage_missing" not in raw else raw["usage_missing"] == 0,
            project_started=bool(raw.get("project_started_server")),
        )

    @property
    def training(self) -> TrainingInfo | None:
        """The training facts of a fine-tuned run (None for other categories)."""
        if self.category is not Category.FINETUNED:
            return None
        e = self.extra
        trial = e.get("sweep_trial")
        return TrainingInfo(
            model_dir=e.get("model_dir"),
            cost_usd=None if e.get("training_cost_usd") is None else float(e["training_cost_usd"]),
            wall_s=None if e.get("train_wall_s") is None else float(e["train_wall_s"]),
            hardware=e.get("hardware"),
            sweep_study=None if e.get("sweep_study") is None else str(e["sweep_study"]),
            sweep_trial=None if trial is None else int(trial),
            sweep_final=bool(e.get("sweep_final")),
        )

    @property
    def model_key(self) -> tuple[str, str]:
        """Approach and model: the same model evaluated on different splits shares it."""
        return self.approach, self.model

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``record.json``."""
        out = asdict(self)
        out["category"], out["billing"] = self.category.value, self.billing.value
        out["data"]["overlap_ids"] = list(self.data.overlap_ids)
        out["data"]["near_duplicate_ids"] = list(self.data.near_duplicate_ids)
        schema = out.pop("schema")
        return {"schema": schema, **out}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "record") -> "RunMeta":
        """Parse a record of any readable schema; errors name ``where`` and what is wrong."""
        schema = raw.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise UserError(
                f"{where}: not a dispute-classifier run record (schema {schema!r}, expected one of {', '.join(READABLE_SCHEMAS)})"
            )
        for key in ("run_id", "task", "split", "approach", "metrics", "data"):
            if key not in raw:
                raise UserError(f"{where}: run record lacks '{key}'")
        try:
            category = Category(raw.get("category") or plugins.category_of(raw))
            billing = Billing(raw.get("billing") or Billing.SELF_HOSTED.value)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        d = raw["data"]
        data = DataInfo(
            data_hash=d.get("data_hash"),
            n_examples=int(d.get("n_examples", 0)),
            limit=d.get("limit"),
            fit_split=d.get("fit_split"),
            n_fit=int(d.get("n_fit") or 0),
            overlap=d.get("overlap"),
            overlap_share=d.get("overlap_share"),
            overlap_ids=tuple(d.get("overlap_ids") or ()),
            near_duplicate_ids=tuple(d.get("near_duplicate_ids") or ()),
            sha256=d.get("sha256"),
            license=d.get("license"),
            citation=d.get("citation"),
        )
        known = {f for f in cls.__dataclass_fields__} - {"category", "billing", "data", "schema"}
        rest = {k: raw[k] for k in known if k in raw and raw[k] is not None}
        rest.setdefault("model", raw["approach"])
        return cls(category=category, billing=billing, data=data, schema=SCHEMA, **rest)
