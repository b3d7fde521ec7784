"""Batch classification on Ray Data: ``classify INPUT --engine ray [--ray-address A] [--workers N]``.

The same job as the local engine (`dispute_classifier.commands.classify`), with the same
files, columns, error kinds, review rule, state file and summary, spread over Ray actors:

1. **Plan** (driver). The input is a file, a folder or a glob of files (shards) of one format.
   One quick pass cuts every shard into blocks of ``chunk_size`` rows (a block never spans two
   shards) and finds duplicate ids, the one rule that needs every earlier row in order. It runs
   the local engine's own `check_chunk`, so the ids, row numbers and reasons are the same.
2. **Read and check** (Ray tasks). ``ray.data.from_items(blocks)`` → ``map_batches``: each task
   reopens its shard at the block's position with the local engine's reader (`batchio`) and
   applies `check_row`, so malformed lines and bytes that are not UTF-8 become error rows as
   they do locally (Ray's own ``read_csv``/``read_json`` would fail the whole file on them).
3. **Predict** (Ray actors). ``map_batches(BlockPredictor, compute=ActorPoolStrategy(size=N))``:
   each actor resolves the model once (the fitted-model cache, or the fine-tuned registry) and
   predicts the good rows of one block per call — exactly the texts the local engine passes to
   ``predict`` for the same chunk, so batch-dependent models (embeddings, fine-tuned) give
   identical numbers. API-billed models are not spread: their requests in flight are bounded
   by the backend's ``concurrency`` and their spend by ``--max-cost``, both on the driver, so
   they are called there, block by block, exactly as the local engine does.
4. **Commit** (driver). Blocks arrive in input order (``preserve_order``) and are written with
   the local engine's writers and state file. After every block the state records the number
   of finished blocks; a rerun after a kill (SIGKILL included) drops half-written data, skips
   the finished blocks and gives byte-identical files. Resume granularity: one block
   (``chunk_size`` rows of one shard); work on blocks not yet committed is redone.

Ray is imported inside functions only, and the engine needs it only when it runs.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

from dispute_classifier.commands.batchjob import (
    ERROR_COLUMNS,
    ESTIMATE_SAMPLE,
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
    check_estimate,
    check_row,
    hourly_price,
    job_summary,
    route_rows,
    sha256_and_size,
    show_progress,
    write_state,
)
from dispute_classifier.commands.classifiers import resolve_classifier
from dispute_classifier.core import batchio
from dispute_classifier.core.batchio import RawRow
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import load_task
from dispute_classifier.core.types import Prediction, Usage

INSTALL_HINT = "pip install 'dispute-classifier[scale]'"


@dataclass
class Block:
    """``rows`` consecutive input rows of one shard: the unit of work and of resuming."""

    index: int
    """Position of the block in the whole input (blocks are committed in this order)."""
    shard: int
    """Index of the shard file the block is in."""
    start: dict[str, Any]
    """Reader position of the block's first row (`batchio` reader positions)."""
    rows: int
    """Input rows in the block."""
    duplicates: dict[int, str]
    """Offset in the block → reason, for rows whose id occurred earlier in the input."""


