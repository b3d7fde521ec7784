"""The HTTP service: ``dispute-classifier serve --model NAME[:VERSION|@ALIAS] [--shadow NAME]``.

FastAPI on uvicorn, one process:

- ``POST /v1/classify`` ``{"model": optional, "input": ["text", ...]}`` → per input the label,
  its confidence, the probabilities over every label (``probs``, in the order of the model's
  ``labels``, as vLLM's ``/classify`` answers, and ``probabilities`` by name) and ``abstain``
  (confidence below the model's threshold), with the model's name and version;
- ``GET /v1/models``, ``GET /healthz`` (alive), ``GET /readyz`` (models loaded and warmed up,
  not shutting down), ``GET /metrics`` (Prometheus), ``POST /v1/reload`` (authenticated:
  resolve the aliases again and swap the models in).

**Micro-batching.** Requests go to one queue per model; a worker takes whatever is waiting (up
to ``max_batch`` texts, waiting at most ``max_wait_ms`` for more) and predicts it in one call
on its own thread. While a batch runs the next one queues, so batches grow with load and
throughput with concurrency. The predictions of a batch are
committed to the prediction log (`evaluation.predlog`) before any of its requests is answered.

**Shadow.** With ``--shadow``, the challenger gets the same inputs after the champion has
answered, on its own queue and thread, off the request path; both are logged under the same
request ids. The response always comes from the champion.

**Errors.** Every bad request gets a 4xx JSON ``{"error": {"type", "message", "param"}}``;
a failure inside a model gets a 500 of the same shape; the service keeps running. A model
that cannot be loaded stops the command before it listens, with one line.

**Security.** It binds 127.0.0.1 by default. Any other address needs ``--api-key-env NAME``
(the environment variable holding the key); requests then need ``Authorization: Bearer KEY``
(or ``X-API-Key``) except ``/healthz`` and ``/readyz``. The key is never logged or stored.

SIGTERM and SIGINT stop it gracefully (uvicorn): no new connections, in-flight requests
finish, the shadow queue drains, the log is closed, the port is freed.
"""


import asyncio
import hmac
import ipaddress
import json
import os
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_classifier.commands.approaches import load_approaches
from dispute_classifier.commands.classifiers import model_profile, resolve_classifier, served_identity
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import load_task
from dispute_classifier.core.types import INVALID, Classifier
from evaluation.monitoring import threshold_for
from evaluation.predlog import PredictionLog, db_url, text_hash

PUBLIC_PATHS = ("/healthz", "/readyz")
"""Paths that answer without an API key (probes)."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Largest request body accepted before parsing."""


