"""The service's settings: one typed dataclass whose field docstrings are the ``--help`` text,
every number checked at construction with an error that names the flag."""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field

from dispute_classifier.core.errors import UserError

MAX_JSON_DEPTH = 8
"""Deepest nesting of arrays and objects a request body may have (a classify body needs 2)."""


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
    review_rate: float = 0.0
    """With --shadow: share of the champion/shadow disagreements flagged for review in the log (picked by a hash of
    request id and input, so every replica picks the same); label those and `monitor --labels FILE` compares the two."""
    max_batch: int = 32
    """Most texts predicted together in one micro-batch."""
    max_wait_ms: float = 0.0
    """Longest a micro-batch waits for more requests once one is waiting. At 0 a batch is what queued
    while the previous one ran (under load that fills batches by itself); a few ms fills them at low load."""
    max_inputs: int = 64
    """Most texts accepted in one request."""
    max_chars: int | None = None
    """Longest text accepted (default: the task's max_text_chars)."""
    max_queue: int = 1024
    """Most requests waiting for the model; one more is refused with 503 and Retry-After (shed load, not memory)."""
    max_body_bytes: int = 4 * 1024 * 1024
    """Largest request body; a bigger one is refused with 413 before the excess is read."""
    request_timeout_s: float = 30.0
    """Longest a request waits for its prediction; past it the client gets 504."""
    keep_alive_s: float = 5.0
    """Seconds an idle (or half-open) keep-alive connection is held open before the server closes it."""
    drain_s: float = 10.0
    """On SIGTERM/SIGINT, seconds that in-flight requests and the shadow queue get to finish."""
    data_dir: str | None = None
    """Folder with the task's source files (default: $DISPUTE_CLASSIFIER_DATA, then download)."""
    refit: bool = False
    """Fit an approach again instead of loading the cached fitted model."""
    set: list[str] = field(default_factory=list, metadata={"repeat": True})
    """Approach setting for the served models, as `evaluate --set` takes it (repeatable), e.g. --set finetuned.quantize=int8.
    A fine-tuned model's finetuned.batch_size defaults to --max-batch here, so one micro-batch is one forward pass."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise UserError(f"port must be between 1 and 65535, got {self.port} (set --port)")
        if self.min_confidence is not None:
            _number("min_confidence", self.min_confidence, 0, 1)
        _number("target_accuracy", self.target_accuracy, 0, 1, low_open=True)
        for name in ("max_batch", "max_inputs", "max_queue", "max_body_bytes"):
            _number(name, getattr(self, name), 1, None)
        if self.max_chars is not None:
            _number("max_chars", self.max_chars, 1, None)
        _number("max_wait_ms", self.max_wait_ms, 0, 60_000)
        _number("request_timeout_s", self.request_timeout_s, 0, 3600, low_open=True)
        _number("keep_alive_s", self.keep_alive_s, 0, 3600, low_open=True)
        _number("drain_s", self.drain_s, 0, 3600)
        _number("review_rate", self.review_rate, 0, 1)
        if self.review_rate and not self.shadow:
            raise UserError("--review-rate flags champion/shadow disagreements for review; it needs --shadow MODEL")


def _number(name: str, value: float, low: float, high: float | None, low_open: bool = False) -> None:
    """Refuse a setting outside [low, high] (or (low, high]), NaN and infinity, naming its flag."""
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{flag} must be a number, got {value!r}")
    bad = not math.isfinite(value) or value < low or (low_open and value == low) or (high is not None and value > high)
    if bad:
        lower = f"above {low:g}" if low_open else f"at least {low:g}"
        span = lower + (f" and at most {high:g}" if high is not None else "")
        raise UserError(f"{flag} must be {span}, got {value!r}")


def check_port_free(host: str, port: int, flag: str = "--port") -> None:
    """Refuse to start on a port something else already listens on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another server running there? pick another with {flag}"
            ) from None
