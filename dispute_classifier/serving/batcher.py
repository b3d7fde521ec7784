"""Micro-batching: one queue per role, and a worker that predicts and logs what waits in it.

Requests go to the queue as `Job` objects; a worker takes whatever is waiting (up to
``max_batch`` texts, waiting at most ``max_wait_ms`` for more) and predicts it in one call on
its own thread. While a batch runs the next one queues, so batches grow with load and
throughput with concurrency. The predictions of a batch are committed to the prediction log
before any of its requests is answered.

Each job carries the `ServedVersion` its request read: a batch is split where the version
changes (a reload happened between two requests), so every answer comes from the version its
response names. When a batch fails, each of its jobs is tried alone, so one bad input fails its
own request only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from dispute_classifier.core.types import INVALID
from dispute_classifier.serving.settings import ServeConfig
from dispute_classifier.serving.state import ServedVersion
from dispute_classifier.serving.telemetry import Metrics
from evaluation.predlog import text_hash


class QueueFull(Exception):
    """The model's queue holds ``--max-queue`` requests already."""


@dataclass
class Job:
    """One request's texts on their way through a micro-batch."""

    version: ServedVersion
    """The version that must predict these texts (read once by the request)."""
    texts: list[str]
    request_id: str
    """The server's id of the request: the log key."""
    client_request_id: str | None
    """The client's X-Request-Id, kept beside it (never a key: two clients may pick the same)."""
    t0: float
    future: asyncio.Future | None
    """Resolved with the answers; None for shadow jobs (nobody waits for them)."""

    def wanted(self) -> bool:
        """Whether anyone still waits for this job (a timed-out request cancels its future)."""
        return self.future is None or not self.future.done()


