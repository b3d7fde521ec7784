"""Batch classification of a file: ``dispute-classifier classify INPUT --model M --output OUT``.

The input (CSV, JSONL or Parquet) is read in chunks of ``chunk_size`` rows. Every row lands
in exactly one of three files, all in the format their names end in:

- ``OUT``: id, text, predicted label, confidence, model name and version, tokens, cost;
- ``OUT``'s ``.review`` sibling (only with ``min_confidence``): rows whose confidence is below
  it, whose confidence is unknown, or whose answer is not a label: the escalation queue;
- ``OUT``'s ``.errors`` sibling: rows that could not be classified (missing or empty text,
  over-long text, bytes that are not UTF-8, a missing or duplicate id, a malformed line),
  with the row number and the reason.

**Resuming.** Every file is written as ``FILE.partial``. After each chunk the files are
flushed to disk and ``OUT.partial.state`` (JSON) records how far the input has been read,
each file's length, the counts and the spend, replaced atomically. A run that is killed at
any point (SIGKILL included) and started again with the same arguments drops whatever was
written after the last recorded chunk and continues from there, so no row is lost or written
twice and the result is byte-identical to an uninterrupted run. Ids seen so far live in a
small sqlite file beside it (so duplicate checks survive a restart without holding every id
in memory). The finished files are renamed into place at the end and the command prints
``complete``; until then ``OUT`` does not exist. Starting again with other arguments is an
error that names what changed (``--restart`` discards the partial run).

**Cost.** Per-row ``cost_usd`` is the model's own per-query bill for API models (``billing =
"api"``); self-hosted models have no per-row bill (their cost is hardware time, which
differs from run to run), so the column is empty and the summary gives the compute cost at
the price table's hourly rate. For API models a cost estimate is printed before starting,
from the classifier's optional ``estimate_cost(texts) -> float | None`` on a sample (or
measured on the first chunk); ``max_cost`` refuses to start when the estimate is above it
and stops before any chunk that would take the spend above it.
"""

from __future__ import annotations

import sys
import time
from itertools import islice
from typing import Any

from dispute_classifier.commands.batchjob import (
    ERROR_COLUMNS,
    OUTPUT_COLUMNS,
    ClassifyConfig,
    IdIndex,
    JobFiles,
    JobLock,
    JobState,
    Summary,
    add_spend,
    begin_job,
    check_budget,
    check_chunk,
    hourly_price,
    job_summary,
    print_estimate,
    route_rows,
    sha256_and_size,
    show_progress,
    write_state,
)
from dispute_classifier.core import batchio
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.task import load_task


def classify_file(cfg: ClassifyConfig, run_cfg: Any = None, model: Any = None, out=None) -> Summary:
    """Run (or resume) one batch job and return its summary.

    ``run_cfg`` carries approach settings (`RunConfig`, from --config/--set); ``model`` is a
    ready `ResolvedClassifier` that skips model resolution (tests, or a caller that holds one).
    """
    if cfg.engine != "local":
        raise UserError(f"classify_file runs the local engine; run engine '{cfg.engine}' through dispute_classifier.commands.batch.classify")
    out = out or sys.stdout
    job = JobFiles(cfg)
    spec = load_task(cfg.task)
    text_column = cfg.text_column or spec.columns.text
    id_column = spec.columns.id if cfg.id_column is None else (cfg.id_column or None)
    max_chars = cfg.max_chars or spec.max_text_chars
    if not job.input.is_file():
        raise UserError(f"input {job.input}: file not found")
    # Check the columns before any fitting, so a typo fails in a second, not after a fit.
    batchio.open_reader(job.input, text_column, id_column).close()

    job.output.parent.mkdir(parents=True, exist_ok=True)
    lock = JobLock(job.lock_path)
    try:
        source = {"input": str(job.input.resolve()), **sha256_and_size(job.input)}
        state, model, fingerprint = begin_job(cfg, job, spec, run_cfg, model, source, (text_column, id_column, max_chars))
        billing = model.classifier.billing
        resumed = state is not None
        if state is not None:
            if state.phase == "finalizing":  # killed while renaming: only the renames are left
                job.publish()
                return job_summary(job, model, state, resumed)
        else:
            job.discard()
            state = JobState(fingerprint, billing, batchio.count_rows(job.input, text_column, id_column))
            write_state(job.state_path, state)
        summary = _run(cfg, job, model, state, text_column, id_column, max_chars, out)
        summary.resumed = resumed
        return summary
    finally:
        lock.release()




def _run(cfg: ClassifyConfig, job: JobFiles, model: Any, state: JobState, text_column: str, id_column: str | None, max_chars: int, out) -> Summary:
    """Classify from the committed position to the end, committing after every chunk."""
    from tqdm.auto import tqdm

    clf = model.classifier
    billing = state.billing
    hourly = hourly_price(cfg, clf, billing)
    if billing == "api":
        print_estimate(cfg, job, clf, state, text_column, id_column, max_chars, out)
    resuming = state.input is not None
    writers = {what: batchio.open_writer(path, ERROR_COLUMNS if what == "errors" else OUTPUT_COLUMNS, what, state.writers.get(what)) for what, path in job.outputs()}
    ids = IdIndex(job.ids_path, state.input["rows"] if resuming else 0) if id_column else None
    reader = batchio.open_reader(job.input, text_column, id_column, state.input)
    counts = state.counts
    done = reader.rows if resuming else 0
    bar = tqdm(total=state.total_rows, initial=done, unit="row", desc=f"classify {model.name}", disable=cfg.quiet, file=sys.stderr, dynamic_ncols=True)
    try:
        rows = iter(reader)
        while True:
            chunk = list(islice(rows, cfg.chunk_size))
            if not chunk:
                break
            good, bad = check_chunk(chunk, max_chars, ids, done)
            texts = [r.text for r in good]
            if billing == "api" and cfg.max_cost is not None and texts:
                check_budget(cfg, clf, texts, state, counts, done)
            t0 = time.perf_counter()
            preds = clf.predict(texts) if texts else []
            elapsed = time.perf_counter() - t0
            if len(preds) != len(texts):
                raise RuntimeError(f"{model.name}.predict returned {len(preds)} predictions for {len(texts)} texts")

            results, chunk_cost = route_rows(good, preds, bad, model, billing, cfg.min_confidence, ids is not None, counts)

            # Commit: data first, then the ids (added by check_chunk), then the state that says they are there.
            for what, writer in writers.items():
                writer.write(results[what])
            state.writers = {what: writer.sync() for what, writer in writers.items()}
            if ids is not None:
                ids.commit()
            done += len(chunk)
            state.input = reader.position()
            add_spend(state, elapsed, chunk_cost, hourly)
            write_state(job.state_path, state)
            show_progress(bar, len(chunk), state)
    except KeyboardInterrupt:
        print(f"\ninterrupted after row {done:,}; run the same command again to continue", file=sys.stderr)
        raise
    finally:
        bar.close()
        reader.close()
        if ids is not None:
            ids.close()

    if state.input is None:  # an input with no rows at all
        state.input = reader.position()
    for writer in writers.values():
        writer.seal()
    state.phase = "finalizing"
    write_state(job.state_path, state)
    job.publish()
    return job_summary(job, model, state, False)


