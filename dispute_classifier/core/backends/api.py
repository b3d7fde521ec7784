"""OpenAI-compatible API backend: OpenAI itself, vLLM, Ollama or a llama.cpp server, all
through the ``openai`` package's ``chat.completions.create``.

Where the endpoint comes from (first match wins):
1. ``llm.api.base_url`` or ``$OPENAI_BASE_URL``: that server (a key from ``$OPENAI_API_KEY``
   is sent when set; local servers usually need none);
2. ``$OPENAI_API_KEY`` alone: OpenAI, with ``llm.api.model`` (default gpt-4o-mini);
3. neither: a llama.cpp server the project starts on 127.0.0.1 for the run, serving the
   SmolLM2 GGUF (`dispute_classifier.core.backends.llama_server`).

Each request asks, where the server supports it, for output restricted to the label set
and for token log-probabilities (the answer's probability becomes the confidence). The
restriction takes the first form the server accepts: OpenAI's JSON schema
``{"label": <enum of labels>}`` (OpenAI, vLLM, Ollama); a llama.cpp grammar that allows
exactly the label strings (llama-cpp-python's server rejects ``json_schema``, and its JSON
grammar is 2 to 50 times slower than this one on CPU); the ``json_object`` + ``schema``
form; else free text that is parsed. Answers outside the label set are `INVALID`, raw
text kept.

Reliability: retries with exponential backoff and full jitter on 429, 408/409, 5xx,
timeouts and connection errors (the client's own retries are off so these are counted and
bounded here); a request timeout; a thread pool bounding requests in flight; an on-disk
response cache keyed by endpoint, model, messages and parameters (never the key), so a
rerun is free and gives the same answers. The API key is read from the environment when
the backend starts and is kept only on the client: it never reaches logs, caches, errors
or run records.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
import random
import sqlite3
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from dispute_classifier.core.backends.llama_server import LlamaServer, ServerConfig
from dispute_classifier.core.errors import UserError
from dispute_classifier.core.prices import PriceTable
from dispute_classifier.core.prompts import parse_answer
from dispute_classifier.core.task import cache_dir, sha256_file
from dispute_classifier.core.types import INVALID, Prediction, Usage

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
BASE_URL_ENV = "OPENAI_BASE_URL"
NO_KEY = "no-key"
"""Sent as the bearer token to servers that need none (the client insists on one)."""
RETRY_STATUS = {408, 409, 429}
"""HTTP statuses worth retrying besides 5xx: timeout, conflict, rate limit."""


@dataclass
class ApiConfig:
    """An OpenAI-compatible chat-completions endpoint."""

    model: str | None = None
    """Model name (default: gpt-4o-mini on OpenAI, the server's first model on another base URL, the GGUF's alias on the project-started server)."""
    base_url: str | None = None
    """Endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI when $OPENAI_API_KEY is set, else a llama.cpp server started for the run)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key; the key itself is never stored anywhere."""
    timeout_s: float = 60.0
    """Seconds one request may take before it counts as timed out (and is retried)."""
    max_retries: int = 5
    """Retries after a 429, 5xx, timeout or connection error before the run stops with an error."""
    retry_base_delay_s: float = 1.0
    """First backoff delay; it doubles every retry (capped by retry_max_delay_s), with full jitter."""
    retry_max_delay_s: float = 30.0
    """Longest single backoff delay, also the cap on a server's Retry-After."""
    concurrency: int = 4
    """Requests in flight at once."""
    temperature: float = 0.0
    """Sampling temperature; 0 asks for the most likely answer."""
    max_tokens: int = 48
    """Answer budget in tokens (a JSON answer with the longest label needs about 20)."""
    structured: Literal["auto", "json_schema", "choice", "grammar", "json_object", "none"] = "auto"
    """How answers are restricted to the labels: json_schema (OpenAI, vLLM, Ollama), choice (vLLM's structured_outputs choice: the bare label, fewest tokens; never tried by auto, as other servers ignore it), grammar (llama.cpp GBNF), json_object (JSON schema, llama-cpp-python form); none: free text, parsed; auto: the first form the server accepts."""
    logprobs: bool = True
    """Ask for token log-probabilities (the confidence); dropped if the server rejects them."""
    cache: bool | None = None
    """On-disk response cache (default: on for remote APIs; off for the project-started server, whose measured throughput is its cost)."""
    billing: Literal["auto", "api", "self-hosted"] = "auto"
    """api: cost from tokens and the price table; self-hosted: hardware $/h over throughput; auto: self-hosted for the project-started server, else api."""
    server: ServerConfig = field(default_factory=ServerConfig)
    """The llama.cpp server started when no endpoint is configured."""

    def __post_init__(self) -> None:
        if self.base_url and urllib.parse.urlsplit(self.base_url).password:
            raise UserError(
                f"llm.api.base_url contains a password; remove it and put the key in ${self.api_key_env}"
                " (run records and caches store the base URL)"
            )
        if self.concurrency < 1:
            raise UserError(f"llm.api.concurrency must be at least 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise UserError(f"llm.api.max_retries must be 0 or more, got {self.max_retries}")


def redact_url(url: str) -> str:
    """``url`` without user info and with query values hidden: safe for logs and records."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    query = "&".join(f"{k}=***" for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))


@dataclass
class Endpoint:
    """Where requests go. ``base_url`` is None for a managed server until it has started."""

    base_url: str | None
    model: str | None
    managed: bool
    api_key: str = field(default=NO_KEY, repr=False)
    """Only ever handed to the client; excluded from repr so it cannot leak into messages."""


def resolve_endpoint(cfg: ApiConfig, environ: Mapping[str, str] | None = None) -> Endpoint:
    """Choose the endpoint from the config and the environment (see the module docstring)."""
    env = os.environ if environ is None else environ
    key = env.get(cfg.api_key_env) or None
    base_url = cfg.base_url or env.get(BASE_URL_ENV) or None
    if base_url:
        if not key and urllib.parse.urlsplit(base_url).hostname == "api.openai.com":
            raise UserError(f"{redact_url(base_url)} needs an API key: set ${cfg.api_key_env}")
        return Endpoint(base_url.rstrip("/"), cfg.model, managed=False, api_key=key or NO_KEY)
    if key:
        return Endpoint(OPENAI_URL, cfg.model or DEFAULT_OPENAI_MODEL, managed=False, api_key=key)
    if cfg.model and cfg.model != cfg.server.alias:
        raise UserError(
            f"model '{cfg.model}' needs an API: set ${cfg.api_key_env} (OpenAI) or ${BASE_URL_ENV}"
            f" (another server); without either, leave llm.api.model unset to use the local llama.cpp server"
        )
    return Endpoint(None, cfg.server.alias, managed=True)


def cache_key(endpoint_id: str, model: str, request: Mapping[str, Any]) -> str:
    """sha256 of everything that determines an answer: endpoint, model, messages, parameters."""
    blob = json.dumps({"endpoint": endpoint_id, "model": model, "request": request}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """sqlite store of raw responses (``chat.completions`` JSON) and their measured latency."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else cache_dir() / "api-cache" / "responses.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS response (key TEXT PRIMARY KEY, body TEXT, latency_s REAL, created REAL)")
        self._db.commit()

    def get(self, key: str) -> tuple[dict[str, Any], float] | None:
        with self._lock:
            row = self._db.execute("SELECT body, latency_s FROM response WHERE key = ?", (key,)).fetchone()
        return (json.loads(row[0]), float(row[1])) if row else None

    def put(self, key: str, body: dict[str, Any], latency_s: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO response VALUES (?, ?, ?, ?)", (key, json.dumps(body), latency_s, time.time()))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


STRUCTURED_FORMS = ("json_schema", "grammar", "json_object")
"""Ways to restrict answers to the labels, in the order ``structured: auto`` tries them."""


def label_grammar(labels: Sequence[str]) -> str:
    """A llama.cpp GBNF grammar whose only sentences are the labels themselves."""
    return "root ::= " + " | ".join(json.dumps(label) for label in labels)


def answer_format(labels: Sequence[str], form: str) -> dict[str, Any]:
    """``response_format`` asking for ``{"label": <one of labels>}`` (a JSON schema enum), in
    OpenAI's ``json_schema`` form or llama-cpp-python's ``json_object`` + ``schema`` form."""
    schema = {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }
    if form == "json_object":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "dispute_category", "strict": True, "schema": schema}}


