"""The real command on loopback: a SIGKILL loses no answered prediction; SIGTERM finishes
in-flight requests, closes the log and frees the port; a busy port is refused."""

from __future__ import annotations

import signal
import socket
import threading
import time

import httpx

from dispute_classifier.serving.settings import check_port_free
from evaluation.predlog import db_url, read_log


def test_sigkill_loses_no_answered_prediction(start_server, tmp_path):
    db = tmp_path / "kill.db"
    server = start_server("--model", "tfidf", "--shadow", "tfidf", "--log-db", str(db))
    answered = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(40):
            r = client.post("/v1/classify", json={"input": [f"refund my order {i}", "a fee again"]}, headers={"X-Request-ID": f"r{i}"})
            assert r.status_code == 200
            answered.append(r.headers["x-request-id"])
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    log = read_log(db_url(str(db)))
    champion = {(p["request_id"], p["input_index"]) for p in log.predictions if p["role"] == "champion"}
    assert champion == {(rid, i) for rid in answered for i in range(2)}


def test_sigterm_finishes_in_flight_requests_and_frees_the_port(start_server, tmp_path):
    db = tmp_path / "term.db"
    server = start_server("--model", "tfidf", "--log-db", str(db), "--max-wait-ms", "1500")
    results = []

    def ask():
        results.append(httpx.post(f"{server.url}/v1/classify", json={"input": ["refund please"]}, timeout=30).status_code)

    thread = threading.Thread(target=ask)
    thread.start()
    time.sleep(0.5)  # the request now waits in its micro-batch
    server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=30)
    assert server.proc.wait(timeout=30) == 0  # a clean drain is a normal stop, not a failure
    assert results == [200]
    assert "stopped: prediction log closed" in server.log.read_text()
    check_port_free("127.0.0.1", server.port)  # nothing listens there any more (a new server could start)
    assert len(read_log(db_url(str(db))).predictions) == 1


def test_a_busy_port_is_refused_in_one_line(capsys):
    from dispute_classifier.commands.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        rc = main(["serve", "--model", "tfidf", "--port", str(s.getsockname()[1])])
    err = capsys.readouterr().err
    assert rc == 2 and "pick another with --port" in err and err.count("\n") == 1
