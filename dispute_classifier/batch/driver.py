"""The one driver of a batch job, whichever engine reads and predicts.

Every engine (`batch.local_engine`: this process, chunk by chunk; `batch.ray_engine`: Ray Data
actors) hands the driver chunks: rows already checked (good ones and error rows), with their
predictions when the engine made them elsewhere. The driver does the rest, the same for all:
the lock, resuming or starting the job, the writers, the commit after every chunk (data first,
then ids, then the state that says they are there), spend and budget, the interrupt message,
sealing and renaming the files into place, and the summary.
"""

from __future__ import annotations

import sys
import time
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from dispute_classifier.batch.job import (
    ERROR_COLUMNS,
    ESTIMATE_SAMPLE,
    OUTPUT_COLUMNS,
    BatchInput,
    ClassifyConfig,
    JobFiles,
    JobLock,
    JobState,
    Summary,
    add_spend,
    begin_job,
    check_budget,
    check_estimate,
    check_row,
    hourly_price,
    job_summary,
    route_rows,
    show_progress,
    write_state,
)
from dispute_classifier.core import tabular
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.tabular import RawRow
from dispute_classifier.core.task import load_task


@dataclass
class Chunk:
    """One unit of work an engine hands the driver, in input order."""

    good: list[RawRow]
    """Rows to classify."""
    bad: list[tuple[RawRow, str, str]]
    """Rows for the errors file, with (kind, reason)."""
    rows: int
    """Input rows in the chunk (good and bad)."""
    done: int
    """Input rows committed before this chunk."""
    position: dict[str, Any]
    """The job's input position once this chunk is committed (what a resume starts from)."""
    row_ids: bool
    """The rows carry ids (else the row number is the id)."""
    preds: list[Any] | None = None
    """Predictions of ``good`` made by the engine (its workers), or None: the driver predicts."""
    predict_s: float = 0.0
    """Seconds the engine spent on ``preds``."""
    commit: Callable[[], None] | None = None
    """Called after the chunk's rows are written and before the state is: the engine's own
    bookkeeping (the local engine's id index)."""


class Engine(Protocol):
    """Where a job's chunks come from."""

    label: str
    """Added to the progress bar's name (" on ray")."""

    def job_files(self, cfg: ClassifyConfig) -> JobFiles:
        """The job's paths, after checking the input exists."""

    def check_columns(self, inp: BatchInput) -> None:
        """Fail on a missing column before any model is fitted or cluster joined."""

    def start(self) -> None:
        """Acquire what the engine needs (a Ray cluster); `stop` releases it."""

    def stop(self) -> None:
        """Release what `start` acquired."""

    def source(self) -> dict[str, Any]:
        """The input as the job's fingerprint records it (paths, hashes)."""

    def plan(self, job: JobFiles, inp: BatchInput, chunk_rows: int) -> None:
        """Whatever the engine must know of the whole input before the first chunk."""

    def new_state(self, fingerprint: dict[str, Any], billing: str, inp: BatchInput) -> JobState:
        """The state of a job that starts now."""

    def before(self, cfg: ClassifyConfig, state: JobState, out: Any) -> None:
        """Say what a resume skips, and settle the engine's workers, before the first chunk."""

    def sample(self, job: JobFiles, state: JobState, inp: BatchInput, rows: int) -> list[RawRow]:
        """Up to ``rows`` raw rows after the committed ones (an API model's cost estimate reads them)."""

    def chunks(self, cfg: ClassifyConfig, job: JobFiles, model: Any, run_cfg: Any, state: JobState, inp: BatchInput) -> Iterator[Chunk]:
        """The chunks after the committed ones, in input order."""

    def finish(self, state: JobState) -> str | None:
        """Check that every chunk was delivered; a last summary line of the engine's own, or None."""


