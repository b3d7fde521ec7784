"""The prediction log: every prediction the service makes, in a real database.

SQLite by default (one file, write-ahead log, under the run folder:
``runs/serve/predictions.db``), or any SQLAlchemy URL; PostgreSQL
(``postgresql+psycopg://USER@HOST:PORT/DB``) is what several replicas share, and is tested
with two service processes and a SIGKILL (tests/serve/test_postgres.py). Four tables:

``predictions``  one row per input and model: time, request id, role (champion or shadow),
                 model and version, label, confidence, probabilities (JSON), abstain,
                 latency, sha256 of the text, and the text itself only when asked for;
``errors``       one row per refused or failed request: time, request id, HTTP status,
                 kind and message;
``profiles``     one row per served model version: what monitoring compares traffic with
                 (training label distribution, held-out confidences, correctness and labels
                 for calibration and drift, test accuracy, confidence threshold), as JSON;
``meta``         the log's schema version (`SCHEMA_VERSION`); a log of another version is
                 refused with a one-line error instead of being written in the wrong shape.

A shadow prediction that disagrees with the champion's is flagged ``review`` for a sample of
``review_rate`` of the disagreements (chosen by a hash of request id and input index, so the
sample is random over traffic and the same on every replica): the queue a person labels for
``monitor --labels``.

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
from evaluation.runs import runs_dir

DEFAULT_DB = "serve/predictions.db"
"""The log's file under the run folder (``--runs-dir``/$DISPUTE_CLASSIFIER_RUNS, else ./runs,
which git ignores) when neither ``--log-db`` nor ``$DISPUTE_CLASSIFIER_PREDLOG`` is given:
never the working directory, where `git commit -a` would take customer predictions along."""
PREDLOG_ENV = "DISPUTE_CLASSIFIER_PREDLOG"
"""Environment variable naming the log (the ``dashboard`` command sets it from ``--log-db``)."""
SCHEMA_VERSION = 2
"""Version of the tables below (1: before ``meta`` and ``review``); bump it with any change."""


def db_url(value: str | None = None) -> str:
    """A SQLAlchemy URL from ``--log-db`` (else ``$DISPUTE_CLASSIFIER_PREDLOG``, else
    ``runs/serve/predictions.db``): a URL as is, a plain path as a SQLite file."""
    value = value or os.environ.get(PREDLOG_ENV) or str(runs_dir() / DEFAULT_DB)
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def review_pick(request_id: str, input_index: int, rate: float) -> bool:
    """Whether this input falls in the ``rate`` sample routed to review (a hash, not a random
    draw: every replica and every rerun picks the same inputs)."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{request_id}/{input_index}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def text_hash(text: str) -> str:
    """The sha256 of a text, as the log stores it instead of the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _tables(metadata: Any) -> dict[str, Any]:
    from sqlalchemy import Boolean, Column, Float, Integer, String, Table, Text

    return {
        "predictions": Table(
            "predictions",
            metadata,
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
            Column("review", Boolean, nullable=False, default=False),
        ),
        "errors": Table(
            "errors",
            metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("ts", Float, nullable=False, index=True),
            Column("request_id", String(128), nullable=False),
            Column("status", Integer, nullable=False),
            Column("kind", String(64), nullable=False),
            Column("message", Text, nullable=False),
        ),
        "profiles": Table(
            "profiles",
            metadata,
            Column("model", String(200), primary_key=True),
            Column("version", String(64), primary_key=True),
            Column("profile", Text, nullable=False),
        ),
        "meta": Table(
            "meta",
            metadata,
            Column("key", String(64), primary_key=True),
            Column("value", Text, nullable=False),
        ),
    }


def _check_version(conn: Any, tables: dict[str, Any], url: str, present: set[str]) -> bool:
    """Raise a one-line error when the log at ``url`` is of another schema version; False when
    it has no tables yet."""
    if "predictions" in present and "meta" not in present:
        found: Any = 1
    elif "meta" in present:
        meta = tables["meta"]
        row = conn.execute(meta.select().where(meta.c.key == "schema_version")).first()
        found = int(row.value) if row else None
    else:
        return False
    if found is not None and found != SCHEMA_VERSION:
        raise UserError(
            f"{_shown(url)}: prediction log of schema version {found}, this code reads and writes version {SCHEMA_VERSION};"
            " point --log-db at a new log (keep the old one for the version that wrote it)"
        )
    return found is not None


def _shown(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _engine(url: str):
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        # a server may restart between requests: test a pooled connection before using it
        engine = create_engine(url) if url.startswith("sqlite") else create_engine(url, pool_pre_ping=True)
    except Exception as exc:  # a malformed URL or a missing driver
        raise UserError(f"--log-db {_shown(url)}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from None
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
    """Writes predictions, errors and model profiles; safe to share between threads, and (on a
    database server) between replicas."""

    def __init__(self, url: str, review_rate: float = 0.0) -> None:
        from sqlalchemy import MetaData

        if not 0 <= review_rate <= 1:
            raise UserError(f"review rate must be between 0 and 1, got {review_rate} (set --review-rate)")
        self.url = url
        self.review_rate = review_rate
        """Share of champion/shadow disagreements flagged for review."""
        self.engine = _engine(url)
        self.tables = _tables(MetaData())
        self._create()
        self._lock = threading.Lock()  # SQLite has one writer: queue writes here, not in busy retries

    def _create(self) -> None:
        """Create the tables and stamp the version, or check the version of a log that has them.
        Replicas starting together on one server serialise on an advisory lock."""
        import time

        from sqlalchemy import inspect, text

        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(2020)"))  # held until this transaction ends
                    present = set(inspect(conn).get_table_names())
                    if _check_version(conn, self.tables, self.url, present):
                        return
                    self.tables["predictions"].metadata.create_all(conn)
                    conn.execute(self.tables["meta"].insert(), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])
                return
            except UserError:
                raise
            except Exception as exc:  # another process created the tables first (SQLite): look again
                if attempt == 2:
                    raise UserError(f"--log-db {_shown(self.url)}: cannot open the prediction log ({str(exc).splitlines()[0]})") from None
                time.sleep(0.2)

    def write_predictions(self, rows: list[dict[str, Any]]) -> None:
        """Insert prediction rows in one transaction (committed when this returns). Shadow rows
        that disagree with the logged champion row of the same input are flagged ``review``
        for a `review_pick` sample of ``review_rate``."""
        if not rows:
            return
        table = self.tables["predictions"]
        with self._lock, self.engine.begin() as conn:
            shadow = [r for r in rows if r.get("role") == "shadow"]
            champion: dict[tuple[str, int], str] = {}
            if self.review_rate > 0 and shadow:
                ids = sorted({r["request_id"] for r in shadow})
                query = (
                    table.select()
                    .with_only_columns(table.c.request_id, table.c.input_index, table.c.label)
                    .where(table.c.role == "champion", table.c.request_id.in_(ids))
                )
                champion = {(r.request_id, r.input_index): r.label for r in conn.execute(query)}
            out = []
            for r in rows:
                key = (r["request_id"], r["input_index"])
                review = (
                    r.get("role") == "shadow" and key in champion and champion[key] != r["label"] and review_pick(*key, self.review_rate)
                )
                out.append({**r, "review": bool(r.get("review", review))})
            conn.execute(table.insert(), out)

    def write_error(self, ts: float, request_id: str, status: int, kind: str, message: str) -> None:
        """Record one refused or failed request."""
        row = {"ts": ts, "request_id": request_id, "status": status, "kind": kind, "message": message}
        with self._lock, self.engine.begin() as conn:
            conn.execute(self.tables["errors"].insert(), [row])

    def save_profile(self, model: str, version: str, profile: dict[str, Any]) -> None:
        """Store (or replace) what monitoring compares this model's traffic with."""
        from sqlalchemy.exc import IntegrityError

        table = self.tables["profiles"]
        for attempt in range(3):
            try:
                with self._lock, self.engine.begin() as conn:
                    conn.execute(table.delete().where(table.c.model == model, table.c.version == version))
                    conn.execute(table.insert(), [{"model": model, "version": version, "profile": json.dumps(profile)}])
                return
            except IntegrityError:  # another replica inserted it meanwhile: the delete sees it now
                if attempt == 2:
                    raise

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
        raise UserError(
            f"no prediction log at {url.removeprefix('sqlite:///')}; start `dispute-classifier serve` (it writes one) or pass --log-db"
        )
    engine = _engine(url)
    try:
        tables = _tables(MetaData())
        present = set(inspect(engine).get_table_names())
        if "predictions" not in present:
            raise UserError(f"{_shown(url)}: not a prediction log (no predictions table); pass the --log-db that `serve` wrote")
        out = LogData()
        with engine.connect() as conn:
            _check_version(conn, tables, url, present)
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
        raise UserError(f"{_shown(url)}: cannot read the prediction log ({exc.__class__.__name__}: {str(exc).splitlines()[0]})") from None
    finally:
        engine.dispose()
