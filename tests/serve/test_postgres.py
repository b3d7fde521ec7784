"""The prediction log on a real PostgreSQL server (tests/serve/pg.py starts one): two service
processes log to one database under load from both, one is SIGKILLed mid-load; every answered
request is in the log exactly once and `monitor` reads the union. A log of another schema
version is refused in one line."""

from __future__ import annotations

import itertools
import json
import os
import signal
import threading
from collections import Counter

import pytest

from dispute_classifier.commands.cli import main
from dispute_classifier.core.errors import UserError
from evaluation.predlog import SCHEMA_VERSION, PredictionLog, read_log, text_hash
from tests.serve.conftest import Server, free_port
from tests.serve.pg import REQUIRE_ENV, Cluster, bindir

pytest.importorskip("psycopg")
_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    if bindir() is None:
        message = "PostgreSQL server binaries not found (make test installs Debian's postgresql)"
        if os.environ.get(REQUIRE_ENV) or os.environ.get("CI"):
            pytest.fail(message)  # a skip on CI would hide a broken setup
        pytest.skip(message)
    cluster = Cluster(free_port()).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres):
    """A fresh database on the session's server."""
    return postgres.create_database(f"predlog_{os.getpid()}_{next(_names)}")


def test_two_replicas_one_killed_every_answered_request_logged_once(pg_url, toy_task, tmp_path, models_root, capsys):
    import httpx

    env = dict(os.environ)
    replicas = [
        Server(["--task", str(toy_task), "--model", "tfidf", "--log-db", pg_url], env, tmp_path / f"replica-{i}.log") for i in range(2)
    ]
    try:
        for r in replicas:
            r.wait_ready(timeout=180)
        answered: list[str] = []
        lock = threading.Lock()
        killed = threading.Event()

        def client(worker: int) -> None:
            with httpx.Client(timeout=10) as http:
                for i in range(60):
                    text = f"please refund order {worker}-{i}"
                    server = replicas[(worker + i) % 2]
                    if worker == 0 and i == 20:
                        os.kill(replicas[0].proc.pid, signal.SIGKILL)  # mid-load, requests in flight
                        killed.set()
                    try:
                        r = http.post(f"{server.url}/v1/classify", json={"input": [text]})
                    except httpx.HTTPError:
                        continue  # the killed replica: not answered
                    if r.status_code == 200:
                        with lock:
                            answered.append(text)

        threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert killed.is_set() and replicas[0].proc.wait(timeout=30) == -signal.SIGKILL
        assert replicas[1].proc.poll() is None  # the other replica served on
    finally:
        for r in replicas:
            r.stop()
    log = read_log(pg_url)
    logged = Counter(p["text_sha256"] for p in log.predictions if p["role"] == "champion")
    assert len(answered) > 240  # both replicas answered, the survivor most of it
    assert all(logged[text_hash(t)] == 1 for t in answered)  # every answered request exactly once
    sent = {text_hash(f"please refund order {w}-{i}") for w in range(8) for i in range(60)}
    assert set(logged) <= sent and max(logged.values()) == 1  # nothing twice, nothing foreign
    capsys.readouterr()
    out = tmp_path / "m.json"
    assert main(["monitor", "--log-db", pg_url, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["overall"]["predictions"] == sum(logged.values()) >= len(answered)


def test_a_log_of_another_schema_version_is_refused_in_one_line(pg_url, capsys):
    log = PredictionLog(pg_url)
    log.close()
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(UserError, match=f"schema version 99, this code reads and writes version {SCHEMA_VERSION}"):
        PredictionLog(pg_url)
    assert main(["monitor", "--log-db", pg_url]) == 2
    err = capsys.readouterr().err
    assert "schema version 99" in err and err.count("\n") == 1 and "Traceback" not in err


def test_replicas_opening_one_new_database_together_create_it_once(pg_url):
    errors: list[Exception] = []

    def open_log() -> None:
        try:
            PredictionLog(pg_url).close()
        except Exception as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=open_log) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    log = PredictionLog(pg_url)
    log.save_profile("m", "v1", {"labels": ["a"]})
    log.save_profile("m", "v1", {"labels": ["b"]})  # replaced, not duplicated
    assert log.load_profile("m", "v1") == {"labels": ["b"]}
    log.close()