def run_job(engine: Engine, cfg: ClassifyConfig, run_cfg: Any = None, model: Any = None, out: Any = None) -> Summary:
    """Run (or resume) one batch job with ``engine`` and return its summary.

    ``run_cfg`` carries approach settings (`RunConfig`, from --config/--set); ``model`` is a ready
    `ResolvedClassifier` that skips model resolution (tests, or a caller that holds one)."""
    out = out or sys.stdout
    job = engine.job_files(cfg)
    spec = load_task(cfg.task)
    inp = BatchInput.of(cfg, spec)
    engine.check_columns(inp)  # a typo fails in a second, not after a fit
    engine.start()
    try:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        lock = JobLock(job.lock_path)
        try:
            run_cfg = run_cfg or RunConfig(task=cfg.task)  # workers resolve the model with the same settings
            # The model is fitted (and cached) here once, so workers load it instead of each fitting it.
            state, model, fingerprint = begin_job(cfg, job, spec, run_cfg, model, engine.source(), inp)
            resumed = state is not None
            if state is not None and state.phase == "finalizing":  # killed while renaming: only the renames are left
                job.publish()
                return job_summary(job, model, state, resumed)
            engine.plan(job, inp, cfg.chunk_size)
            if state is None:
                job.discard()
                state = engine.new_state(fingerprint, model.classifier.billing, inp)
                write_state(job.state_path, state)
            summary = _commit_chunks(engine, cfg, job, model, run_cfg, state, inp, out)
            summary.resumed = resumed
            return summary
        finally:
            lock.release()
    finally:
        engine.stop()


def _commit_chunks(
    engine: Engine, cfg: ClassifyConfig, job: JobFiles, model: Any, run_cfg: Any, state: JobState, inp: BatchInput, out: Any
) -> Summary:
    """Classify the chunks after the committed ones, committing after each, then publish the files."""
    from tqdm.auto import tqdm

    clf = model.classifier
    billing = state.billing
    hourly = hourly_price(cfg, clf, billing)
    engine.before(cfg, state, out)
    if billing == "api":  # estimate the rows left from a sample, and refuse a start over --max-cost
        sample = [r.text for r in engine.sample(job, state, inp, ESTIMATE_SAMPLE) if check_row(r, inp.max_chars, False) is None]
        check_estimate(cfg, clf, sample, state.total_rows - (state.input or {}).get("rows", 0), state.cost_usd, out)
    writers = {
        what: tabular.open_writer(path, ERROR_COLUMNS if what == "errors" else OUTPUT_COLUMNS, what, state.writers.get(what))
        for what, path in job.outputs()
    }
    counts = state.counts
    committed = (state.input or {}).get("rows", 0)
    bar = tqdm(
        total=state.total_rows,
        initial=committed,
        unit="row",
        desc=f"classify {model.name}{engine.label}",
        disable=cfg.quiet,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    try:
        with closing(engine.chunks(cfg, job, model, run_cfg, state, inp)) as chunks:
            for chunk in chunks:
                preds, elapsed = chunk.preds, chunk.predict_s
                if preds is None:
                    texts = [r.text for r in chunk.good]
                    if billing == "api" and cfg.max_cost is not None and texts:
                        check_budget(cfg, clf, texts, state, counts, chunk.done)
                    t0 = time.perf_counter()
                    preds = clf.predict(texts) if texts else []
                    elapsed = time.perf_counter() - t0
                    if len(preds) != len(texts):
                        raise RuntimeError(f"{model.name}.predict returned {len(preds)} predictions for {len(texts)} texts")
                results, chunk_cost = route_rows(chunk.good, preds, chunk.bad, model, billing, cfg.min_confidence, chunk.row_ids, counts)
                # Commit: data first, then the engine's bookkeeping (ids), then the state that says they are there.
                for what, writer in writers.items():
                    writer.write(results[what])
                state.writers = {what: writer.sync() for what, writer in writers.items()}
                if chunk.commit is not None:
                    chunk.commit()
                state.input = chunk.position
                committed = chunk.done + chunk.rows
                add_spend(state, elapsed, chunk_cost, hourly)
                write_state(job.state_path, state)
                show_progress(bar, chunk.rows, state)
    except KeyboardInterrupt:
        print(f"\ninterrupted after row {committed:,}; run the same command again to continue", file=sys.stderr)
        raise
    finally:
        bar.close()
    note = engine.finish(state)
    for writer in writers.values():
        writer.seal()
    state.phase = "finalizing"
    write_state(job.state_path, state)
    job.publish()
    summary = job_summary(job, model, state, False)
    summary.note = note
    return summary


def classify(cfg: ClassifyConfig, run_cfg: Any = None, model: Any = None, out: Any = None) -> Summary:
    """Run (or resume) one batch job on the engine ``cfg.engine`` names (local or ray)."""
    if cfg.engine == "ray":
        from dispute_classifier.batch.ray_engine import RayEngine

        return run_job(RayEngine(cfg), cfg, run_cfg, model, out)
    from dispute_classifier.batch.local_engine import LocalEngine

    return run_job(LocalEngine(), cfg, run_cfg, model, out)
