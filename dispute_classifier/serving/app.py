"""The routes, the ASGI edge in front of them, and the uvicorn runner.

- ``POST /v1/classify`` ``{"model": optional, "input": ["text", ...]}`` → per input the label,
  its confidence, the probabilities over every label (``probs``, in the order of the model's
  ``labels``, as vLLM's ``/classify`` answers, and ``probabilities`` by name) and ``abstain``,
  with the name and version of the model that predicted them (`schemas.ClassifyResponse`);
- ``GET /v1/models``, ``GET /healthz`` (alive), ``GET /readyz`` (models loaded and warmed up, not
  shutting down), ``GET /metrics`` (Prometheus), ``GET /openapi.json``, ``POST /v1/reload``
  (authenticated: resolve the aliases again and swap the versions in; a version that cannot be
  loaded answers 409 and the old one keeps serving).

**The edge.** Every request gets a server-made id (the log key; the client's ``X-Request-Id`` is
kept beside it). Without the API key a request is refused before its body is read; refusals
(401) and unknown paths are counted in the metrics and printed at most once per
`Throttle.every_s` seconds per kind, never written to the database, so nobody can fill it from
outside. A body is refused (413) by its ``Content-Length`` and, while it streams, by a running
count, before the excess is read; JSON nested deeper than `config.MAX_JSON_DEPTH` is refused
(400) before it is parsed; a text that cannot be encoded as UTF-8 (a lone surrogate) is refused
(422) before it reaches a batch. A full queue answers 503 with ``Retry-After``; a request that
gets no prediction within ``--request-timeout-s`` answers 504.
"""

# no `from __future__ import annotations`: FastAPI reads the handlers' annotations at runtime,
# and ``Request`` is imported inside create_app (no work at import time).
import asyncio
import contextlib
import itertools
import json
import re
import signal
import sys
import threading
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from dispute_classifier.core.errors import UserError
from dispute_classifier.serving.auth import PUBLIC_PATHS, authorized
from dispute_classifier.serving.batcher import Batcher, QueueFull
from dispute_classifier.serving.settings import MAX_JSON_DEPTH
from dispute_classifier.serving.state import ServedVersion, ServiceState

KNOWN_PATHS = frozenset({"/v1/classify", "/v1/models", "/v1/reload", "/healthz", "/readyz", "/metrics", "/openapi.json"})
"""Paths counted under their own name in the metrics (anything else is ``other``)."""
MAX_LOGGED_MESSAGE = 500
"""Longest error message written to the log's errors table."""
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
"""A JSON string (skipped whole) or a bracket: enough to measure nesting without parsing."""


