"""The prediction log: every prediction the service makes, in a real database.

SQLite by default (one file, write-ahead log), or any SQLAlchemy URL. Three tables:

``predictions``  one row per input and model: time, request id, role (champion or shadow),
                 model and version, label, confidence, probabilities (JSON), abstain,
                 latency, sha256 of the text, and the text itself only when asked for;
``errors``       one row per refused or failed request: time, request id, HTTP status,
                 kind and message;
``profiles``     one row per served model version: what monitoring compares traffic with
                 (training label distribution, validation confidences and correctness for
                 calibration, test accuracy, confidence threshold), as JSON.

A row is committed before the service answers the request it belongs to, so a killed
service (SIGKILL included) loses no prediction it has answered. The service writes; the
``monitor`` command and the dashboard read with `read_log`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dispute_classifier.core.errors import UserError

DEFAULT_DB = "predictions.db"
"""The log's file when neither ``--log-db`` nor ``$DISPUTE_CLASSIFIER_PREDLOG`` is given."""
PREDLOG_ENV = "DISPUTE_CLASSIFIER_PREDLOG"
"""Environment variable naming the log (the ``dashboard`` command sets it from ``--log-db``)."""


def db_url(value: str | None = None) -> str:
    """A SQLAlchemy URL from ``--log-db`` (else ``$DISPUTE_CLASSIFIER_PREDLOG``, else
    ``predictions.db``): a URL as is, a plain path as a SQLite file."""
    value = value or os.environ.get(PREDLOG_ENV) or DEFAULT_DB
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def text_hash(text: str) -> str:
    """The sha256 of a text, as the log stores it instead of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _tables(metadata: Any) -> dict[str, Any]:
    from sqlalchemy import Boolean, Column, Float, Integer, String, Table, Text

    return {
        "predictions": Table(
            "predictions", metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("ts", Float, nullable=False, index=True),
            Column("request_id", String(128), nullable=False, index=True),
            Column("client_request_id", String(128)),  # the client's X-Request-Id (request_id is the server's)
            Column("input_index", Integer, nullable=False),
            Column("role", String(16), nullable=False),
            Column("model", String(200), nullable=False),
            Column("version", String(64), nullable=False),
            Column("label", String(200), nullable=False),
            Column("confidence", Float),
            Column("probs", Text),
            Column("abstain", Boolean, nullable=False),
            Column("latency_ms", Float, nullable=False),
            Column("text_sha256", String(64), nullable=False),
            Column("text", Text),
        ),
        "errors": Table(
            "errors", metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("ts", Float, nullable=False, index=True),
            Column("request_id", String(128), nullable=False),
            Column("status", Integer, nullable=False),
            Column("kind", String(64), nullable=False),
            Column("message", Text, nullable=False),
        ),
        "profiles": Table(
            "profiles", metadata,
            Column("model", String(200), primary_key=True),
            Column("version", String(64), primary_key=True),
            Column("profile", Text, nullable=False),
        ),
    }


def _engine(url: str):
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
    except Exception as exc:  # a malformed URL or a missing driver
        raise UserError(f"--log-db {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # noqa: ANN001
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cur.execute("PRAGMA synchronous=NORMAL")  # a commit survives a killed process
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()
    return engine


class PredictionLog:
    """Writes predictions, errors and model profiles; safe to share between threads."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import MetaData

        self.url = url
        self.engine = _engine(url)
        self.tables = _tables(MetaData())
        try:
            self.tables["predictions"].metadata.create_all(self.engine)
        except Exception as exc:
            raise UserError(f"--log-db {url}: cannot open the prediction log ({str(exc).splitlines()[0]})") from None
        self._lock = threading.Lock()  # SQLite has one writer: queue writes here, not in busy retries

    def write_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Insert prediction rows in one transaction (committed when this returns)."""
        if not rows:
            return
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.tables["predictions"].insert(), rows)

    def write_error(self, ts: float, request_id: str, status: int, kind: str, message: str) -> None:
        """Record one refused or failed request."""
        row = {"ts": ts, "request_id": request_id, "status": status, "kind": kind, "message": message}
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.tables["errors"].insert(), [row])

    def save_profile(self, model: str, version: str, profile: dict[str, Any]) -> None:
        """Store (or replace) what monitoring compares this model's traffic with."""
        table = self.tables["profiles"]
        with self._lock, self.engine.begin() as conn:
            conn.execute(table.delete().where(table.c.model == model, table.c.version == version))
            conn.execute(table.insert(), [{"model": model, "version": version, "profile": json.dumps(profile)}])

    def load_profile(self, model: str, version: str) -> dict[str, Any] | None:
        """The stored profile of this model version, if any."""
        table = self.tables["profiles"]
        with self.engine.connect() as conn:
            row = conn.execute(table.select().where(table.c.model == model, table.c.version == version)).first()
        return json.loads(row.profile) if row else None

    def close(self) -> None:
        """Release the connections (the file stays consistent either way)."""
        self.engine.dispose()


@dataclass
class LogData:
    """Everything in a prediction log, as plain rows."""

    predictions: list[dict[str, Any]] = field(default_factory=list)
    """Prediction rows in time order; ``probs`` parsed into a dict."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    """Error rows in time order."""
    profiles: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(model, version) → profile."""


def read_log(url: str, since: float | None = None) -> LogData:
    """Read the log at ``url`` (rows at or after ``since``, a Unix time, when given)."""
    from sqlalchemy import MetaData, inspect

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise UserError(f"no prediction log at {url.removeprefix('sqlite:///')}; start `dispute-classifier serve` (it writes one) or pass --log-db")
    engine = _engine(url)
    try:
        tables = _tables(MetaData())
        present = set(inspect(engine).get_table_names())
        if "predictions" not in present:
            raise UserError(f"{url}: not a prediction log (no predictions table); pass the --log-db that `serve` wrote")
        out = LogData()
        with engine.connect() as conn:
            for name in ("predictions", "errors"):
                table = tables[name]
                query = table.select().order_by(table.c.ts, table.c.id)
                if since is not None:
                    query = query.where(table.c.ts >= since)
                rows = [dict(r._mapping) for r in conn.execute(query)] if name in present else []
                setattr(out, name, rows)
            if "profiles" in present:
                for r in conn.execute(tables["profiles"].select()):
                    out.profiles[(r.model, r.version)] = json.loads(r.profile)
        for row in out.predictions:
            row["probs"] = json.loads(row["probs"]) if row["probs"] else None
        return out
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{url}: cannot read the prediction log ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    finally:
        engine.dispose()