class Batcher:
    """One role's queue and the worker that predicts and logs it in micro-batches."""

    SHADOW_QUEUE = 10_000
    """Most shadow jobs waiting; more are dropped (and counted): the shadow never slows answers."""

    def __init__(
        self,
        role: str,
        log: Any,
        metrics: Metrics,
        cfg: ServeConfig,
        shadow: "Batcher | None" = None,
        current: Callable[[], ServedVersion | None] | None = None,
    ) -> None:
        self.role = role
        self.log = log
        self.metrics = metrics
        self.cfg = cfg
        self.shadow = shadow
        """The shadow batcher that gets a copy of every answered job."""
        self.current = current
        """For a shadow batcher: the version it serves now (read when a copy is offered)."""
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{role}")
        self.task: asyncio.Task | None = None
        self.busy = False

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(
        self, version: ServedVersion, texts: list[str], request_id: str, client_request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Predict ``texts`` with ``version`` (as part of a micro-batch); logged before this
        returns. Raises `QueueFull` when ``--max-queue`` requests wait already."""
        if self.queue.qsize() >= self.cfg.max_queue:
            raise QueueFull()
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(Job(version, texts, request_id, client_request_id, time.perf_counter(), future))
        self.metrics.queue_depth.labels(self.role).set(self.queue.qsize())
        return await future

    def offer(self, jobs: list[Job]) -> None:
        """Queue copies of answered jobs for this (shadow) batcher without waiting for them."""
        version = self.current() if self.current else None
        if version is None:
            return
        for job in jobs:
            if self.queue.qsize() >= self.SHADOW_QUEUE:
                self.metrics.shadow_dropped.inc(len(job.texts))
                continue
            self.queue.put_nowait(Job(version, job.texts, job.request_id, job.client_request_id, time.perf_counter(), None))

    async def _collect(self) -> list[Job]:
        jobs = [await self.queue.get()]
        size = len(jobs[0].texts)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.max_wait_ms / 1000
        while size < self.cfg.max_batch:
            if self.queue.empty():
                wait = deadline - loop.time()
                if wait <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), wait)
                except asyncio.TimeoutError:
                    break
            else:
                job = self.queue.get_nowait()
            jobs.append(job)
            size += len(job.texts)
        self.metrics.queue_depth.labels(self.role).set(self.queue.qsize())
        return jobs

    async def _run(self) -> None:
        while True:
            jobs = [job for job in await self._collect() if job.wanted()]
            self.busy = True
            try:
                for group in _by_version(jobs):
                    await self._settle(group)
            finally:
                self.busy = False

    async def _settle(self, jobs: list[Job]) -> None:
        """Predict and log ``jobs`` (one version) and answer them; on a failure, each job alone."""
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self.executor, self._predict, jobs)
        except Exception as exc:
            if len(jobs) > 1:  # find the job that fails: the others must not pay for it
                for job in jobs:
                    await self._settle([job])
                return
            self._fail(jobs[0], exc)
            return
        for job, result in zip(jobs, results):
            if job.future is not None and not job.future.done():
                job.future.set_result(result)
        if self.shadow is not None:
            self.shadow.offer(jobs)

    def _fail(self, job: Job, exc: Exception) -> None:
        if job.future is not None:
            if not job.future.done():
                job.future.set_exception(exc)
            return
        self.metrics.errors.labels("shadow_failed").inc()  # nobody waits for a shadow: say it here
        print(
            f"warning: shadow {job.version.name} failed on request {job.request_id}: {exc.__class__.__name__}: {exc}",
            file=sys.stderr,
            flush=True,
        )

    def _predict(self, jobs: list[Job]) -> list[list[dict[str, Any]]]:
        """Predict every job's texts in one call and commit the log rows (worker thread)."""
        m = jobs[0].version
        texts = [t for job in jobs for t in job.texts]
        preds = m.classifier.predict(texts)
        if len(preds) != len(texts):
            raise RuntimeError(f"model {m.name} returned {len(preds)} predictions for {len(texts)} texts")
        done, now = time.perf_counter(), time.time()
        rows, results = [], []
        it = iter(preds)
        for job in jobs:
            latency_ms = (done - job.t0) * 1000
            answers = []
            for index, text in enumerate(job.texts):
                p = next(it)
                probs = p.probs or ({p.label: p.confidence} if p.confidence is not None and p.label != INVALID else {})
                abstain = p.label == INVALID or p.confidence is None or p.confidence < m.threshold
                by_label = {label: float(probs.get(label, 0.0)) for label in m.labels}
                answers.append(
                    {
                        "index": index,
                        "label": p.label,
                        "confidence": p.confidence,
                        "abstain": abstain,
                        "probs": list(by_label.values()),
                        "num_classes": len(m.labels),
                        "probabilities": by_label,
                    }
                )
                rows.append(
                    {
                        "ts": now,
                        "request_id": job.request_id,
                        "client_request_id": job.client_request_id,
                        "input_index": index,
                        "role": m.role,
                        "model": m.name,
                        "version": m.version,
                        "label": p.label,
                        "confidence": p.confidence,
                        "probs": json.dumps(probs),
                        "abstain": abstain,
                        "latency_ms": latency_ms,
                        "text_sha256": text_hash(text),
                        "text": text if self.cfg.log_text else None,
                    }
                )
            results.append(answers)
        self.log.write_predictions(rows)  # committed before anyone is answered
        for row in rows:  # counted once committed: a failed batch is retried job by job
            self.metrics.predictions.labels(m.name, m.role, row["label"]).inc()
            if row["abstain"]:
                self.metrics.abstained.labels(m.name, m.role).inc()
        self.metrics.batch_size.labels(m.name, m.role).observe(len(texts))
        return results

    async def drain(self, timeout: float) -> None:
        """Wait until the queue is empty and the worker idle (at most ``timeout`` seconds)."""
        end = time.monotonic() + timeout
        while (not self.queue.empty() or self.busy) and time.monotonic() < end:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Cancel the worker and wait for its thread."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        self.executor.shutdown(wait=True)


def _by_version(jobs: list[Job]) -> list[list[Job]]:
    """Consecutive runs of jobs with the same version, in queue order."""
    groups: list[list[Job]] = []
    for job in jobs:
        if groups and groups[-1][0].version is job.version:
            groups[-1].append(job)
        else:
            groups.append([job])
    return groups