@dataclass
class ServeConfig:
    """One classification service."""

    model: str
    """The champion: an approach (tfidf, embedding, ...; fitted on the task's training file and cached),
    a registered or fine-tuned model NAME[:VERSION] or NAME@ALIAS (resolved at start and on /v1/reload)."""
    shadow: str | None = None
    """A challenger run on the same inputs off the request path and logged beside the champion; never answers."""
    task: str = "disputes"
    """Task name or path to a task YAML: the labels, and the training data approaches are fitted on."""
    host: str = "127.0.0.1"
    """Address to listen on. Anything but loopback needs --api-key-env."""
    port: int = 8000
    """Port to listen on."""
    api_key_env: str | None = None
    """Environment variable that holds the API key; requests must then send Authorization: Bearer KEY."""
    min_confidence: float | None = None
    """Abstain below this confidence (default: read from the validation coverage curve, see --target-accuracy)."""
    target_accuracy: float = 0.95
    """Without --min-confidence: abstain below the lowest confidence at which validation predictions are right this often."""
    log_db: str | None = None
    """Prediction log: a SQLite file or any SQLAlchemy URL (default: predictions.db)."""
    log_text: bool = False
    """Store the raw text of each input in the log (by default only its sha256)."""
    max_batch: int = 32
    """Most texts predicted together in one micro-batch."""
    max_wait_ms: float = 0.0
    """Longest a micro-batch waits for more requests once one is waiting. At 0 a batch is what queued
    while the previous one ran (under load that fills batches by itself); a few ms fills them at low load."""
    max_inputs: int = 64
    """Most texts accepted in one request."""
    max_chars: int | None = None
    """Longest text accepted (default: the task's max_text_chars)."""
    drain_s: float = 10.0
    """On SIGTERM/SIGINT, seconds that in-flight requests and the shadow queue get to finish."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    refit: bool = False
    """Fit an approach again instead of loading the cached fitted model."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise UserError(f"port must be between 1 and 65535, got {self.port} (set --port)")
        if self.min_confidence is not None and not 0 <= self.min_confidence <= 1:
            raise UserError(f"min confidence must be between 0 and 1, got {self.min_confidence} (set --min-confidence)")
        if not 0 < self.target_accuracy <= 1:
            raise UserError(f"target accuracy must be in (0, 1], got {self.target_accuracy} (set --target-accuracy)")
        for name in ("max_batch", "max_inputs"):
            if getattr(self, name) < 1:
                raise UserError(f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)} (set --{name.replace('_', '-')})")
        if self.max_wait_ms < 0:
            raise UserError(f"max wait must be 0 ms or more, got {self.max_wait_ms} (set --max-wait-ms)")


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(cfg: ServeConfig) -> str | None:
    """The key requests must carry (None: no key), refusing a public bind without one."""
    if cfg.api_key_env is None:
        if not is_loopback(cfg.host):
            raise UserError(f"binding {cfg.host} exposes the service beyond this machine: set --api-key-env NAME (an environment variable holding the key) or use --host 127.0.0.1")
        return None
    key = os.environ.get(cfg.api_key_env, "")
    if not key.strip():
        raise UserError(f"--api-key-env {cfg.api_key_env}: that environment variable is not set or empty; export it with the key first")
    return key


