"""The machinery every classify engine shares: the job's settings (`ClassifyConfig`), what to
read from the input (`BatchInput`), its files and lock, the committed `JobState`, row checks,
routing of predictions to the output, review and errors files, spend and budget, and the
summary. The one driver (`batch.driver`) runs a job with these; the engines (`batch.local_engine`,
`batch.ray_engine`) only say where the chunks come from.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from dispute_classifier.core import tabular
from dispute_classifier.core.config import merge, parse_overrides, read_yaml
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.paths import check_writable_file
from dispute_classifier.core.prices import PriceTable, money
from dispute_classifier.core.runconfig import RunConfig, run_config
from dispute_classifier.core.tabular import Column, RawRow
from dispute_classifier.core.task import TaskSpec, sha256_file
from dispute_classifier.core.types import INVALID
from dispute_classifier.resolution.approaches import load_approaches
from dispute_classifier.resolution.resolve import resolve_classifier

STATE_SCHEMA = "dispute-classifier/classify-state/1"
OUTPUT_COLUMNS = [
    Column("id", "str"),
    Column("text", "str"),
    Column("predicted", "str"),
    Column("confidence", "float"),
    Column("model", "str"),
    Column("model_version", "str"),
    Column("input_tokens", "int"),
    Column("output_tokens", "int"),
    Column("cost_usd", "float"),
]
ERROR_COLUMNS = [Column("row", "int"), Column("id", "str"), Column("kind", "str"), Column("reason", "str"), Column("text", "str")]
ERROR_KINDS = ("malformed", "not_utf8", "invalid_unicode", "missing_text", "empty_text", "too_long", "missing_id", "duplicate_id")
"""Every reason a row can go to the errors file, in the order they are checked."""
ESTIMATE_SAMPLE = 200
"""Rows read ahead to estimate the cost of an API model."""


@dataclass
class ClassifyConfig:
    """One batch classification job."""

    input: str
    """Input file: .csv (with a header row), .jsonl or .parquet, one text per row (with --engine ray
    also a folder or glob of such files: shards)."""
    output: str
    """Output file: .csv, .jsonl or .parquet. Written as OUTPUT.partial and renamed when complete."""
    model: str
    """An approach (tfidf, embedding, knn, ...; fitted on the task's training file and cached) or a
    saved model NAME[:VERSION|@ALIAS] (`dispute-classifier models list`)."""
    task: str = "disputes"
    """Task name or path to a task YAML: its labels, and the training data approaches are fitted on."""
    text_column: str | None = None
    """Input column with the text (default: the task's columns.text)."""
    id_column: str | None = None
    """Input column with a unique row id (default: the task's columns.id; '' for none, then the
    row number is the id)."""
    errors: str | None = None
    """File for rows that cannot be classified (default: OUTPUT with .errors before the ending)."""
    review: str | None = None
    """File for low-confidence rows (default: OUTPUT with .review before the ending)."""
    min_confidence: float | None = None
    """Send rows with confidence below this to the review file instead of the output. Pick it from
    the coverage_curve of an evaluate run record: accuracy at each coverage level on the test split."""
    max_cost: float | None = None
    """Budget in USD for API-billed models: refuse to start when the estimate is above it, and stop
    (resumably) before any chunk that would exceed it. Not part of the arguments a resume checks."""
    max_chars: int | None = None
    """Longest text accepted; longer rows go to the errors file (default: the task's max_text_chars)."""
    chunk_size: int = 500
    """Rows read, classified and committed together; a killed run redoes at most one chunk."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    prices: str | None = None
    """Price table YAML (default: dispute_classifier/core/prices.yaml)."""
    hardware: str | None = None
    """Hardware kind from the price table for the self-hosted compute cost in the summary."""
    restart: bool = False
    """Discard an unfinished run of the same output instead of resuming it."""
    overwrite: bool = False
    """Replace output files left by a finished run."""
    refit: bool = False
    """Fit the approach again instead of loading the cached fitted model."""
    quiet: bool = False
    """No progress bar."""
    engine: Literal["local", "ray"] = "local"
    """local: this process, chunk by chunk; ray: Ray Data actors, one model load per worker
    (pip install 'dispute-classifier[scale]'). Same files either way."""
    ray_address: str | None = None
    """--engine ray: the cluster to join: auto (the one `ray start` runs here), ray://HOST:PORT
    (Ray Client), or none to start a local one on this machine's CPUs."""
    workers: int | None = None
    """--engine ray: predictor actors, each with one CPU and one copy of the model (default: the
    cluster's CPUs)."""

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise UserError(f"unknown engine '{self.engine}'; use local or ray (set --engine)")
        if self.engine == "local" and (self.ray_address or self.workers is not None):
            raise UserError("--ray-address and --workers need --engine ray")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"workers must be at least 1, got {self.workers} (set --workers)")
        if self.chunk_size < 1:
            raise UserError(f"chunk size must be at least 1 row, got {self.chunk_size} (set --chunk-size)")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise UserError(f"min confidence must be between 0 and 1, got {self.min_confidence} (set --min-confidence)")
        if self.max_cost is not None and self.max_cost < 0:
            raise UserError(f"max cost must be 0 or more dollars, got {self.max_cost} (set --max-cost)")
        if self.max_chars is not None and self.max_chars < 1:
            raise UserError(f"max chars must be at least 1, got {self.max_chars} (set --max-chars)")


@dataclass(frozen=True)
class BatchInput:
    """What a job reads from each input row: the text column, the id column and the longest text
    accepted, resolved once from the job's flags and the task (every engine reads the same)."""

    text_column: str
    """Input column with the text."""
    id_column: str | None
    """Input column with a unique row id; None: the row number is the id."""
    max_chars: int
    """Longest text accepted; longer rows go to the errors file."""

    @classmethod
    def of(cls, cfg: ClassifyConfig, spec: TaskSpec) -> "BatchInput":
        """The flags where given, else the task's columns and ``max_text_chars``."""
        return cls(
            text_column=cfg.text_column or spec.columns.text,
            id_column=spec.columns.id if cfg.id_column is None else (cfg.id_column or None),
            max_chars=cfg.max_chars or spec.max_text_chars,
        )

    def open(self, path: Path, position: dict[str, Any] | None = None) -> Any:
        """A reader of ``path`` (CSV, JSONL or Parquet) over these columns, from ``position``."""
        return tabular.open_reader(path, self.text_column, self.id_column, position)

    def count(self, path: Path) -> int:
        """Rows in ``path``."""
        return tabular.count_rows(path, self.text_column, self.id_column)


@dataclass
class Summary:
    """What a finished (or resumed and finished) job did, over all its runs."""

    output: Path
    errors: Path
    review: Path | None
    model: str
    version: str
    billing: str
    rows: int = 0
    classified: int = 0
    review_rows: int = 0
    error_counts: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = 0.0
    """API spend, or the self-hosted compute cost at the hourly price."""
    input_tokens: int = 0
    output_tokens: int = 0
    predict_s: float = 0.0
    resumed: bool = False
    note: str | None = None
    """A last line for the engine's own facts (the Ray engine: workers and wall-clock rate)."""

    @property
    def error_rows(self) -> int:
        return sum(self.error_counts.values())


def sibling(path: Path, tag: str) -> Path:
    """``out.csv`` → ``out.<tag>.csv``."""
    return path.with_name(f"{path.stem}.{tag}{path.suffix}")


def sha256_and_size(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def check_row(row: RawRow, max_chars: int, need_id: bool) -> tuple[str, str] | None:
    """Why ``row`` cannot be classified (kind, reason), or None. Duplicates are checked later."""
    if row.problem:
        return row.problem
    for what, value in (("text", row.text), ("id", row.id)):
        where = tabular.bad_bytes(value)
        if where:
            return "not_utf8", f"{what} is not UTF-8 ({where}); re-save the file as UTF-8"
        where = tabular.lone_surrogate(value)
        if where:  # valid JSON ("\ud800"), but no text: it would crash every write of the chunk
            return "invalid_unicode", f"{what} holds a {where} (a \\u escape that is half of a pair); fix the escape in the source"
    if row.text is None:
        return "missing_text", "no text (the text column is missing or null in this row)"
    if not row.text.strip():
        return "empty_text", "text is empty or only whitespace"
    if len(row.text) > max_chars:
        return "too_long", f"text is {len(row.text):,} characters, over the limit of {max_chars:,} (--max-chars)"
    if need_id and (row.id is None or not row.id.strip()):
        return "missing_id", "no id (the id column is empty or missing in this row)"
    return None


def check_chunk(
    chunk: list[RawRow], max_chars: int, ids: "IdIndex | None", done: int
) -> tuple[list[RawRow], list[tuple[RawRow, str, str]]]:
    """Split ``chunk`` (whose first row is input row number ``done``, counting from 0) into rows
    to classify and rows for the errors file with (kind, reason), in input order. With ``ids``
    the first occurrence of every id is added to it (uncommitted); a later one is a duplicate."""
    good: list[RawRow] = []
    bad: list[tuple[RawRow, str, str]] = []
    seen: dict[str, int] = {}
    first = (
        ids.first_rows(
            [r.id for r in chunk if r.id is not None and tabular.bad_bytes(r.id) is None and tabular.lone_surrogate(r.id) is None]
        )
        if ids
        else {}
    )
    for r in chunk:
        problem = check_row(r, max_chars, ids is not None)
        if problem is None and ids is not None:
            earlier = first.get(r.id, seen.get(r.id))  # type: ignore[arg-type]
            if earlier is not None:
                problem = ("duplicate_id", f"duplicate id {r.id!r} (first at row {earlier})")
            else:
                seen[r.id] = r.row  # type: ignore[index]
        if problem:
            bad.append((r, *problem))
        else:
            good.append(r)
    if ids is not None:
        ids.add([(r.id, r.row, done + i) for i, r in enumerate(chunk) if r.id in seen and seen[r.id] == r.row])  # type: ignore[misc]
    return good, bad


def route_rows(
    good: list[RawRow],
    preds: list[Any],
    bad: list[tuple[RawRow, str, str]],
    model: Any,
    billing: str,
    min_confidence: float | None,
    row_ids: bool,
    counts: dict[str, Any],
) -> tuple[dict[str, list[dict[str, Any]]], float | None]:
    """The rows each file gets from one chunk (output, review, errors) and the chunk's API cost;
    ``counts`` is updated. ``row_ids``: the rows carry ids (else the row number is the id)."""
    results: dict[str, list[dict[str, Any]]] = {"output": [], "review": [], "errors": []}
    for r, kind, reason in bad:
        results["errors"].append(
            {"row": r.row, "id": tabular.printable(r.id), "kind": kind, "reason": reason, "text": tabular.printable(r.text, 200)}
        )
        counts["errors"][kind] = counts["errors"].get(kind, 0) + 1  # a job begun before a kind existed resumes too
    chunk_cost: float | None = 0.0
    for r, p in zip(good, preds):
        conf = None if p.confidence is None else round(float(p.confidence), 6)
        cost = p.usage.cost_usd if billing == "api" else None
        if billing == "api":
            chunk_cost = None if cost is None or chunk_cost is None else chunk_cost + cost
        row = {
            "id": r.id if row_ids else str(r.row),
            "text": r.text,
            "predicted": p.label,
            "confidence": conf,
            "model": model.name,
            "model_version": model.version,
            "input_tokens": p.usage.input_tokens,
            "output_tokens": p.usage.output_tokens,
            "cost_usd": cost,
        }
        low = min_confidence is not None and (conf is None or conf < min_confidence or p.label == INVALID)
        results["review" if low else "output"].append(row)
        counts["input_tokens"] += p.usage.input_tokens
        counts["output_tokens"] += p.usage.output_tokens
    counts["classified"] += len(results["output"])
    counts["review"] += len(results["review"])
    return results, chunk_cost


class IdIndex:
    """Ids seen so far, on disk. Each id carries the index of the input row it came from, so a
    resume can forget the ids of rows that were never committed."""

    def __init__(self, path: Path, committed_rows: int) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY, row INTEGER NOT NULL, seq INTEGER NOT NULL)")
        self.db.execute("DELETE FROM ids WHERE seq >= ?", (committed_rows,))
        self.db.commit()

    def first_rows(self, ids: list[str]) -> dict[str, int]:
        """Row number of the first occurrence of each of ``ids`` already seen."""
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            q = f"SELECT id, row FROM ids WHERE id IN ({','.join('?' * len(part))})"
            found.update(dict(self.db.execute(q, part)))
        return found

    def add(self, items: list[tuple[str, int, int]]) -> None:
        self.db.executemany("INSERT INTO ids VALUES (?, ?, ?)", items)

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()


class JobLock:
    """An exclusive lock on the job, so two runs never write the same partial files. The
    kernel releases it when the process dies, even by SIGKILL."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = open(path, "a")
        try:
            import fcntl  # POSIX only
        except ImportError:  # not POSIX: run unlocked
            return
        try:
            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.close()
            raise UserError(
                f"another classify run is writing {path.name[: -len('.partial.lock')]} (lock {path}); wait for it or stop it"
            ) from None

    def release(self) -> None:
        # Only the holder removes the file, so no stale lock is left behind by a clean exit
        # (a killed run leaves an unlocked file, which the next run simply locks again).
        self.path.unlink(missing_ok=True)
        self.f.close()


@dataclass
class JobState:
    """What a classify job has committed, as its state file holds it (JSON): enough to resume
    after a kill exactly at the last committed chunk."""

    fingerprint: dict[str, Any]
    """Input, outputs, model and settings the job was started with (a resume must match them)."""
    billing: str
    """How the model is billed: api or self-hosted."""
    total_rows: int
    """Rows in the input."""
    phase: str = "running"
    """running, or finalizing once every output is sealed and only the renames are left."""
    input: dict[str, Any] | None = None
    """The reader's position after the last committed chunk (None: nothing committed yet)."""
    writers: dict[str, Any] = field(default_factory=dict)
    """Each output writer's position after the last committed chunk."""
    counts: dict[str, Any] = field(
        default_factory=lambda: {"classified": 0, "review": 0, "errors": {k: 0 for k in ERROR_KINDS}, "input_tokens": 0, "output_tokens": 0}
    )
    """Rows classified, sent to review and per error kind; tokens used."""
    cost_usd: float | None = 0.0
    """Spend so far (None: unknown)."""
    predict_s: float = 0.0
    """Seconds spent predicting."""
    schema: str = STATE_SCHEMA
    """State-file format version."""


def write_state(path: Path, state: JobState) -> None:
    """Replace the state file atomically: a reader sees the old state or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(asdict(state), f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_state(path: Path) -> JobState | None:
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: damaged state file of an unfinished run; pass --restart to start over") from None
    if not isinstance(state, dict) or state.get("schema") != STATE_SCHEMA:
        raise UserError(f"{path}: not a classify state file this version can resume; pass --restart to start over")
    try:
        return JobState(**state)
    except TypeError:
        raise UserError(f"{path}: not a classify state file this version can resume; pass --restart to start over") from None


def changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


class JobFiles:
    """The paths of one job and the state that ties them together."""

    def __init__(self, cfg: ClassifyConfig) -> None:
        self.input = Path(cfg.input)
        self.output = Path(cfg.output)
        self.errors = Path(cfg.errors) if cfg.errors else sibling(self.output, "errors")
        self.review = (Path(cfg.review) if cfg.review else sibling(self.output, "review")) if cfg.min_confidence is not None else None
        tabular.file_format(self.input, "input")
        for what, path in self.outputs():
            tabular.file_format(path, what)
            check_writable_file(path, f"--{what}")
        paths = [self.input.resolve()] + [p.resolve() for _, p in self.outputs()]
        if len(set(paths)) != len(paths):
            raise UserError("input, output, errors and review files must all be different paths")
        base = tabular.partial_path(self.output)
        self.state_path = base.with_name(base.name + ".state")
        self.ids_path = base.with_name(base.name + ".ids.sqlite")
        self.lock_path = base.with_name(base.name + ".lock")

    def outputs(self) -> list[tuple[str, Path]]:
        out = [("output", self.output), ("errors", self.errors)]
        return out + ([("review", self.review)] if self.review else [])

    def discard(self) -> None:
        """Remove every in-progress file (state last: it is what marks a run as unfinished)."""
        for _, path in self.outputs():
            tabular.discard_partial(path)
        for extra in ("", "-journal"):
            Path(str(self.ids_path) + extra).unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)

    def publish(self) -> None:
        """Rename the sealed partial files into place, the main output last (its existence
        means every file is in place), then forget the run."""
        for _, path in reversed(self.outputs()):
            tabular.publish(path)
        for _, path in self.outputs():
            tabular.discard_partial(path)  # Parquet parts
        for extra in ("", "-journal"):
            Path(str(self.ids_path) + extra).unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


def job_summary(job: JobFiles, model: Any, state: JobState, resumed: bool) -> Summary:
    c = state.counts
    return Summary(
        output=job.output,
        errors=job.errors,
        review=job.review,
        model=model.name,
        version=model.version,
        billing=state.billing,
        rows=state.input["rows"],
        classified=c["classified"],
        review_rows=c["review"],
        error_counts={k: v for k, v in c["errors"].items() if v},
        cost_usd=state.cost_usd,
        input_tokens=c["input_tokens"],
        output_tokens=c["output_tokens"],
        predict_s=state.predict_s,
        resumed=resumed,
    )


def estimate_cost_of(clf: Any, texts: list[str]) -> float | None:
    """The classifier's own estimate of what classifying ``texts`` costs, if it offers one."""
    if not texts:
        return None
    value = clf.estimate_cost(texts)
    return None if value is None else float(value)


def approach_settings(task: str, config: str | None = None, overrides: list[str] | None = None) -> Any:
    """Approach settings (`RunConfig`) from an optional YAML file and ``--set KEY=VALUE`` overrides,
    as ``evaluate`` reads them, so a model fitted here matches the one evaluated."""

    load_approaches()

    data: dict[str, Any] = read_yaml(Path(config)) if config else {}
    data = merge(merge(data, {"task": task}), parse_overrides(overrides or []))
    return run_config(data)


def begin_job(
    cfg: ClassifyConfig, job: "JobFiles", spec: Any, run_cfg: Any, model: Any, source: dict[str, Any], inp: BatchInput
) -> tuple[JobState | None, Any, dict[str, Any]]:
    """The unfinished run's state to resume (None: start afresh), the resolved model and the job's
    fingerprint. ``source`` describes the input (paths, hashes). Refuses to overwrite a finished run's files and to resume a run whose
    arguments or input changed."""
    state = None if cfg.restart else read_state(job.state_path)
    if state is None:
        existing = [str(p) for _, p in job.outputs() if p.exists()]
        if existing and not cfg.overwrite:
            raise UserError(
                f"{', '.join(existing)} already exist(s) from a finished run; pass --overwrite to replace, or choose another --output"
            )
    if model is None:
        model = resolve_classifier(
            cfg.model, spec, run_cfg or RunConfig(task=cfg.task), Path(cfg.data_dir) if cfg.data_dir else None, cfg.refit
        )
    fingerprint = {
        **source,
        "outputs": {what: str(p.resolve()) for what, p in job.outputs()},
        "task": spec.name,
        "model": model.name,
        "model_version": model.version,
        "text_column": inp.text_column,
        "id_column": inp.id_column,
        "max_chars": inp.max_chars,
        "min_confidence": cfg.min_confidence,
        "chunk_size": cfg.chunk_size,
    }
    if state is not None:
        changes = changed_settings(state.fingerprint, fingerprint)
        if changes:
            raise UserError(
                f"{job.state_path} belongs to an unfinished run with other arguments or input ({'; '.join(changes)})."
                " Rerun with the original arguments to resume it, or pass --restart to start over"
            )
    return state, model, fingerprint


def hourly_price(cfg: ClassifyConfig, clf: Any, billing: str) -> float | None:
    """$/hour of the hardware a self-hosted model runs on: --hardware, else the classifier's
    own (a fine-tuned model records it), else the price table's default, as the evaluator does."""
    if billing == "api":
        return None

    return PriceTable.load(Path(cfg.prices) if cfg.prices else None).hourly(cfg.hardware or clf.hardware)


def check_estimate(cfg: ClassifyConfig, clf: Any, sample: list[str], left: int, spent: float, out) -> None:
    """Print what the ``left`` rows will cost, from the classifier's estimate on ``sample``, and
    refuse to start when that and the ``spent`` so far are over ``--max-cost``."""
    estimate = estimate_cost_of(clf, sample)
    if estimate is None:
        print(f"cost estimate: unknown for {left:,} rows ({clf.name} gives no estimate); measured after the first chunk", file=out)
        return
    total = estimate / len(sample) * left
    print(
        f"cost estimate: {money(total)} for {left:,} rows ({money(estimate / len(sample) * 1000)} per 1k, from {len(sample)} sampled rows)",
        file=out,
    )
    if cfg.max_cost is not None and spent + total > cfg.max_cost:
        raise UserError(
            f"estimated cost {money(spent + total)} is over --max-cost {money(cfg.max_cost)}; raise --max-cost, or classify a smaller file"
        )


def add_spend(state: JobState, elapsed: float, chunk_cost: float | None, hourly: float | None) -> None:
    """Add one chunk's prediction time and cost to ``state``: the API bill, or the compute time
    at the hourly price for a self-hosted model (None: unknown)."""
    state.predict_s += elapsed
    if state.billing == "api":
        state.cost_usd = None if chunk_cost is None or state.cost_usd is None else state.cost_usd + chunk_cost
    else:
        state.cost_usd = state.predict_s * hourly / 3600 if hourly is not None else None


def show_progress(bar: Any, rows: int, state: JobState) -> None:
    """Advance the progress bar by ``rows`` committed rows and show the spend so far."""
    bar.update(rows)
    if state.cost_usd is not None:
        bar.set_postfix_str(money(state.cost_usd), refresh=False)


def check_budget(cfg: ClassifyConfig, clf: Any, texts: list[str], state: JobState, counts: dict[str, Any], done: int) -> None:
    """Stop before a chunk whose estimated cost would take the spend over ``max_cost``."""
    spent = state.cost_usd
    if spent is None:
        raise UserError(
            "the model reported no cost for some predictions, so --max-cost cannot be enforced;"
            " add the model to the price table (--prices) or drop --max-cost"
        )
    next_cost = estimate_cost_of(clf, texts)
    classified = counts["classified"] + counts["review"]
    if next_cost is None and classified:
        next_cost = spent / classified * len(texts)  # the average so far
    if next_cost is not None and spent + next_cost > cfg.max_cost:  # type: ignore[operator]
        raise UserError(
            f"stopped after row {done:,} of {state.total_rows:,}: the next chunk (about {money(next_cost)}) would take the"
            f" spend from {money(spent)} over --max-cost {money(cfg.max_cost)}. The finished rows are kept:"
            " rerun with a higher --max-cost to continue"
        )


def format_summary(s: Summary) -> str:
    """The lines the command prints when a job is complete."""
    lines = [
        f"complete{' (resumed)' if s.resumed else ''}: {s.rows:,} rows, {s.classified:,} classified -> {s.output}",
    ]
    if s.review is not None:
        lines.append(f"needs review: {s.review_rows:,} -> {s.review}")
    detail = ", ".join(f"{k} {v:,}" for k, v in s.error_counts.items())
    lines.append(f"errors: {s.error_rows:,}{f' ({detail})' if detail else ''} -> {s.errors}")
    rate = (s.classified + s.review_rows) / s.predict_s if s.predict_s else 0.0
    if s.cost_usd is None:
        cost = "cost unknown"
    elif s.billing == "api":
        cost = f"cost {money(s.cost_usd)} (API, {s.input_tokens:,} input + {s.output_tokens:,} output tokens)"
    else:
        cost = f"compute cost {money(s.cost_usd)} (self-hosted, at the price table's hourly rate)"
    lines.append(f"model {s.model} (version {s.version}): {rate:,.0f} rows/s predicting, {cost}")
    if s.note:
        lines.append(s.note)
    return "\n".join(lines)