def answer_confidence(logprobs: Mapping[str, Any] | None) -> float | None:
    """Probability of the whole answer: exp of the sum of its tokens' log-probabilities."""
    tokens = (logprobs or {}).get("content") or []
    values = [t.get("logprob") for t in tokens if isinstance(t, Mapping)]
    if not values or any(v is None for v in values):
        return None
    return float(min(1.0, math.exp(sum(values))))


FORM_WORDS = {
    "json_schema": "JSON-schema answers",
    "grammar": "a grammar that allows only the labels",
    "json_object": "JSON answers with a schema",
    "none": "free-text answers, parsed (answers outside the labels count as invalid)",
}
"""Each way of restricting answers to the labels, in words for the console."""
NEGOTIATION_LOG = "api-negotiation.log"
"""File under ``<cache>/logs/`` that keeps the servers' own words when a request form is rejected."""
_NOTED: set[tuple[str, str]] = set()
"""(server, features) pairs already explained in this process: each stage of an experiment
builds its own backend, and the same fallback is worth one line, not one per stage."""


def _in_words(features: Mapping[str, Any]) -> str:
    return FORM_WORDS.get(features["structured"], features["structured"]) + (
        "" if features["logprobs"] else ", without token probabilities"
    )


def log_rejections(where: str, endpoint_id: str, errors: Sequence[str], features: Mapping[str, Any]) -> Path | None:
    """Append the server's rejection texts to the negotiation log; returns its path (None
    when the cache folder cannot be written: the console note is enough then)."""
    path = cache_dir() / "logs" / NEGOTIATION_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            log.write(f"{stamp} {where} ({endpoint_id}): using {dict(features)} after {len(errors)} rejected form(s)\n")
            log.writelines(f"  rejected: {error}\n" for error in errors)
    except OSError:
        return None
    return path