def input_shards(spec: str) -> list[Path]:
    """The files ``spec`` names: a file, a folder (its .csv/.jsonl/.parquet files) or a glob;
    sorted by name, all of one format."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in batchio.FORMATS)
        where = f"folder {spec}"
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(spec) if Path(f).is_file())
        where = f"glob {spec}"
    elif path.is_file():
        files, where = [path], spec
    else:
        raise UserError(f"input {spec}: no such file, folder or glob")
    if not files:
        raise UserError(f"input {where}: no input files (.csv, .jsonl or .parquet)")
    formats = {batchio.file_format(f, "input") for f in files}
    if len(formats) > 1:
        raise UserError(f"input {where}: shards must all be one format, found {', '.join(sorted(formats))}")
    return files


def _check_outputs_apart(spec: str, shards: list[Path], outputs: list[Path]) -> None:
    """Refuse output files that the input names (a rerun would read them as shards)."""
    import fnmatch

    folder = Path(spec).resolve() if Path(spec).is_dir() else None
    pattern = os.path.abspath(spec)
    for path in outputs:
        full = path.resolve()
        if full in {s.resolve() for s in shards} or full.parent == folder or fnmatch.fnmatch(str(full), pattern):
            raise UserError(f"output {path} is inside the input {spec}; write the output files elsewhere")


def plan_blocks(shards: list[Path], text_column: str, id_column: str | None, max_chars: int, block_rows: int, ids_path: Path) -> list[Block]:
    """Cut the shards into blocks and mark duplicate ids (the driver's one pass over the input)."""
    ids = IdIndex(ids_path, 0) if id_column else None
    blocks: list[Block] = []
    done = 0
    try:
        for s, path in enumerate(shards):
            reader = batchio.open_reader(path, text_column, id_column)
            try:
                start = reader.position()
                rows = iter(reader)
                while chunk := list(islice(rows, block_rows)):
                    _, bad = check_chunk(chunk, max_chars, ids, done)
                    offsets = {id(r): i for i, r in enumerate(chunk)}
                    dups = {offsets[id(r)]: reason for r, kind, reason in bad if kind == "duplicate_id"}
                    blocks.append(Block(len(blocks), s, start, len(chunk), dups))
                    done += len(chunk)
                    start = reader.position()
            finally:
                reader.close()
    finally:
        if ids is not None:
            ids.close()
        for extra in ("", "-journal"):
            Path(str(ids_path) + extra).unlink(missing_ok=True)
    return blocks


def read_blocks(batch: dict[str, Any], shards: list[str], text_column: str, id_column: str | None, max_chars: int) -> dict[str, Any]:
    """Ray task: read and check the blocks of ``batch``; each comes back as one JSON list of
    ``[row, id, text, kind, reason]`` (JSON keeps undecodable bytes, which Arrow would refuse)."""
    out: list[str] = []
    for spec in batch["block"]:
        b = json.loads(spec)
        dups = {int(k): v for k, v in b["duplicates"].items()}
        reader = batchio.open_reader(Path(shards[b["shard"]]), text_column, id_column, b["start"])
        try:
            rows = []
            for i, r in enumerate(islice(reader, b["rows"])):
                problem = check_row(r, max_chars, id_column is not None) or (("duplicate_id", dups[i]) if i in dups else None)
                rows.append([r.row, r.id, r.text, *(problem or (None, None))])
        finally:
            reader.close()
        out.append(json.dumps(rows))
    return {"block": batch["block"], "rows": out}


class BlockPredictor:
    """Ray actor: one model load, then one ``predict`` call per block on its good rows."""

    def __init__(self, model: str, expect: str, task: str, run_cfg: Any, data_dir: str | None, env: dict[str, str]) -> None:
        # The driver's settings (cache, models and data folders) hold on the worker too.
        for key in [k for k in os.environ if k.startswith("DISPUTE_CLASSIFIER_") and k not in env]:
            del os.environ[key]
        os.environ.update(env)

        spec = load_task(task)
        resolved = resolve_classifier(model, spec, run_cfg, Path(data_dir) if data_dir else None)
        if resolved.name != expect:  # e.g. a newer saved version registered since the driver resolved NAME
            raise RuntimeError(f"the worker resolved {model!r} to {resolved.name!r}, the driver to {expect!r}; run again")
        self.classifier = resolved.classifier

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        preds_out: list[str] = []
        seconds: list[float] = []
        for rows_json in batch["rows"]:
            texts = [text for _, _, text, kind, _ in json.loads(rows_json) if kind is None]
            t0 = time.perf_counter()
            preds = self.classifier.predict(texts) if texts else []
            seconds.append(time.perf_counter() - t0)
            if len(preds) != len(texts):
                raise RuntimeError(f"{self.classifier.name}.predict returned {len(preds)} predictions for {len(texts)} texts")
            preds_out.append(json.dumps([
                [str(p.label), None if p.confidence is None else float(p.confidence), int(p.usage.input_tokens), int(p.usage.output_tokens),
                 float(p.usage.latency_s), None if p.usage.cost_usd is None else float(p.usage.cost_usd)]
                for p in preds
            ]))
        return {"block": batch["block"], "rows": batch["rows"], "preds": preds_out, "predict_s": seconds}


CONNECT_TIMEOUT_S = 5.0
"""How long a HOST:PORT address may take to accept a TCP connection (Ray itself waits minutes)."""


def _check_reachable(address: str | None) -> None:
    """Fail in seconds, not after Ray's long retries, when HOST:PORT does not answer."""
    import socket

    if not address or address == "auto" or address == "local":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start one with `ray start --head`, check --ray-address, or leave it out to run a local cluster") from None


def connect(address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local one; True when this call started Ray
    (the caller then shuts it down). An already initialised Ray (a test's) is used as it is."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    _check_reachable(address)
    if ray.is_initialized():
        return False
    import logging

    try:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # ConnectionError, a gRPC error, a timeout: all say the same to the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(
            f"cannot reach the Ray cluster at {address or 'a new local cluster'} ({first}); start one with `ray start --head`,"
            " check --ray-address, or leave it out to run a local cluster"
        ) from None
    return True


def _decode_rows(rows_json: str, shard: Path, many_shards: bool, has_ids: bool) -> tuple[list[RawRow], list[tuple[RawRow, str, str]]]:
    """The rows of one block, split as `check_chunk` splits them. With several shards a row
    number alone is ambiguous: the reasons name the shard, and without an id column the id is
    ``SHARD:ROW``."""
    good: list[RawRow] = []
    bad: list[tuple[RawRow, str, str]] = []
    for row, rid, text, kind, reason in json.loads(rows_json):
        if many_shards and not has_ids:
            rid = f"{shard.name}:{row}"
        r = RawRow(row, rid, text)
        if kind is None:
            good.append(r)
        else:
            bad.append((r, kind, f"{shard.name}: {reason}" if many_shards else reason))
    return good, bad


def _decode_preds(preds_json: str) -> list[Prediction]:
    return [
        Prediction(label=label, confidence=conf, usage=Usage(input_tokens=inp, output_tokens=out, latency_s=lat, cost_usd=cost))
        for label, conf, inp, out, lat, cost in json.loads(preds_json)
    ]


def classify_file_ray(cfg: ClassifyConfig, run_cfg: Any = None, model: Any = None, out=None) -> Summary:
    """Run (or resume) one batch job on Ray Data and return its summary (see the module doc)."""

    out = out or sys.stdout
    shards = input_shards(cfg.input)
    job = JobFiles(replace(cfg, input=str(shards[0])))  # the job's paths; every shard has the first one's format
    _check_outputs_apart(cfg.input, shards, [p for _, p in job.outputs()])
    spec = load_task(cfg.task)
    text_column = cfg.text_column or spec.columns.text
    id_column = spec.columns.id if cfg.id_column is None else (cfg.id_column or None)
    max_chars = cfg.max_chars or spec.max_text_chars
    for shard in shards:  # the columns, before connecting or fitting anything
        batchio.open_reader(shard, text_column, id_column).close()
    started_ray = connect(cfg.ray_address)

    job.output.parent.mkdir(parents=True, exist_ok=True)
    lock = JobLock(job.lock_path)
    try:
        run_cfg = run_cfg or RunConfig(task=cfg.task)  # the workers resolve the model with the same settings
        source = {"engine": "ray", "input": [{"path": str(s.resolve()), **sha256_and_size(s)} for s in shards]}
        # The model is fitted (and cached) here once, so the workers load it instead of each fitting it.
        state, model, fingerprint = begin_job(cfg, job, spec, run_cfg, model, source, (text_column, id_column, max_chars))
        resumed = state is not None
        if state is not None and state.phase == "finalizing":  # killed while renaming: only the renames are left
            job.publish()
            return job_summary(job, model, state, resumed)
        blocks = plan_blocks(shards, text_column, id_column, max_chars, cfg.chunk_size, job.ids_path)
        if state is None:
            job.discard()
            state = JobState(fingerprint, model.classifier.billing, sum(b.rows for b in blocks), input={"blocks": 0, "rows": 0})
            write_state(job.state_path, state)
        summary = _run_ray(cfg, job, model, run_cfg, state, shards, blocks, text_column, id_column, max_chars, out)
        summary.resumed = resumed
        return summary
    finally:
        lock.release()
        if started_ray:
            import ray

            ray.shutdown()


def _pipeline(cfg: ClassifyConfig, model: Any, run_cfg: Any, shards: list[Path], blocks: list[Block], text_column: str, id_column: str | None, max_chars: int, workers: int):
    """The Ray Data dataset of the blocks still to do: read and check, then predict (unless the
    model is API-billed: the driver predicts those). Rows come out in input order."""
    import logging

    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the engine prints its own progress and summary
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # commit in input order: the files match the local engine's
    ctx.enable_progress_bars = False  # the engine's own bar counts committed rows
    ds = ray.data.from_items([{"block": json.dumps(b.__dict__)} for b in blocks], override_num_blocks=max(1, len(blocks)))
    ds = ds.map_batches(
        read_blocks, batch_size=1,  # same resources as the predictor, so Ray fuses the two into one actor stage
        fn_kwargs={"shards": [str(s.resolve()) for s in shards], "text_column": text_column, "id_column": id_column, "max_chars": max_chars},
    )
    if model.classifier.billing == "api":
        return ds
    env = {k: v for k, v in os.environ.items() if k.startswith("DISPUTE_CLASSIFIER_")}
    return ds.map_batches(
        BlockPredictor, batch_size=1, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=workers),
        fn_constructor_kwargs={"model": cfg.model, "expect": model.name, "task": cfg.task, "run_cfg": run_cfg, "data_dir": cfg.data_dir, "env": env},
    )


def _workers(cfg: ClassifyConfig) -> int:
    if cfg.workers is not None:
        return cfg.workers
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _run_ray(cfg: ClassifyConfig, job: JobFiles, model: Any, run_cfg: Any, state: JobState, shards: list[Path], blocks: list[Block],
             text_column: str, id_column: str | None, max_chars: int, out) -> Summary:
    """Commit the blocks after the finished ones as Ray delivers them, in order."""
    from tqdm.auto import tqdm

    clf = model.classifier
    billing = state.billing
    hourly = hourly_price(cfg, clf, billing)
    counts = state.counts
    finished = state.input["blocks"]
    if finished:
        print(f"resuming: {finished:,} of {len(blocks):,} blocks ({state.input['rows']:,} rows) already done, skipped", file=out)
    todo = blocks[finished:]
    workers = 1 if billing == "api" else _workers(cfg)
    if billing == "api" and todo:  # the local engine's estimate and budget check, on the first block left
        sample = [r.text for r in _block_rows(shards, todo[0], text_column, id_column) if check_row(r, max_chars, False) is None]
        check_estimate(cfg, clf, sample[:ESTIMATE_SAMPLE], state.total_rows - state.input["rows"], state.cost_usd, out)
    writers = {what: batchio.open_writer(path, ERROR_COLUMNS if what == "errors" else OUTPUT_COLUMNS, what, state.writers.get(what)) for what, path in job.outputs()}
    bar = tqdm(total=state.total_rows, initial=state.input["rows"], unit="row", desc=f"classify {model.name} on ray",
               disable=cfg.quiet, file=sys.stderr, dynamic_ncols=True)
    t0 = time.perf_counter()
    try:
        if todo:
            ds = _pipeline(cfg, model, run_cfg, shards, todo, text_column, id_column, max_chars, workers)
            for item, block in zip(ds.iter_rows(), todo):
                spec = json.loads(item["block"])
                if spec["index"] != block.index:
                    raise RuntimeError(f"Ray delivered block {spec['index']} where block {block.index} was due")
                good, bad = _decode_rows(item["rows"], shards[block.shard], len(shards) > 1, id_column is not None)
                if billing == "api":
                    texts = [r.text for r in good]
                    if cfg.max_cost is not None and texts:
                        check_budget(cfg, clf, texts, state, counts, state.input["rows"])
                    t1 = time.perf_counter()
                    preds = clf.predict(texts) if texts else []
                    elapsed = time.perf_counter() - t1
                else:
                    preds, elapsed = _decode_preds(item["preds"]), float(item["predict_s"])
                results, chunk_cost = route_rows(good, preds, bad, model, billing, cfg.min_confidence, id_column is not None or len(shards) > 1, counts)
                # Commit: data first, then the state that says it is there.
                for what, writer in writers.items():
                    writer.write(results[what])
                state.writers = {what: writer.sync() for what, writer in writers.items()}
                state.input = {"blocks": block.index + 1, "rows": state.input["rows"] + block.rows}
                add_spend(state, elapsed, chunk_cost, hourly)
                write_state(job.state_path, state)
                show_progress(bar, block.rows, state)
    except KeyboardInterrupt:
        print(f"\ninterrupted after row {state.input['rows']:,}; run the same command again to continue", file=sys.stderr)
        raise
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    if state.input["blocks"] != len(blocks):
        raise RuntimeError(f"Ray delivered {state.input['blocks']} of {len(blocks)} blocks")
    for writer in writers.values():
        writer.seal()
    state.phase = "finalizing"
    write_state(job.state_path, state)
    job.publish()
    summary = job_summary(job, model, state, False)
    done_rows = sum(b.rows for b in todo)
    where = "the driver (API model)" if billing == "api" else f"{workers} Ray worker(s)"
    summary.note = f"ray: {len(shards)} shard(s), {len(blocks)} block(s), {done_rows:,} rows this run in {wall:,.1f} s ({done_rows / wall if wall else 0:,.0f} rows/s wall) on {where}"
    return summary


def _block_rows(shards: list[Path], block: Block, text_column: str, id_column: str | None) -> list[RawRow]:
    """The raw rows of one block, read here (the API cost estimate samples them)."""
    reader = batchio.open_reader(shards[block.shard], text_column, id_column, block.start)
    try:
        return list(islice(reader, block.rows))
    finally:
        reader.close()
