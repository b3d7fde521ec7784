"""Batch classification on Ray Data: ``classify INPUT --engine ray [--ray-address A] [--workers N]``.

The same job as the local engine (`batch.local_engine`), run by the same driver (`batch.driver`: the
same files, columns, error kinds, review rule, commits, state file and summary), with the reading
and predicting spread over Ray actors:

1. **Plan** (driver). The input is a file, a folder or a glob of files (shards) of one format.
   One quick pass cuts every shard into blocks of ``chunk_size`` rows (a block never spans two
   shards) and finds duplicate ids, the one rule that needs every earlier row in order. It runs
   the local engine's own `check_chunk`, so the ids, row numbers and reasons are the same.
2. **Read and check** (Ray tasks). ``ray.data.from_items(blocks)`` → ``map_batches``: each task
   reopens its shard at the block's position with the local engine's reader (`tabular`) and
   applies `check_row`, so malformed lines and bytes that are not UTF-8 become error rows as
   they do locally (Ray's own ``read_csv``/``read_json`` would fail the whole file on them).
3. **Predict** (Ray actors). ``map_batches(BlockPredictor, compute=ActorPoolStrategy(size=N))``:
   each actor resolves the model once (the fitted-model cache, or the fine-tuned registry) and
   predicts the good rows of one block per call — exactly the texts the local engine passes to
   ``predict`` for the same chunk, so batch-dependent models (embeddings, fine-tuned) give
   identical numbers. API-billed models are not spread: their requests in flight are bounded
   by the backend's ``concurrency`` and their spend by ``--max-cost``, both on the driver, so
   they are called there, block by block, exactly as the local engine does.
4. **Commit** (driver). Blocks arrive in input order (``preserve_order``) and are committed by
   the one driver, as the local engine's chunks are. After every block the state records the number
   of finished blocks; a rerun after a kill (SIGKILL included) drops half-written data, skips
   the finished blocks and gives byte-identical files. Resume granularity: one block
   (``chunk_size`` rows of one shard); work on blocks not yet committed is redone.

Ray is imported inside functions only, and the engine needs it only when it runs.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

from dispute_classifier.batch import job as J
from dispute_classifier.batch.driver import Chunk
from dispute_classifier.batch.job import BatchInput, ClassifyConfig, JobFiles, JobState
from dispute_classifier.core import tabular
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.tabular import RawRow
from dispute_classifier.core.task import load_task
from dispute_classifier.core.types import Prediction, Usage
from dispute_classifier.resolution.resolve import resolve_classifier

INSTALL_HINT = "pip install 'dispute-classifier[scale]'"


@dataclass
class Block:
    """``rows`` consecutive input rows of one shard: the unit of work and of resuming."""

    index: int
    """Position of the block in the whole input (blocks are committed in this order)."""
    shard: int
    """Index of the shard file the block is in."""
    start: dict[str, Any]
    """Reader position of the block's first row (`tabular` reader positions)."""
    rows: int
    """Input rows in the block."""
    duplicates: dict[int, str]
    """Offset in the block → reason, for rows whose id occurred earlier in the input."""


def input_shards(spec: str) -> list[Path]:
    """The files ``spec`` names: a file, a folder (its .csv/.jsonl/.parquet files) or a glob;
    sorted by name, all of one format."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in tabular.FORMATS)
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
    formats = {tabular.file_format(f, "input") for f in files}
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


def plan_blocks(shards: list[Path], inp: BatchInput, block_rows: int, ids_path: Path) -> list[Block]:
    """Cut the shards into blocks and mark duplicate ids (the driver's one pass over the input)."""
    ids = J.IdIndex(ids_path, 0) if inp.id_column else None
    blocks: list[Block] = []
    done = 0
    try:
        for s, path in enumerate(shards):
            reader = inp.open(path)
            try:
                start = reader.position()
                rows = iter(reader)
                while chunk := list(islice(rows, block_rows)):
                    _, bad = J.check_chunk(chunk, inp.max_chars, ids, done)
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


def read_blocks(batch: dict[str, Any], shards: list[str], inp: BatchInput) -> dict[str, Any]:
    """Ray task: read and check the blocks of ``batch``; each comes back as one JSON list of
    ``[row, id, text, kind, reason]`` (JSON keeps undecodable bytes, which Arrow would refuse)."""
    out: list[str] = []
    for spec in batch["block"]:
        b = json.loads(spec)
        dups = {int(k): v for k, v in b["duplicates"].items()}
        reader = inp.open(Path(shards[b["shard"]]), b["start"])
        try:
            rows = []
            for i, r in enumerate(islice(reader, b["rows"])):
                problem = J.check_row(r, inp.max_chars, inp.id_column is not None) or (("duplicate_id", dups[i]) if i in dups else None)
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
            preds_out.append(
                json.dumps(
                    [
                        [
                            str(p.label),
                            None if p.confidence is None else float(p.confidence),
                            int(p.usage.input_tokens),
                            int(p.usage.output_tokens),
                            float(p.usage.latency_s),
                            None if p.usage.cost_usd is None else float(p.usage.cost_usd),
                        ]
                        for p in preds
                    ]
                )
            )
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
        raise UserError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start one with `ray start --head`, check --ray-address, or leave it out to run a local cluster"
        ) from None


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