class _Rejected(Exception):
    """The server refused a request's parameters (HTTP 400/422): try simpler ones."""


class ApiBackend:
    """Classifies chat prompts through an OpenAI-compatible endpoint (see module docstring).

    ``start`` resolves the endpoint (starting the llama.cpp server when it is the default),
    ``close`` stops what ``start`` started. ``classify`` starts it when needed.
    """

    def __init__(
        self,
        config: ApiConfig | None = None,
        prices: Any = None,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config or ApiConfig()
        self._prices = prices
        self._environ = environ
        self._sleep = sleep
        self._rng = random.Random()
        self.endpoint: Endpoint | None = None
        self.server: LlamaServer | None = None
        self._client = None
        self._cache: ResponseCache | None = None
        self._endpoint_id = ""
        self._features: dict[str, bool] | None = None
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "cache_hits": 0, "usage_missing": 0}
        self.served_model: str | None = None
        self._server_info: dict[str, Any] | None = None
        self._warned_price = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ApiBackend":
        if self._client is not None:
            return self
        from openai import OpenAI  # heavy: imported when an API approach runs

        endpoint = resolve_endpoint(self.config, self._environ)
        if endpoint.managed:
            self.server = LlamaServer(self.config.server).start()
            endpoint.base_url = self.server.base_url
            self._server_info = self._describe_server(self.server)
            self._endpoint_id = self._server_info["cache_identity"]
        else:
            self._endpoint_id = redact_url(endpoint.base_url or "")
        self.endpoint = endpoint
        self._client = OpenAI(base_url=endpoint.base_url, api_key=endpoint.api_key, max_retries=0, timeout=self.config.timeout_s)
        if endpoint.model is None:
            endpoint.model = self._first_served_model()
        use_cache = self.config.cache if self.config.cache is not None else not endpoint.managed
        self._cache = ResponseCache() if use_cache else None
        if self.billing == "api" and self.prices.api_price(endpoint.model) is None and not self._warned_price:
            self._warned_price = True
            print(
                f"warning: model '{endpoint.model}' has no entry in the price table {self.prices.path};"
                " its cost is reported as unknown (add it under 'api' to price it)",
                file=sys.stderr,
            )
        return self

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> "ApiBackend":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def prices(self):
        if self._prices is None:
            self._prices = PriceTable.load()
        return self._prices

    @property
    def billing(self) -> str:
        if self.config.billing != "auto":
            return self.config.billing
        managed = self.endpoint.managed if self.endpoint else resolve_endpoint(self.config, self._environ).managed
        return "self-hosted" if managed else "api"

    def estimate_cost(self, prompts: Sequence[list[dict[str, str]]], labels: Sequence[str]) -> float | None:
        """What sending ``prompts`` would cost, before sending any: input tokens counted as
        characters / 4 (plus a few per message), the answer as the longest label's tokens plus
        the JSON around it, priced from the table. None when not billed per token or unpriced."""
        if self.billing != "api":
            return None
        model = self.model_id
        answer = max((len(label) for label in labels), default=8) // 4 + 8
        total = 0.0
        for messages in prompts:
            tokens_in = sum(len(m.get("content", "")) // 4 + 4 for m in messages) + 3
            cost = self.prices.token_cost(model, tokens_in, answer)
            if cost is None:
                return None
            total += cost
        return total

    @property
    def model_id(self) -> str:
        """The plain model id the endpoint is asked for (the price table's key)."""
        ep = self.endpoint or resolve_endpoint(self.config, self._environ)
        return ep.model or (self.config.server.alias if ep.managed else "server default")

    @property
    def where(self) -> str:
        """Where the model runs, in a word or two: llama.cpp, OpenAI, or the endpoint's host."""
        ep = self.endpoint or resolve_endpoint(self.config, self._environ)
        if ep.managed:
            where = "llama.cpp"
        elif (ep.base_url or "").rstrip("/") == OPENAI_URL:
            where = "OpenAI"
        else:
            where = urllib.parse.urlsplit(ep.base_url or "").netloc.rsplit("@", 1)[-1]
        return where + (", free" if self.config.structured == "none" else "")

    @property
    def model_label(self) -> str:
        """Model and where it runs, for display."""
        return f"{self.model_id} ({self.where})"

    @staticmethod
    def _describe_server(server: LlamaServer) -> dict[str, Any]:
        """Provenance of the project-started server, and a stable cache identity for it: the
        port changes every run, the engine version and the GGUF's bytes do not."""

        c = server.config
        engine = f"llama-cpp-python {importlib.metadata.version('llama-cpp-python')}"
        gguf_sha = sha256_file(server.model_path)
        template = c.chat_format or "template from the GGUF"
        return {
            "engine": engine,
            "gguf": str(server.model_path),
            "gguf_sha256": gguf_sha,
            "n_ctx": c.n_ctx,
            "chat_format": template,
            "cache_identity": f"{engine}/{gguf_sha}/ctx{c.n_ctx}/{template}",
        }

    def _first_served_model(self) -> str:
        models = self._with_retries(lambda: self._client.models.list())
        ids = [m.id for m in getattr(models, "data", [])]
        if not ids:
            raise UserError(f"{self._endpoint_id} serves no models; set llm.api.model")
        if len(ids) > 1:
            print(f"warning: {self._endpoint_id} serves {len(ids)} models; using '{ids[0]}' (set llm.api.model)", file=sys.stderr)
        return ids[0]

    def describe(self) -> dict[str, Any]:
        """Provenance for the run record: endpoint (no credentials), model, server, features."""
        ep = self.endpoint
        info: dict[str, Any] = {
            "backend": "api",
            "where": self.where,
            "endpoint": redact_url(ep.base_url) if ep and ep.base_url else None,
            "model": self.model_id,
            "served_model": self.served_model,
            "project_started_server": bool(ep and ep.managed),
            "structured_output": None if self._features is None else self._features["structured"],
            "logprobs": None if self._features is None else self._features["logprobs"],
            "cache": self._cache is not None,
            **self.stats,
        }
        if self._server_info is not None:
            info["server"] = {k: v for k, v in self._server_info.items() if k != "cache_identity"}
        return info

    # ------------------------------------------------------------------ requests
    def _scrub(self, text: str) -> str:
        key = self.endpoint.api_key if self.endpoint else None
        return text.replace(key, "***") if key and key != NO_KEY else text

    def _with_retries(self, call: Callable[[], Any]) -> Any:
        """``call()`` with exponential backoff and full jitter on transient failures."""
        import openai

        cfg = self.config
        started = time.monotonic()
        for attempt in range(cfg.max_retries + 1):
            retry_after = None
            try:
                with self._lock:
                    self.stats["requests"] += 1
                return call()
            except openai.APITimeoutError:
                why = f"timed out after {cfg.timeout_s:g} s"
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                why = f"connection failed ({type(cause).__name__}: {self._scrub(str(cause))[:120]})"
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status in (401, 403):
                    env = self.config.api_key_env
                    has_key = bool(self.endpoint and self.endpoint.api_key != NO_KEY)
                    raise UserError(
                        f"{self._endpoint_id} refused the request (HTTP {status}): "
                        + (f"the key in ${env} is not accepted; set a valid one" if has_key else f"it needs an API key; set ${env}")
                    ) from None
                if status in (400, 422) or (status >= 500 and "validation error" in str(exc.message).lower()):
                    # llama-cpp-python answers a request that fails validation with 500, not 422
                    raise _Rejected(self._scrub(str(exc.message))[:300]) from None
                if status == 404:
                    model = self.endpoint.model if self.endpoint else self.config.model
                    raise UserError(
                        f"{self._endpoint_id} answered 404 for model '{model}': set llm.api.model to a model it serves"
                        " (or check llm.api.base_url ends in /v1)"
                    ) from None
                if status not in RETRY_STATUS and status < 500:
                    raise UserError(f"{self._endpoint_id} answered HTTP {status}: {self._scrub(str(exc.message))[:300]}") from None
                why = f"HTTP {status}"
                retry_after = _retry_after(exc.response.headers)
            if attempt == cfg.max_retries:
                raise UserError(
                    f"no answer from {self._endpoint_id} after {attempt + 1} attempts in {time.monotonic() - started:.1f} s"
                    f" (last: {why}); check that the server is running and reachable, or change"
                    f" ${BASE_URL_ENV} / llm.api.base_url, llm.api.timeout_s, llm.api.max_retries"
                )
            with self._lock:
                self.stats["retries"] += 1
            delay = min(cfg.retry_max_delay_s, cfg.retry_base_delay_s * 2**attempt)
            delay = self._rng.uniform(0, delay)  # full jitter: clients that failed together spread out
            if retry_after is not None:
                delay = max(delay, min(retry_after, cfg.retry_max_delay_s))
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _request(self, messages: list[dict[str, str]], labels: Sequence[str], features: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        req: dict[str, Any] = {
            "messages": messages,
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
        }
        if features["structured"] == "grammar":  # a llama.cpp extension of the request body
            req["extra_body"] = {"grammar": label_grammar(labels)}
        elif features["structured"] == "choice":  # vLLM's extension (it replaced guided_choice in 0.12)
            req["extra_body"] = {"structured_outputs": {"choice": list(labels)}}
        elif features["structured"] != "none":
            req["response_format"] = answer_format(labels, features["structured"])
        if features["logprobs"]:
            req["logprobs"] = True
        return req

    def _ask(self, request: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """One answer (cached or fresh) and its latency; the cached latency is the one
        measured when the answer was fetched, so reruns report the same latencies."""
        assert self.endpoint is not None and self.endpoint.model is not None
        key = cache_key(self._endpoint_id, self.endpoint.model, request)
        if self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                with self._lock:
                    self.stats["cache_hits"] += 1
                return hit
        model = self.endpoint.model

        def call() -> tuple[dict[str, Any], float]:
            t0 = time.perf_counter()
            resp = self._client.chat.completions.create(model=model, **request)
            return resp.model_dump(mode="json"), time.perf_counter() - t0

        body, latency = self._with_retries(call)
        if self._cache is not None:
            self._cache.put(key, body, latency)
        return body, latency

    def _negotiate(self, messages: list[dict[str, str]], labels: Sequence[str]) -> tuple[dict[str, Any], float]:
        """Answer the first prompt with the richest request the server accepts and keep
        those features for the rest: a structured-output form, then logprobs. Answers
        already cached for a form count as accepted, so a cached rerun sends nothing."""
        cfg = self.config
        forms = [*STRUCTURED_FORMS, "none"] if cfg.structured == "auto" else [cfg.structured]
        candidates = [
            {"structured": form, "logprobs": logprobs} for form in forms for logprobs in ([True, False] if cfg.logprobs else [False])
        ]
        if self._cache is not None:
            for features in candidates:
                request = self._request(messages, labels, features)
                if self._cache.get(cache_key(self._endpoint_id, self.endpoint.model, request)) is not None:
                    self._features = features
                    return self._ask(request)
        errors = []
        for features in candidates:
            try:
                answer = self._ask(self._request(messages, labels, features))
            except _Rejected as exc:
                errors.append(str(exc))
                continue
            self._features = features
            if errors:
                self._explain_fallback(errors, features)
            return answer
        raise UserError(
            f"{self._endpoint_id} rejected every request form ({errors[-1][:200]}); with llm.api.structured={cfg.structured}"
            " the server must support that response_format: try llm.api.structured=auto"
        )

    def _explain_fallback(self, errors: list[str], features: dict[str, Any]) -> None:
        """Say once per process and server, in plain words, which request form the server
        takes; its own error texts go to the negotiation log, not to the console."""
        ep = self.endpoint
        server = (
            "the local llama.cpp server"
            if ep is not None and ep.managed
            else f"the server at {redact_url(ep.base_url or '') if ep else '?'}"
        )
        log = log_rejections(server, self._endpoint_id, errors, features)
        if (server, repr(features)) in _NOTED:
            return
        _NOTED.add((server, repr(features)))
        tried = {
            "structured": (self.config.structured if self.config.structured != "auto" else STRUCTURED_FORMS[0]),
            "logprobs": self.config.logprobs,
        }
        expected = "expected for llama.cpp; " if ep is not None and ep.managed else ""
        replies = f"its replies are in {log}" if log else "its replies were not logged: the cache folder is not writable"
        print(
            f"note: {server} does not take {_in_words(tried)}; using {_in_words(features)} instead ({expected}{replies})", file=sys.stderr
        )

    def _predict(self, body: dict[str, Any], latency: float, labels: Sequence[str]) -> Prediction:
        choice = (body.get("choices") or [{}])[0]
        content = (choice.get("message") or {}).get("content")
        label = parse_answer(content, labels)
        usage = body.get("usage") or {}
        inp, out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        cost = None
        if not usage:  # some compatible servers send none: tokens and money are then unknown, never 0
            with self._lock:
                self.stats["usage_missing"] += 1
        elif self.billing == "api":
            cost = self.prices.token_cost(self.endpoint.model, inp, out)
        self.served_model = body.get("model") or self.served_model
        return Prediction(
            label=label,
            confidence=answer_confidence(choice.get("logprobs")) if label != INVALID else None,
            usage=Usage(input_tokens=inp, output_tokens=out, latency_s=latency, cost_usd=cost),
            raw=content,
        )

    def classify(self, prompts: Sequence[list[dict[str, str]]], labels: Sequence[str]) -> list[Prediction]:
        """One prediction per chat prompt, in order; at most ``concurrency`` requests at once."""
        self.start()
        answers: list[tuple[dict[str, Any], float] | None] = [None] * len(prompts)
        todo = list(range(len(prompts)))
        if self._features is None and todo:
            answers[0] = self._negotiate(prompts[0], labels)
            todo = todo[1:]
        features = self._features or {}
        pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="api")
        try:
            futures = {i: pool.submit(self._ask, self._request(prompts[i], labels, features)) for i in todo}
            for i, fut in futures.items():
                answers[i] = fut.result()
        except _Rejected as exc:
            raise UserError(f"{self._endpoint_id} rejected a request ({exc})") from None
        finally:
            # on an error, queued requests are dropped instead of being sent anyway
            pool.shutdown(wait=True, cancel_futures=True)
        return [self._predict(body, latency, labels) for body, latency in answers]  # type: ignore[misc]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header given in seconds (HTTP dates are ignored)."""
    try:
        value = float(headers.get("retry-after", ""))
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None
