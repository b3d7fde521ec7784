"""The run record: one folder per evaluation, read by compare, the verdict and the dashboard.

``runs/<run_id>/record.json``      what ran (task, approach, config, data hashes, versions,
                                   git commit, seed, timestamps) and its metrics
``runs/<run_id>/predictions.jsonl`` one line per example: id, text, gold, predicted,
                                   confidence, tokens, latency, cost
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dispute_classifier import __version__
from dispute_classifier.core.errors import UserError
from evaluation.runmeta import SCHEMA, RunMeta

__all__ = ["SCHEMA", "RunMeta", "RunRecord", "read_run", "scan_runs", "write_run"]
RECORD = "record.json"
PREDICTIONS = "predictions.jsonl"
TRACKED_PACKAGES = (
    "dispute-classifier",
    "numpy",
    "scikit-learn",
    "torch",
    "transformers",
    "peft",
    "trl",
    "sentence-transformers",
    "openai",
    "bitsandbytes",
    "datasets",
    "accelerate",
)


def runs_dir(path: str | Path | None = None) -> Path:
    """``--runs-dir``, else ``$DISPUTE_CLASSIFIER_RUNS``, else ``./runs``."""
    return Path(path or os.environ.get("DISPUTE_CLASSIFIER_RUNS", "runs"))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of a resolved config (keys sorted), used to reuse finished runs."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (those not installed are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the project checkout (None outside git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def code_version() -> str:
    """The project's code version for reuse keys: the package version plus the git commit,
    with ``+dirty`` when tracked files differ from it (so a fix is never hidden behind an old
    run). Outside git only the package version is known."""
    state = git_state()
    if not state.get("commit"):
        return __version__
    return f"{__version__}+{state['commit'][:12]}{'+dirty' if state.get('dirty') else ''}"


PREDICTION_PACKAGES = (
    "numpy",
    "scikit-learn",
    "torch",
    "transformers",
    "peft",
    "sentence-transformers",
    "bitsandbytes",
    "llama-cpp-python",
)
"""Libraries whose version can change a model's predictions (part of the reuse key)."""


def reuse_key(cfg_hash: str, hardware: str | None) -> str:
    """What must match for a finished run to stand in for a new one: its settings
    (``cfg_hash``), the project's code version, the versions of the libraries that change
    predictions, and the hardware it was measured on (throughput is part of the result).
    Prices are not part of it: costs are recomputed at report time from tokens and throughput."""

    versions = package_versions(PREDICTION_PACKAGES)
    machine = {"hardware": hardware, "arch": platform.machine(), "cpus": os.cpu_count()}
    return config_hash({"config": cfg_hash, "code": code_version(), "versions": versions, "machine": machine})


@dataclass
class RunRecord:
    """A loaded run: its typed record (``meta``) and its predictions."""

    path: Path
    meta: RunMeta
    predictions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.meta.run_id

    @property
    def label(self) -> str:
        """Short display name: approach, model (last path part) and where it ran, and the
        number of examples when it is a subsample, e.g. ``rag [smollm2-135m-instruct @ llama.cpp] (n=48)``.
        Display only: runs are keyed by `run_id` (two settings of one approach can share a label)."""
        name = self.meta.approach
        model = self.meta.model
        if model and model != name:
            short = str(model).rstrip("/").rsplit("/", 1)[-1]
            where = self.meta.llm.where if self.meta.llm else None
            name += f" [{short}{' @ ' + where if where else ''}]"
        if self.meta.data.limit:
            name += f" (n={self.meta.data.n_examples})"
        return name

    @property
    def backend(self) -> str | None:
        """The LLM backend of a language-model run (api, local, ...), else None."""
        return self.meta.llm.backend if self.meta.llm else None

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta.metrics

    def correct_by_id(self) -> dict[str, bool]:
        return {p["id"]: p["predicted"] == p["gold"] for p in self.predictions}


def new_run_id(task: str, approach: str, split: str, cfg_hash: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in approach)
    return f"{stamp}-{task}-{safe}-{split}-{cfg_hash[:6]}"


def write_run(root: Path, meta: RunMeta, predictions: list[dict[str, Any]]) -> Path:
    """Write a run folder atomically enough: predictions first, the record last, so a
    folder without ``record.json`` is an unfinished run that readers skip."""
    folder = Path(root) / meta.run_id
    folder.mkdir(parents=True, exist_ok=False)
    with open(folder / PREDICTIONS, "w", encoding="utf-8") as f:
        for row in predictions:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp = folder / (RECORD + ".tmp")
    tmp.write_text(json.dumps(meta.to_dict(), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, folder / RECORD)
    return folder


def resolve_run(ref: str | Path, root: Path) -> Path:
    """A run folder from a path or a run id (a folder name under ``root``); an error names
    both places it looked."""
    path = Path(ref)
    if path.exists():
        return path
    if (Path(root) / str(ref)).is_dir():
        return Path(root) / str(ref)
    raise UserError(
        f"no run '{ref}': not a path, and no run folder of that id under {root}; list them with `dispute-classifier compare --all`"
    )


def read_run(path: str | Path, with_predictions: bool = True) -> RunRecord:
    """Read a run folder (or its record.json); errors name the file and what is wrong."""
    path = Path(path)
    folder = path.parent if path.name == RECORD else path
    record_file = folder / RECORD
    if not record_file.is_file():
        raise UserError(f"{folder}: not a run folder (no {RECORD}); run `dispute-classifier evaluate` first")
    try:
        raw = json.loads(record_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{record_file}: corrupt run record ({exc})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{record_file}: not a dispute-classifier run record (not a JSON object)")
    meta = RunMeta.from_dict(raw, where=str(record_file))
    preds: list[dict[str, Any]] = []
    if with_predictions:
        pred_file = folder / PREDICTIONS
        try:
            with open(pred_file, encoding="utf-8") as f:
                for n, line in enumerate(f, start=1):
                    try:
                        preds.append(json.loads(line))
                    except json.JSONDecodeError:
                        raise UserError(f"{pred_file}: line {n} is not JSON; the run is damaged, run it again") from None
        except FileNotFoundError:
            raise UserError(f"{pred_file}: missing; the run is damaged, run it again") from None
        if len(preds) != meta.data.n_examples:
            raise UserError(f"{pred_file}: {len(preds)} predictions, record says {meta.data.n_examples}; run it again")
    return RunRecord(folder, meta, preds)


def scan_runs(root: Path, with_predictions: bool = True) -> tuple[list[RunRecord], list[str]]:
    """All readable runs under ``root`` and one line per folder that was skipped and why."""
    runs, skipped = [], []
    if not Path(root).is_dir():
        return runs, skipped
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        try:
            runs.append(read_run(folder, with_predictions))
        except UserError as exc:
            skipped.append(str(exc))
    return runs, skipped


def find_finished_run(root: Path, key: str, data_hash: str) -> RunRecord | None:
    """The newest readable run under ``root`` with this reuse key (`reuse_key`) on this data, or None.

    A run folder is finished once its ``record.json`` exists (`write_run` writes it last), so
    a rerun may reuse it instead of evaluating the same settings on the same data again.
    """
    runs, _ = scan_runs(root, with_predictions=False)
    matches = [r for r in runs if r.meta.reuse_key == key and r.meta.data.data_hash == data_hash]
    for run in sorted(matches, key=lambda r: r.meta.finished_at, reverse=True):
        try:
            return read_run(run.path)  # with its predictions: a damaged one is not reused
        except UserError:
            continue
    return None