class RayEngine:
    """Shards planned into blocks here, read, checked and predicted by Ray actors, committed by the
    driver in input order (see the module doc)."""

    label = " on ray"

    def __init__(self, cfg: ClassifyConfig) -> None:
        self.cfg = cfg
        self.shards: list[Path] = []
        self.blocks: list[Block] = []
        self.started_ray = False
        self.workers = 1
        self.t0 = 0.0
        self.todo_rows = 0

    def job_files(self, cfg: ClassifyConfig) -> JobFiles:
        self.shards = input_shards(cfg.input)
        job = JobFiles(replace(cfg, input=str(self.shards[0])))  # the job's paths; every shard has the first one's format
        _check_outputs_apart(cfg.input, self.shards, [p for _, p in job.outputs()])
        return job

    def check_columns(self, inp: BatchInput) -> None:
        for shard in self.shards:  # before connecting or fitting anything
            inp.open(shard).close()

    def start(self) -> None:
        self.started_ray = connect(self.cfg.ray_address)

    def stop(self) -> None:
        if self.started_ray:
            import ray

            ray.shutdown()

    def source(self) -> dict[str, Any]:
        return {"engine": "ray", "input": [{"path": str(s.resolve()), **J.sha256_and_size(s)} for s in self.shards]}

    def plan(self, job: JobFiles, inp: BatchInput, chunk_rows: int) -> None:
        self.blocks = plan_blocks(self.shards, inp, chunk_rows, job.ids_path)

    def new_state(self, fingerprint: dict[str, Any], billing: str, inp: BatchInput) -> JobState:
        return JobState(fingerprint, billing, sum(b.rows for b in self.blocks), input={"blocks": 0, "rows": 0})

    def before(self, cfg: ClassifyConfig, state: JobState, out: Any) -> None:
        finished = state.input["blocks"]
        if finished:
            print(f"resuming: {finished:,} of {len(self.blocks):,} blocks ({state.input['rows']:,} rows) already done, skipped", file=out)
        self.todo_rows = sum(b.rows for b in self.blocks[finished:])
        self.workers = 1 if state.billing == "api" else _workers(cfg)  # API models are called on the driver

    def sample(self, job: JobFiles, state: JobState, inp: BatchInput, rows: int) -> list[RawRow]:
        """The first block left (the local engine samples the same rows when one block is one chunk)."""
        todo = self.blocks[state.input["blocks"] :]
        return _block_rows(self.shards, todo[0], inp)[:rows] if todo else []

    def chunks(self, cfg: ClassifyConfig, job: JobFiles, model: Any, run_cfg: Any, state: JobState, inp: BatchInput) -> Iterator[Chunk]:
        """The blocks after the finished ones, as Ray delivers them, in order."""
        self.t0 = time.perf_counter()
        todo = self.blocks[state.input["blocks"] :]
        if not todo:
            return
        api = state.billing == "api"
        ds = self._pipeline(cfg, model, run_cfg, todo, inp, api)
        many = len(self.shards) > 1
        for item, block in zip(ds.iter_rows(), todo):
            spec = json.loads(item["block"])
            if spec["index"] != block.index:
                raise RuntimeError(f"Ray delivered block {spec['index']} where block {block.index} was due")
            good, bad = _decode_rows(item["rows"], self.shards[block.shard], many, inp.id_column is not None)
            done = state.input["rows"]
            preds = None if api else _decode_preds(item["preds"])  # API models: the driver predicts, within the budget
            yield Chunk(
                good,
                bad,
                block.rows,
                done,
                {"blocks": block.index + 1, "rows": done + block.rows},
                inp.id_column is not None or many,
                preds=preds,
                predict_s=0.0 if api else float(item["predict_s"]),
            )

    def finish(self, state: JobState) -> str | None:
        if state.input["blocks"] != len(self.blocks):
            raise RuntimeError(f"Ray delivered {state.input['blocks']} of {len(self.blocks)} blocks")
        wall = time.perf_counter() - self.t0
        where = "the driver (API model)" if state.billing == "api" else f"{self.workers} Ray worker(s)"
        rate = self.todo_rows / wall if wall else 0
        return (
            f"ray: {len(self.shards)} shard(s), {len(self.blocks)} block(s), {self.todo_rows:,} rows this run in {wall:,.1f} s"
            f" ({rate:,.0f} rows/s wall) on {where}"
        )

    def _pipeline(self, cfg: ClassifyConfig, model: Any, run_cfg: Any, blocks: list[Block], inp: BatchInput, api: bool) -> Any:
        """The Ray Data dataset of the blocks still to do: read and check, then predict (unless the
        model is API-billed: the driver predicts those). Rows come out in input order."""
        import logging

        import ray.data

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # the engine prints its own progress and summary
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # commit in input order: the files match the local engine's
        ctx.enable_progress_bars = False  # the driver's own bar counts committed rows
        ds = ray.data.from_items([{"block": json.dumps(b.__dict__)} for b in blocks], override_num_blocks=max(1, len(blocks)))
        ds = ds.map_batches(
            read_blocks,
            batch_size=1,  # same resources as the predictor, so Ray fuses the two into one actor stage
            fn_kwargs={"shards": [str(s.resolve()) for s in self.shards], "inp": inp},
        )
        if api:
            return ds
        env = {k: v for k, v in os.environ.items() if k.startswith("DISPUTE_CLASSIFIER_")}
        return ds.map_batches(
            BlockPredictor,
            batch_size=1,
            num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            fn_constructor_kwargs={
                "model": cfg.model,
                "expect": model.name,
                "task": cfg.task,
                "run_cfg": run_cfg,
                "data_dir": cfg.data_dir,
                "env": env,
            },
        )


def _workers(cfg: ClassifyConfig) -> int:
    if cfg.workers is not None:
        return cfg.workers
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _block_rows(shards: list[Path], block: Block, inp: BatchInput) -> list[RawRow]:
    """The raw rows of one block, read here (the API cost estimate samples them)."""
    reader = inp.open(shards[block.shard], block.start)
    try:
        return list(islice(reader, block.rows))
    finally:
        reader.close()