def check_port_free(host: str, port: int, flag: str = "--port") -> None:
    """Refuse to start on a port something else already listens on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); is another server running there? pick another with {flag}") from None


@dataclass
class ServedModel:
    """A loaded model and what the service says and logs about it."""

    ref: str
    """What the command line named (tfidf, name:2, name@champion)."""
    role: str
    """champion or shadow."""
    classifier: Classifier
    name: str
    """Model name in responses and the log."""
    version: str
    """Resolved version (vN for saved models, the fitted-model key for approaches)."""
    labels: list[str]
    """Every label, in the order of ``probs``."""
    threshold: float
    """Abstain below this confidence."""

    def describe(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "version": self.version, "ref": self.ref, "role": self.role,
                "labels": self.labels, "min_confidence": self.threshold}


def load_model(ref: str, role: str, cfg: ServeConfig, log: Any) -> ServedModel:
    """Resolve, load and warm up ``ref``; store its monitoring profile in the log. Any failure
    is a one-line `UserError`."""

    spec = load_task(cfg.task)
    data_dir = Path(cfg.data_dir) if cfg.data_dir else None
    try:
        resolved = resolve_classifier(ref, spec, RunConfig(task=spec.name), data_dir, cfg.refit)
        name, version = served_identity(resolved)
        profile = log.load_profile(name, version)
        if profile is None:
            print(f"[{role}] measuring {name} ({version}) on the validation and test splits for monitoring", file=sys.stderr, flush=True)
            card = _card(resolved.classifier)
            profile = card.get("profile") or model_profile(resolved, spec, data_dir, approach=ref if ref in load_approaches() else None)
            log.save_profile(name, version, profile)
        resolved.classifier.predict(["warm-up request"])  # first-call costs (lazy loads) before ready
    except UserError as exc:
        raise UserError(f"{role} model '{ref}': {exc}") from None
    except Exception as exc:  # a corrupt file, a missing library: one line, no traceback
        raise UserError(f"{role} model '{ref}' cannot be loaded: {exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0]}") from None
    if cfg.min_confidence is not None:
        threshold = cfg.min_confidence
    elif profile.get("validation"):
        threshold = threshold_for(profile["validation"]["confidence"], profile["validation"]["correct"], cfg.target_accuracy)
    else:
        threshold = 0.0
    if profile.get("threshold") != threshold:  # what the monitor reports as the abstain threshold
        log.save_profile(name, version, {**profile, "threshold": threshold})
    return ServedModel(ref, role, resolved.classifier, name, version, list(profile["labels"]), threshold)


def _card(classifier: Classifier) -> dict[str, Any]:
    card = getattr(classifier, "card", None)
    return card if isinstance(card, dict) else {}


class Metrics:
    """The service's Prometheus metrics, in their own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("classifier_requests", "HTTP requests by path and status", ["path", "status"], registry=self.registry)
        self.errors = Counter("classifier_errors", "Refused or failed requests by kind", ["kind"], registry=self.registry)
        self.latency = Histogram("classifier_request_latency_seconds", "Request latency", ["path"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.predictions = Counter("classifier_predictions", "Predictions by model, role and label", ["model", "role", "label"], registry=self.registry)
        self.abstained = Counter("classifier_abstained", "Predictions below the confidence threshold", ["model", "role"], registry=self.registry)
        self.batch_size = Histogram("classifier_batch_size", "Texts per micro-batch", ["model", "role"], registry=self.registry,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.shadow_dropped = Counter("classifier_shadow_dropped", "Shadow inputs dropped because its queue was full", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


@dataclass
class _Job:
    texts: list[str]
    request_id: str
    t0: float
    future: asyncio.Future | None
    """None for shadow jobs: nobody waits for them."""


class Batcher:
    """One model's queue and the worker that predicts and logs it in micro-batches."""

    SHADOW_QUEUE = 10_000

    def __init__(self, model: ServedModel, log: Any, metrics: Metrics, cfg: ServeConfig, shadow: "Batcher | None" = None) -> None:
        self.model = model
        self.log = log
        self.metrics = metrics
        self.cfg = cfg
        self.shadow = shadow
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"predict-{model.role}")
        self.task: asyncio.Task | None = None
        self.busy = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, texts: list[str], request_id: str) -> list[dict[str, Any]]:
        """Predict ``texts`` (as part of a micro-batch); logged before this returns."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put(_Job(texts, request_id, time.perf_counter(), future))
        return await future

    def offer(self, jobs: list[_Job]) -> None:
        """Queue copies of answered jobs for this (shadow) model without waiting for them."""
        for job in jobs:
            if self.queue.qsize() >= self.SHADOW_QUEUE:
                self.metrics.shadow_dropped.inc(len(job.texts))
                continue
            self.queue.put_nowait(_Job(job.texts, job.request_id, time.perf_counter(), None))

    async def _collect(self) -> list[_Job]:
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
        return jobs

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            self.busy = True
            try:
                results = await loop.run_in_executor(self.executor, self._predict, jobs)
            except Exception as exc:  # the model failed: these requests get a 500, the service lives on
                for job in jobs:
                    if job.future is not None and not job.future.done():
                        job.future.set_exception(exc)
                if self.model.role == "shadow":  # nobody waits for a shadow: say it here
                    self.metrics.errors.labels("shadow_failed").inc()
                    print(f"warning: shadow {self.model.name} failed on a batch of {len(jobs)} request(s): {exc.__class__.__name__}: {exc}", file=sys.stderr, flush=True)
            else:
                for job, result in zip(jobs, results):
                    if job.future is not None and not job.future.done():
                        job.future.set_result(result)
                if self.shadow is not None:
                    self.shadow.offer(jobs)
            finally:
                self.busy = False

    def _predict(self, jobs: list[_Job]) -> list[list[dict[str, Any]]]:
        """Predict every job's texts in one call and commit the log rows (worker thread)."""

        m = self.model
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
                answers.append({
                    "index": index, "label": p.label, "confidence": p.confidence, "abstain": abstain,
                    "probs": [float(probs.get(label, 0.0)) for label in m.labels], "num_classes": len(m.labels),
                    "probabilities": {label: float(probs.get(label, 0.0)) for label in m.labels},
                })
                rows.append({
                    "ts": now, "request_id": job.request_id, "input_index": index, "role": m.role, "model": m.name,
                    "version": m.version, "label": p.label, "confidence": p.confidence, "probs": json.dumps(probs),
                    "abstain": abstain, "latency_ms": latency_ms, "text_sha256": text_hash(text),
                    "text": text if self.cfg.log_text else None,
                })
                self.metrics.predictions.labels(m.name, m.role, p.label).inc()
                if abstain:
                    self.metrics.abstained.labels(m.name, m.role).inc()
            results.append(answers)
        self.log.write_predictions(rows)  # committed before anyone is answered
        self.metrics.batch_size.labels(m.name, m.role).observe(len(texts))
        return results

    async def drain(self, timeout: float) -> None:
        """Wait until the queue is empty and the worker idle (at most ``timeout`` seconds)."""
        end = time.monotonic() + timeout
        while (not self.queue.empty() or self.busy) and time.monotonic() < end:
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
        self.executor.shutdown(wait=True)


@dataclass
class ServiceState:
    """Everything the app serves: settings, models, log, metrics."""

    cfg: ServeConfig
    champion: ServedModel
    log: Any
    key: str | None = None
    shadow: ServedModel | None = None
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False
    batchers: dict[str, Batcher] = field(default_factory=dict)


class ApiError(Exception):
    """A request the service refuses: HTTP status, a kind (``type``) and what to fix."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param = status, kind, message, param


def _request_id(request: Any) -> str:
    given = request.headers.get("x-request-id", "")
    if given and len(given) <= 128 and given.isprintable():
        return given
    return uuid.uuid4().hex


def validate_inputs(payload: Any, state: ServiceState) -> list[str]:
    """The texts of a classify request, or the `ApiError` that says what is wrong."""
    cfg = state.cfg
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", 'the body must be a JSON object like {"input": ["text", ...]}')
    model = payload.get("model")
    names = {state.champion.name, state.champion.ref, f"{state.champion.name}:{state.champion.version}"}
    if model is not None and model not in names:
        raise ApiError(404, "model_not_found", f"unknown model {model!r}; this service serves {state.champion.name!r} (GET /v1/models)", "model")
    if "input" not in payload:
        raise ApiError(400, "missing_input", 'the body has no "input": send {"input": ["text", ...]}', "input")
    inputs = payload["input"]
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list):
        raise ApiError(400, "invalid_input", f'"input" must be a text or a list of texts, got {type(inputs).__name__}', "input")
    if not inputs:
        raise ApiError(400, "empty_input", '"input" is an empty list; send at least one text', "input")
    if len(inputs) > cfg.max_inputs:
        raise ApiError(413, "too_many_inputs", f'"input" has {len(inputs)} texts, over the limit of {cfg.max_inputs} per request (server --max-inputs); split it', "input")
    max_chars = cfg.max_chars or state_max_chars(state)
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise ApiError(422, "invalid_item", f"input[{i}] must be text, got {type(text).__name__}", f"input[{i}]")
        if not text.strip():
            raise ApiError(422, "empty_text", f"input[{i}] is empty or only whitespace", f"input[{i}]")
        if len(text) > max_chars:
            raise ApiError(422, "text_too_long", f"input[{i}] is {len(text):,} characters, over the limit of {max_chars:,} (server --max-chars)", f"input[{i}]")
    return inputs


def state_max_chars(state: ServiceState) -> int:
    return load_task(state.cfg.task).max_text_chars


def create_app(state: ServiceState):
    """The FastAPI application over ``state`` (models already loaded)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    max_chars = state.cfg.max_chars or state_max_chars(state)
    state.cfg.max_chars = max_chars

    @asynccontextmanager
    async def lifespan(app):
        shadow = Batcher(state.shadow, state.log, state.metrics, state.cfg) if state.shadow else None
        state.batchers = {"champion": Batcher(state.champion, state.log, state.metrics, state.cfg, shadow)}
        if shadow:
            state.batchers["shadow"] = shadow
        for b in state.batchers.values():
            b.start()
        state.ready = True
        try:
            yield
        finally:
            state.ready = False
            for b in state.batchers.values():  # uvicorn has let in-flight requests finish
                await b.drain(state.cfg.drain_s)
                await b.stop()
            state.log.close()
            print("stopped: prediction log closed", file=sys.stderr, flush=True)

    app = FastAPI(title="dispute-classifier", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def error_response(request: Request, status: int, kind: str, message: str, param: str | None = None):
        return JSONResponse({"error": {"type": kind, "message": message, "param": param, "code": status}}, status_code=status)

    async def record_error(request: Request, status: int, kind: str, message: str) -> None:
        state.metrics.errors.labels(kind).inc()
        rid = getattr(request.state, "request_id", "") or _request_id(request)
        try:
            await run_in_threadpool(state.log.write_error, time.time(), rid, status, kind, message)
        except Exception as exc:  # the log is down: say so, keep answering
            print(f"warning: could not log an error ({exc.__class__.__name__})", file=sys.stderr)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        await record_error(request, exc.status, exc.kind, exc.message)
        return error_response(request, exc.status, exc.kind, exc.message, exc.param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"no endpoint {request.method} {request.url.path}; see GET /v1/models, POST /v1/classify" if exc.status_code in (404, 405) else str(exc.detail)
        await record_error(request, exc.status_code, kind, message)
        return error_response(request, exc.status_code, kind, message)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        message = f"the model failed on this request ({exc.__class__.__name__}); the service is still running"
        print(f"error: request {getattr(request.state, 'request_id', '')}: {exc.__class__.__name__}: {exc}", file=sys.stderr, flush=True)
        await record_error(request, 500, "internal_error", message)
        return error_response(request, 500, "internal_error", message)

    class Measure:
        """Request id, API key check and request metrics around every request (plain ASGI:
        far cheaper per request than an ``http`` middleware)."""

        def __init__(self, inner) -> None:
            self.inner = inner

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            request = Request(scope)
            scope.setdefault("state", {})["request_id"] = rid = _request_id(request)
            t0 = time.perf_counter()
            path = scope["path"]
            known = path if path in ("/v1/classify", "/v1/models", "/v1/reload", "/healthz", "/readyz", "/metrics") else "other"
            status = [500]

            async def send_with_id(message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                await send(message)

            if state.key is not None and path not in PUBLIC_PATHS and not _authorized(request, state.key):
                message = "missing or wrong API key: send Authorization: Bearer <key>"
                await record_error(request, 401, "unauthorized", message)
                await error_response(request, 401, "unauthorized", message)(scope, receive, send_with_id)
            else:
                await self.inner(scope, receive, send_with_id)
            state.metrics.requests.labels(known, str(status[0])).inc()
            state.metrics.latency.labels(known).observe(time.perf_counter() - t0)

    app.add_middleware(Measure)

    @app.post("/v1/classify")
    async def classify(request: Request):
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "wrong_content_type", f"Content-Type must be application/json, got {ctype or 'none'!r}")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise ApiError(413, "body_too_large", f"the body is {len(body):,} bytes, over {MAX_BODY_BYTES:,}; send fewer texts per request")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None
        texts = validate_inputs(payload, state)
        model = state.champion  # read once: a reload swaps it between requests, never within one
        try:
            answers = await state.batchers["champion"].submit(texts, request.state.request_id)
        except Exception as exc:  # the model failed on this batch: a 500 for it, the service lives on
            print(f"error: request {request.state.request_id}: {exc.__class__.__name__}: {exc}", file=sys.stderr, flush=True)
            raise ApiError(500, "prediction_failed", f"the model failed on this request ({exc.__class__.__name__}); the service is still running") from None
        return JSONResponse({  # directly: FastAPI's generic encoder is slow on lists of floats
            "id": f"classify-{request.state.request_id}", "object": "list", "created": int(time.time()),
            "model": model.name, "version": model.version, "labels": model.labels, "min_confidence": model.threshold,
            "data": answers, "usage": {"prompt_tokens": 0, "total_tokens": 0, "inputs": len(texts)},
        })

    @app.get("/v1/models")
    async def models():
        served = [state.champion] + ([state.shadow] if state.shadow else [])
        return {"object": "list", "data": [m.describe() for m in served]}

    @app.post("/v1/reload")
    async def reload(request: Request):
        if state.key is None:
            raise ApiError(403, "reload_disabled", "reload needs an authenticated service: start it with --api-key-env NAME")
        champion = await run_in_threadpool(load_model, state.cfg.model, "champion", state.cfg, state.log)
        shadow = await run_in_threadpool(load_model, state.cfg.shadow, "shadow", state.cfg, state.log) if state.cfg.shadow else None
        state.champion = state.batchers["champion"].model = champion
        if shadow is not None:
            state.shadow = state.batchers["shadow"].model = shadow
        print(f"reloaded: champion {champion.name} ({champion.version})" + (f", shadow {shadow.name} ({shadow.version})" if shadow else ""), file=sys.stderr, flush=True)
        return await models()

    @app.get("/healthz")
    async def healthz():
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if not state.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        return {"status": "ready", "model": state.champion.name, "version": state.champion.version}

    @app.get("/metrics")
    async def metrics():
        body, ctype = state.metrics.render()
        return Response(body, media_type=ctype)

    return app


def _authorized(request: Any, key: str) -> bool:
    given = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), key.encode())


def build_state(cfg: ServeConfig) -> ServiceState:
    """Check the settings, open the log and load the models (everything before listening)."""

    key = api_key(cfg)
    log = PredictionLog(db_url(cfg.log_db))
    try:
        champion = load_model(cfg.model, "champion", cfg, log)
        shadow = load_model(cfg.shadow, "shadow", cfg, log) if cfg.shadow else None
    except BaseException:
        log.close()
        raise
    if shadow is not None and shadow.labels != champion.labels:
        log.close()
        raise UserError(f"shadow model '{cfg.shadow}' has other labels than champion '{cfg.model}'; a shadow must be trained for the same task")
    return ServiceState(cfg, champion, log, key=key, shadow=shadow)


def serve(cfg: ServeConfig) -> int:
    """Run the service in the foreground until SIGTERM or SIGINT."""
    import uvicorn
    from sqlalchemy.engine import make_url


    api_key(cfg)  # fail on a missing key before any model loads
    check_port_free(cfg.host, cfg.port)
    state = build_state(cfg)
    app = create_app(state)
    c, s = state.champion, state.shadow
    where = make_url(db_url(cfg.log_db)).render_as_string(hide_password=True)
    print(f"serving {c.name} ({c.version}) on http://{cfg.host}:{cfg.port}/v1/classify" + (f", shadow {s.name} ({s.version})" if s else "")
          + f"; abstain below confidence {c.threshold:.3f}; prediction log {where}" + ("; API key required" if state.key else ""), flush=True)
    server = uvicorn.Server(uvicorn.Config(
        app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False, lifespan="on",
        timeout_graceful_shutdown=max(1, int(cfg.drain_s)),
    ))
    server.run()
    sys.stdout.flush()
    return 0
