"""The local engine of ``dispute-classifier classify INPUT --model M --output OUT``: this process, chunk by chunk.

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

The commit, resume and budget logic is the driver's (`batch.driver`), shared with the Ray engine;
this module only reads the input in chunks and checks its rows.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from dispute_classifier.batch.driver import Chunk
from dispute_classifier.batch.job import BatchInput, ClassifyConfig, IdIndex, JobFiles, JobState, check_chunk, sha256_and_size
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.tabular import RawRow


class LocalEngine:
    """One input file, read, checked and predicted in this process, ``chunk_size`` rows at a time."""

    label = ""

    def __init__(self) -> None:
        self.input: Path | None = None
        self.end: dict[str, Any] | None = None

    def job_files(self, cfg: ClassifyConfig) -> JobFiles:
        job = JobFiles(cfg)
        if not job.input.is_file():
            raise UserError(f"input {job.input}: file not found")
        self.input = job.input
        return job

    def check_columns(self, inp: BatchInput) -> None:
        inp.open(self.input).close()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def source(self) -> dict[str, Any]:
        return {"input": str(self.input.resolve()), **sha256_and_size(self.input)}

    def plan(self, job: JobFiles, inp: BatchInput, chunk_rows: int) -> None:
        pass

    def new_state(self, fingerprint: dict[str, Any], billing: str, inp: BatchInput) -> JobState:
        return JobState(fingerprint, billing, inp.count(self.input))

    def before(self, cfg: ClassifyConfig, state: JobState, out: Any) -> None:
        pass

    def sample(self, job: JobFiles, state: JobState, inp: BatchInput, rows: int) -> list[RawRow]:
        reader = inp.open(job.input, state.input)
        try:
            return list(islice(reader, rows))
        finally:
            reader.close()

    def chunks(self, cfg: ClassifyConfig, job: JobFiles, model: Any, run_cfg: Any, state: JobState, inp: BatchInput) -> Iterator[Chunk]:
        """From the committed position to the end; duplicate ids are found through an on-disk index."""
        resuming = state.input is not None
        ids = IdIndex(job.ids_path, state.input["rows"] if resuming else 0) if inp.id_column else None
        reader = inp.open(job.input, state.input)
        done = reader.rows if resuming else 0
        try:
            rows = iter(reader)
            while chunk := list(islice(rows, cfg.chunk_size)):
                good, bad = check_chunk(chunk, inp.max_chars, ids, done)
                yield Chunk(good, bad, len(chunk), done, reader.position(), ids is not None, commit=ids.commit if ids else None)
                done += len(chunk)
            self.end = reader.position()
        finally:
            reader.close()
            if ids is not None:
                ids.close()

    def finish(self, state: JobState) -> str | None:
        if state.input is None:  # an input with no rows at all
            state.input = self.end
        return None