class ApiError(Exception):
    """A request the service refuses: HTTP status, a kind (``type``) and what to fix."""

    def __init__(self, status: int, kind: str, message: str, param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.param, self.headers = status, kind, message, param, headers


class Throttle:
    """At most one stderr line per kind every ``every_s`` seconds, with the count of the lines
    it held back: a flood of refused requests cannot flood the terminal or the disk."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def say(self, kind: str, line: str) -> bool:
        """Print ``line`` unless a line of ``kind`` was printed less than ``every_s`` ago."""
        now = time.monotonic()
        if now - self.last.get(kind, -self.every_s) < self.every_s:
            self.held[kind] = self.held.get(kind, 0) + 1
            return False
        held = self.held.pop(kind, 0)
        self.last[kind] = now
        print(line + (f" (and {held} more like it since the last line)" if held else ""), file=sys.stderr, flush=True)
        return True


def json_depth_ok(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether no array or object in ``body`` is nested deeper than ``limit`` (strings skipped,
    so brackets inside texts do not count); stops at the first level too deep."""
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return False
        elif token in (b"]", b"}"):
            depth -= 1
    return True


def parse_json(body: bytes) -> Any:
    """The parsed body, or the `ApiError` (400) that says why it is not acceptable JSON."""
    if not json_depth_ok(body):
        raise ApiError(
            400, "json_too_deep", f"the body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels; a classify request needs 2"
        )
    try:
        return json.loads(body)
    except RecursionError:  # unreachable after the depth check; kept so no body can crash a handler
        raise ApiError(400, "json_too_deep", "the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc})") from None


async def read_body(request: Any, limit: int) -> bytes:
    """The request body, refusing (413) one over ``limit`` bytes: by ``Content-Length`` before
    reading anything, then by a running count while it streams, so the excess is never read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "invalid_request", f"Content-Length must be a number of bytes, got {declared[:40]!r}")
        if int(declared) > limit:
            raise ApiError(
                413,
                "body_too_large",
                f"the body is {int(declared):,} bytes, over the limit of {limit:,} (server --max-body-bytes); send fewer texts per request",
            )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413,
                "body_too_large",
                f"the body is over the limit of {limit:,} bytes (server --max-body-bytes); send fewer texts per request",
            )
        chunks.append(chunk)
    return b"".join(chunks)


def validate_inputs(payload: Any, state: ServiceState, champion: ServedVersion, max_chars: int) -> list[str]:
    """The texts of a classify request, or the `ApiError` that says what is wrong."""
    cfg = state.cfg
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_request", 'the body must be a JSON object like {"input": ["text", ...]}')
    model = payload.get("model")
    names = {champion.name, champion.ref, f"{champion.name}:{champion.version}"}
    if model is not None and model not in names:
        raise ApiError(
            404, "model_not_found", f"unknown model {str(model)[:200]!r}; this service serves {champion.name!r} (GET /v1/models)", "model"
        )
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
        raise ApiError(
            413,
            "too_many_inputs",
            f'"input" has {len(inputs)} texts, over the limit of {cfg.max_inputs} per request (server --max-inputs); split it',
            "input",
        )
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise ApiError(422, "invalid_item", f"input[{i}] must be text, got {type(text).__name__}", f"input[{i}]")
        if not text.strip():
            raise ApiError(422, "empty_text", f"input[{i}] is empty or only whitespace", f"input[{i}]")
        if len(text) > max_chars:
            raise ApiError(
                422,
                "text_too_long",
                f"input[{i}] is {len(text):,} characters, over the limit of {max_chars:,} (server --max-chars)",
                f"input[{i}]",
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800"): valid JSON, not valid text
            raise ApiError(
                422,
                "invalid_text",
                f"input[{i}] is not valid Unicode: {exc.reason} at character {exc.start} ({text[exc.start]!r}); send UTF-8 text",
                f"input[{i}]",
            ) from None
    return inputs


def alias_version(ref: str) -> str | None:
    """The version a ``NAME@ALIAS`` ref names in the registry now (None for other refs, or when
    the registry cannot say)."""
    if "@" not in ref:
        return None
    from finetune import model_store

    name, _, alias = ref.partition("@")
    try:
        number = model_store.aliases(name).get(alias)
    except Exception:  # an unreadable registry: the served version still answers
        return None
    return f"v{number}" if number is not None else None


def describe(version: ServedVersion) -> dict[str, Any]:
    """A served version for ``/v1/models``, with what its alias says now."""
    says = alias_version(version.ref)
    return {**version.describe(), "alias_version": says, "in_sync": says is None or says == version.version}


def create_app(state: ServiceState):
    """The FastAPI application over ``state`` (models already loaded)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from dispute_classifier.serving import schemas

    if state.cfg.max_chars is None:
        from dispute_classifier.core.task import load_task

        state.cfg.max_chars = load_task(state.cfg.task).max_text_chars
    max_chars = state.cfg.max_chars
    throttle = Throttle()
    request_ids = _id_maker()
    reload_lock = asyncio.Lock()

    @asynccontextmanager
    async def lifespan(app):
        shadow = Batcher("shadow", state.log, state.metrics, state.cfg, current=lambda: state.shadow) if state.shadow else None
        state.batchers = {"champion": Batcher("champion", state.log, state.metrics, state.cfg, shadow)}
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
            state.drained = all(b.queue.empty() and not b.busy for b in state.batchers.values())
            for b in state.batchers.values():
                await b.stop()
            state.log.close()
            print(
                "stopped: prediction log closed" + ("" if state.drained else f" (queue not empty after --drain-s {state.cfg.drain_s:g})"),
                file=sys.stderr,
                flush=True,
            )

    # FastAPI's native OpenTelemetry looks the global providers up on every request even when
    # none is configured; the service has its own Prometheus metrics, so it is switched off
    app = FastAPI(
        title="dispute-classifier",
        summary="Payment-dispute classification service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )

    def error_response(status: int, kind: str, message: str, param: str | None = None, headers: dict[str, str] | None = None):
        return JSONResponse(
            {"error": {"type": kind, "message": message, "param": param, "code": status}}, status_code=status, headers=headers
        )

    async def record_error(request: Request, status: int, kind: str, message: str) -> None:
        """Count an error and write it to the log (only for requests that passed the key check)."""
        state.metrics.errors.labels(kind).inc()
        rid = request.scope.get("state", {}).get("request_id", "")
        try:
            await run_in_threadpool(state.log.write_error, time.time(), rid, status, kind, message[:MAX_LOGGED_MESSAGE])
        except Exception as exc:  # the log is down: say so, keep answering
            throttle.say("log_error", f"warning: could not log an error ({exc.__class__.__name__})")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        await record_error(request, exc.status, exc.kind, exc.message)
        return error_response(exc.status, exc.kind, exc.message, exc.param, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # unknown paths are anyone's to send: counted and throttled, never written to the database
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        shown = request.url.path[:100]
        message = (
            f"no endpoint {request.method} {shown}; see GET /v1/models, POST /v1/classify"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        state.metrics.errors.labels(kind).inc()
        throttle.say(kind, f"refused: {exc.status_code} {request.method} {shown}")
        return error_response(exc.status_code, kind, message)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        message = f"the service failed on this request ({exc.__class__.__name__}); it is still running"
        print(
            f"error: request {request.scope.get('state', {}).get('request_id', '')}: {exc.__class__.__name__}: {exc}",
            file=sys.stderr,
            flush=True,
        )
        await record_error(request, 500, "internal_error", message)
        return error_response(500, "internal_error", message)

    class Edge:
        """Request id, API key check and request metrics around every request (plain ASGI:
        far cheaper per request than an ``http`` middleware)."""

        def __init__(self, inner) -> None:
            self.inner = inner

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            rid = next(request_ids)
            given = _header(scope, b"x-request-id")
            scope.setdefault("state", {}).update(
                request_id=rid, client_request_id=given if given and len(given) <= 128 and given.isprintable() else None
            )
            t0 = time.perf_counter()
            path = scope["path"]
            known = path if path in KNOWN_PATHS else "other"
            status = [500]

            async def send_with_id(message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
                await send(message)

            if state.key is not None and path not in PUBLIC_PATHS and not authorized(_Headers(scope), state.key):
                state.metrics.errors.labels("unauthorized").inc()
                throttle.say(
                    "unauthorized",
                    f"refused: 401 {scope.get('method', '')} {path[:100]} from {(scope.get('client') or ('?',))[0]} (missing or wrong API key)",
                )
                await error_response(401, "unauthorized", "missing or wrong API key: send Authorization: Bearer <key>")(
                    scope, receive, send_with_id
                )
            elif path == "/v1/classify" and scope.get("method") == "POST":
                await classify_directly(scope, receive, send_with_id)
            else:
                await self.inner(scope, receive, send_with_id)
            state.metrics.requests.labels(known, str(status[0])).inc()
            state.metrics.latency.labels(known).observe(time.perf_counter() - t0)

    app.add_middleware(Edge)

    async def classify_directly(scope, receive, send) -> None:
        """``POST /v1/classify`` answered by the edge itself, with the route's own function and
        error handlers: FastAPI's routing, dependency solving and middleware stack cost more of
        the event loop per request than the route does (profiled at concurrency 32 with tfidf),
        and the event loop is the ceiling of a served classical model."""
        request = Request(scope, receive)
        try:
            response = await classify(request)
        except ApiError as exc:
            response = await api_error(request, exc)
        except Exception as exc:  # as FastAPI's handler would: a 500 of the same shape
            response = await internal_error(request, exc)
        await response(scope, receive, send)

    @app.post(
        "/v1/classify",
        response_model=schemas.ClassifyResponse,
        responses=schemas.ERRORS,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": schemas.ClassifyRequest.model_json_schema()}}}
        },
    )
    async def classify(request: Request):
        """Classify one or more texts with the champion; the answer names the version that predicted it."""
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "wrong_content_type", f"Content-Type must be application/json, got {ctype[:100] or 'none'!r}")
        payload = parse_json(await read_body(request, state.cfg.max_body_bytes))
        champion = state.champion  # read once: this object travels with the job, so the answer names it
        texts = validate_inputs(payload, state, champion, max_chars)
        ids = request.scope["state"]
        try:
            answers = await asyncio.wait_for(
                state.batchers["champion"].submit(champion, texts, ids["request_id"], ids["client_request_id"]), state.cfg.request_timeout_s
            )
        except QueueFull:
            raise ApiError(
                503,
                "queue_full",
                f"{state.cfg.max_queue} requests are waiting already (server --max-queue); retry in a second",
                headers={"Retry-After": "1"},
            ) from None
        except asyncio.TimeoutError:
            raise ApiError(
                504,
                "timeout",
                f"no prediction within {state.cfg.request_timeout_s:g} s (server --request-timeout-s); retry later or send fewer texts",
            ) from None
        except Exception as exc:  # the model failed on this request alone (its batch was retried without it)
            print(f"error: request {ids['request_id']}: {exc.__class__.__name__}: {exc}", file=sys.stderr, flush=True)
            raise ApiError(
                500, "prediction_failed", f"the model failed on this request ({exc.__class__.__name__}); the service is still running"
            ) from None
        return JSONResponse(
            {  # directly: FastAPI's generic encoder is slow on lists of floats
                "id": f"classify-{ids['request_id']}",
                "object": "list",
                "created": int(time.time()),
                "model": champion.name,
                "version": champion.version,
                "labels": list(champion.labels),
                "min_confidence": champion.threshold,
                "data": answers,
                "usage": {"prompt_tokens": 0, "total_tokens": 0, "inputs": len(texts)},
            }
        )

    def model_list() -> dict[str, Any]:
        return {"object": "list", "data": [describe(m) for m in state.served()], "last_reload_error": state.last_reload_error}

    @app.get("/v1/models", response_model=schemas.ModelList)
    async def models():
        """The versions served now, and for each alias the version it names in the registry."""
        return JSONResponse(await run_in_threadpool(model_list))

    @app.post(
        "/v1/reload",
        response_model=schemas.ModelList,
        responses={
            403: {"model": schemas.ErrorResponse},
            409: schemas.ERRORS[500] | {"description": "The new version cannot be loaded; the old one keeps serving."},
            422: {"model": schemas.ErrorResponse, "description": "The new shadow's labels differ from the champion's."},
        },
    )
    async def reload():
        """Resolve the aliases again and swap the new versions in (the old ones serve until then)."""
        if state.key is None:
            raise ApiError(403, "reload_disabled", "reload needs an authenticated service: start it with --api-key-env NAME")
        if state.loader is None:
            raise ApiError(403, "reload_disabled", "this service was started without a model loader; restart it to change models")
        cfg = state.cfg
        async with reload_lock:  # two reloads at once would load twice and race to swap
            serving = ", ".join(f"{m.role} {m.name} ({m.version})" for m in state.served())
            try:
                champion = await run_in_threadpool(state.loader, cfg.model, "champion")
                shadow = await run_in_threadpool(state.loader, cfg.shadow, "shadow") if cfg.shadow else None
            except Exception as exc:  # a UserError says why; anything else by its class
                reason = str(exc) if isinstance(exc, UserError) else f"{exc.__class__.__name__}: {exc}"
                state.last_reload_error = reason
                print(f"reload failed, still serving {serving}: {reason}", file=sys.stderr, flush=True)
                raise ApiError(409, "reload_failed", f"{reason}; still serving {serving}") from None
            if shadow is not None and shadow.labels != champion.labels:
                state.last_reload_error = reason = f"shadow model '{cfg.shadow}' now has other labels than champion '{cfg.model}'"
                raise ApiError(422, "reload_failed", f"{reason}; still serving {serving}")
            state.swap(champion, shadow)
        print(
            f"reloaded: champion {champion.name} ({champion.version})" + (f", shadow {shadow.name} ({shadow.version})" if shadow else ""),
            file=sys.stderr,
            flush=True,
        )
        return JSONResponse(await run_in_threadpool(model_list))

    @app.get("/healthz")
    async def healthz():
        """Alive (the process answers)."""
        return {"status": "alive"}

    @app.get("/readyz", response_model=schemas.Ready, responses={503: {"description": "Loading or shutting down."}})
    async def readyz():
        """Ready to answer: what is served, what the alias says, and the latest reload failure."""
        if not state.ready:
            return JSONResponse({"status": "not ready"}, status_code=503)
        c = await run_in_threadpool(describe, state.champion)
        return {
            "status": "ready",
            "model": c["id"],
            "version": c["version"],
            "alias_version": c["alias_version"],
            "in_sync": c["in_sync"],
            "last_reload_error": state.last_reload_error,
        }

    @app.get("/metrics")
    async def metrics():
        """Prometheus metrics."""
        body, ctype = state.metrics.render()
        return Response(body, media_type=ctype)

    return app


def _id_maker():
    """Request ids: 16 random hex digits drawn once per process, then a counter. Unique across
    replicas and restarts (as a uuid4 is) without a system call per request."""
    prefix = uuid.uuid4().hex[:16]
    return (f"{prefix}{n:016x}" for n in itertools.count())


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class _Headers:
    """The two auth headers of an ASGI scope, without building a whole Request."""

    def __init__(self, scope: dict) -> None:
        self.scope = scope

    def get(self, name: str, default: str = "") -> str:
        value = _header(self.scope, name.encode())
        return default if value is None else value


def head_timeout_protocol(base: type) -> type:
    """``base`` (uvicorn's HTTP protocol) that closes a connection whose request head has not
    arrived within its keep-alive timeout: uvicorn times out idle connections only between
    requests, so one that connects and sends half a header would be held forever."""

    class HeadTimeout(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport) -> None:  # noqa: ANN001
            super().connection_made(transport)
            self._arm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def _arm_head_timer(self) -> None:
            cycle = self.cycle
            self.loop.call_later(self.timeout_keep_alive, self._head_expired, cycle)

        def _head_expired(self, cycle: Any) -> None:
            if self.cycle is cycle and not self.transport.is_closing():  # no new request head since armed
                self.transport.close()

    return HeadTimeout


def run(state: ServiceState) -> int:
    """Serve ``state`` with uvicorn in the foreground until SIGTERM or SIGINT; 0 after a clean
    drain (every queued request answered), 1 when ``--drain-s`` ran out first."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol
    from uvicorn.server import HANDLED_SIGNALS

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self):
            # uvicorn re-raises the signal after its graceful shutdown, so the process exits 143
            # (SIGTERM) or 130 (SIGINT) and a supervisor counts each normal stop as a failure
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    cfg = state.cfg
    state.drained = True
    server = Server(
        uvicorn.Config(
            create_app(state),
            host=cfg.host,
            port=cfg.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, int(cfg.drain_s)),
            timeout_keep_alive=cfg.keep_alive_s,
            http=head_timeout_protocol(AutoHTTPProtocol),
        )
    )
    server.run()
    sys.stdout.flush()
    return 0 if state.drained else 1
