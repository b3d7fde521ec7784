"""An edge one client cannot break: each case of issue 20 through the real service (in-process
app or the real command on loopback)."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from dispute_classifier.core.types import ClassifierBase, Prediction
from evaluation.predlog import PredictionLog, db_url, read_log

SURROGATE = b'{"input": ["refund \\ud800 please"]}'
"""Valid JSON whose text holds a lone surrogate: no UTF-8 encoding exists for it."""


def _burst(url: str, bodies: list[bytes], headers: dict[str, str] | None = None) -> list[httpx.Response]:
    async def go():
        limits = httpx.Limits(max_connections=len(bodies))
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/v1/classify", content=b, headers={"content-type": "application/json", **(headers or {})}) for b in bodies)
            )

    return asyncio.run(go())


def test_a_lone_surrogate_fails_its_own_request_only(start_server, tmp_path):
    db = tmp_path / "s.db"
    server = start_server("--model", "tfidf", "--log-db", str(db), "--max-wait-ms", "5")
    good = [f'{{"input": ["refund my order {i}"]}}'.encode() for i in range(63)]
    for burst in range(3):
        bodies = good[: 20 + burst] + [SURROGATE] + good[20 + burst :]
        responses = _burst(server.url, bodies)
        codes = [r.status_code for r in responses]
        assert codes.count(200) == 63 and codes.count(422) == 1, codes
        bad = responses[20 + burst].json()["error"]
        assert bad["type"] == "invalid_text" and bad["param"] == "input[0]" and "surrogate" in bad["message"]
    assert len(read_log(db_url(str(db))).predictions) == 3 * 63


class FailsOn(ClassifierBase):
    """Fails any batch that holds ``bad`` (as a poisoned input would), after a pause that lets
    concurrent requests join the same micro-batch."""

    name = "fails-on"

    def __init__(self, bad: str) -> None:
        self.bad = bad
        self.calls: list[int] = []

    def predict(self, texts):
        time.sleep(0.05)
        self.calls.append(len(texts))
        if self.bad in texts:
            raise ValueError("cannot featurise this input")
        return [Prediction("refund", 0.9, probs={"refund": 0.9, "fee": 0.05, "fraud": 0.05}) for _ in texts]


def _app_with(clf, toy_task, tmp_path, **settings):
    from dispute_classifier.serving.app import create_app
    from dispute_classifier.serving.settings import ServeConfig
    from dispute_classifier.serving.state import ServedVersion, ServiceState

    cfg = ServeConfig(model=clf.name, task=str(toy_task), **settings)
    version = ServedVersion(clf.name, "champion", clf, clf.name, "v1", ("refund", "fee", "fraud"), 0.5)
    return create_app(ServiceState(cfg, version, PredictionLog(db_url(str(tmp_path / "e.db"))), key=settings.get("_key")))


def test_one_failing_input_never_fails_the_other_requests_of_its_batch(toy_task, tmp_path):
    from fastapi.testclient import TestClient

    clf = FailsOn("poison")
    codes: dict[str, int] = {}
    with TestClient(_app_with(clf, toy_task, tmp_path, max_batch=32, max_wait_ms=50)) as client:

        def ask(text):
            codes[text] = client.post("/v1/classify", json={"input": [text]}).status_code

        threads = [threading.Thread(target=ask, args=(t,)) for t in [f"good {i}" for i in range(15)] + ["poison"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert codes.pop("poison") == 500
    assert set(codes.values()) == {200} and len(codes) == 15
    assert max(clf.calls) > 1, clf.calls  # they did share a batch, which failed and was retried job by job
    logged = read_log(db_url(str(tmp_path / "e.db"))).predictions
    assert len(logged) == 15  # each answered input once, none twice after the retry


def test_deeply_nested_json_is_a_400_not_a_crash(serve_app):
    client, _ = serve_app()
    r = client.post("/v1/classify", content=b"[" * 100_000 + b"]" * 100_000, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "json_too_deep"
    r = client.post("/v1/classify", content=b'{"input": [[[[[[[[[["x"]]]]]]]]]]}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "json_too_deep"
    # brackets inside texts are text, not nesting
    r = client.post("/v1/classify", json={"input": ['[[[[[[[[[[[[ refund {{{{{{{{{{{ \\" [[[[']})
    assert r.status_code == 200, r.text


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _raw(port: int, head: bytes, body_chunks, timeout: float = 30) -> bytes:
    """Send a request head, then body chunks until the server answers or stops reading; the
    reply's head. (Blocking sends: a partial non-blocking send would corrupt chunked framing.)"""
    import select

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        s.settimeout(2)
        for chunk in body_chunks:
            if select.select([s], [], [], 0)[0]:  # an answer (or a close) arrived: stop sending
                break
            try:
                s.sendall(chunk)
            except (socket.timeout, BrokenPipeError, ConnectionResetError):  # the server stopped reading
                break
        s.settimeout(timeout)
        reply = b""
        try:
            while b"\r\n\r\n" not in reply:
                more = s.recv(65536)
                if not more:
                    break
                reply += more
        except (ConnectionResetError, socket.timeout):
            pass
        return reply


def test_a_200_mb_body_is_refused_before_it_is_read(start_server, tmp_path):
    server = start_server("--model", "tfidf", "--log-db", str(tmp_path / "b.db"))
    before = _rss_mb(server.proc.pid)
    mb = b"x" * (1 << 20)
    head = (f"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {200 << 20}\r\n\r\n").encode()
    reply = _raw(server.port, head, (mb for _ in range(200)))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    # no Content-Length: chunked, counted while it streams
    head = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"%x\r\n" % len(mb) + mb + b"\r\n"
    reply = _raw(server.port, head, (chunk for _ in range(200)))
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    grown = _rss_mb(server.proc.pid) - before
    assert grown < 40, f"the server grew by {grown:.0f} MB while refusing 400 MB of bodies"
    assert httpx.post(f"{server.url}/v1/classify", json={"input": ["refund please"]}).status_code == 200


def test_a_half_open_connection_is_closed_after_the_keep_alive_timeout(start_server, tmp_path):
    server = start_server("--model", "tfidf", "--log-db", str(tmp_path / "h.db"), "--keep-alive-s", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n")  # half a request head, then nothing
        t0 = time.monotonic()
        assert s.recv(1024) == b""  # closed by the server, not by our timeout
        assert time.monotonic() - t0 < 8
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:  # an idle connection too
        assert s.recv(1024) == b""


def test_refused_requests_are_counted_never_written_and_throttled_in_stderr(serve_app, monkeypatch, capfd, tmp_path):
    monkeypatch.setenv("DC_TEST_KEY", "k")
    client, _ = serve_app(api_key_env="DC_TEST_KEY")
    for i in range(1000):
        assert client.post("/v1/classify", json={"input": ["refund"]}, headers={"X-Request-Id": f"same-{i % 2}"}).status_code == 401
    auth = {"Authorization": "Bearer k"}
    for _ in range(20):
        assert client.get("/" + "p" * 60_000, headers=auth).status_code == 404
    log = read_log(db_url(str(tmp_path / "log.db")))
    assert log.errors == [] and log.predictions == []
    metrics = client.get("/metrics", headers=auth).text
    assert 'classifier_errors_total{kind="unauthorized"} 1000.0' in metrics and 'classifier_errors_total{kind="not_found"} 20.0' in metrics
    err = capfd.readouterr().err
    assert 1 <= err.count("refused: 401") <= 2 and 1 <= err.count("refused: 404") <= 2
    assert "p" * 200 not in err  # a 60 KB path is not echoed whole


def test_request_ids_are_the_servers_and_the_clients_is_kept_beside_them(serve_app, tmp_path):
    client, _ = serve_app()
    ids = [
        client.post("/v1/classify", json={"input": ["refund"]}, headers={"X-Request-Id": "dup"}).headers["x-request-id"] for _ in range(2)
    ]
    assert len(set(ids)) == 2 and "dup" not in ids
    rows = read_log(db_url(str(tmp_path / "log.db"))).predictions
    assert [(r["request_id"], r["client_request_id"]) for r in rows] == [(ids[0], "dup"), (ids[1], "dup")]


def test_a_key_with_a_trailing_newline_works_with_a_warning(serve_app, monkeypatch, capfd):
    monkeypatch.setenv("DC_TEST_KEY", "s3cret\n")
    client, _ = serve_app(api_key_env="DC_TEST_KEY")
    assert "whitespace" in capfd.readouterr().err
    ask = {"input": ["refund please"]}
    assert client.post("/v1/classify", json=ask, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.post("/v1/classify", json=ask, headers={"X-API-Key": "s3cret\n"}).status_code == 200
    assert client.post("/v1/classify", json=ask, headers={"Authorization": "Bearer s3cre"}).status_code == 401


class Sleepy(ClassifierBase):
    name = "sleepy"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, texts):
        time.sleep(self.seconds)
        return [Prediction("refund", 0.9, probs={"refund": 0.9, "fee": 0.05, "fraud": 0.05}) for _ in texts]


def test_a_request_past_its_deadline_gets_504_and_the_service_lives_on(toy_task, tmp_path):
    from fastapi.testclient import TestClient

    clf = Sleepy(0.6)
    with TestClient(_app_with(clf, toy_task, tmp_path, request_timeout_s=0.2)) as client:
        r = client.post("/v1/classify", json={"input": ["refund"]})
        assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
        clf.seconds = 0.0
        time.sleep(0.6)
        assert client.post("/v1/classify", json={"input": ["refund"]}).status_code == 200


def test_a_full_queue_answers_503_with_retry_after(toy_task, tmp_path):
    from fastapi.testclient import TestClient

    results = []
    with TestClient(_app_with(Sleepy(0.3), toy_task, tmp_path, max_queue=1, max_batch=1)) as client:

        def ask():
            results.append(client.post("/v1/classify", json={"input": ["refund"]}))

        threads = [threading.Thread(target=ask) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    full = [r for r in results if r.status_code == 503]
    assert full and all(r.json()["error"]["type"] == "queue_full" and r.headers["retry-after"] == "1" for r in full)
    assert any(r.status_code == 200 for r in results)


def test_the_openapi_document_describes_requests_responses_and_errors(serve_app):
    from dispute_classifier.serving.schemas import ClassifyResponse, ErrorResponse

    client, _ = serve_app()
    doc = client.get("/openapi.json").json()
    op = doc["paths"]["/v1/classify"]["post"]
    assert {"400", "401", "413", "422", "503", "504"} <= set(op["responses"])
    assert "input" in op["requestBody"]["content"]["application/json"]["schema"]["properties"]
    fields = doc["components"]["schemas"]["ClassifyItem"]["properties"]
    assert all(f.get("description") for f in fields.values())
    # the hand-written answers are the documented shapes
    ClassifyResponse.model_validate(client.post("/v1/classify", json={"input": ["refund please", "fee"]}).json())
    ErrorResponse.model_validate(client.post("/v1/classify", json={"input": []}).json())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_clean_stop_exits_0(start_server, tmp_path, sig):
    server = start_server("--model", "tfidf", "--log-db", str(tmp_path / "x.db"))
    assert httpx.post(f"{server.url}/v1/classify", json={"input": ["refund please"]}).status_code == 200
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=30) == 0


BAD_FLAGS = [
    (["--max-chars", "-5"], "--max-chars must be at least 1, got -5"),
    (["--max-wait-ms", "inf"], "--max-wait-ms must be at least 0 and at most 60000, got inf"),
    (["--drain-s", "nan"], "--drain-s must be at least 0 and at most 3600, got nan"),
    (["--drain-s", "-1"], "--drain-s must be at least 0"),
    (["--max-queue", "0"], "--max-queue must be at least 1"),
    (["--request-timeout-s", "0"], "--request-timeout-s must be above 0"),
    (["--keep-alive-s", "-3"], "--keep-alive-s must be above 0"),
    (["--max-body-bytes", "0"], "--max-body-bytes must be at least 1"),
    (["--target-accuracy", "nan"], "--target-accuracy must be above 0"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_every_numeric_flag_is_range_checked_in_one_line(flags, message, capsys):
    from dispute_classifier.commands.cli import main

    assert main(["serve", "--model", "tfidf", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_a_task_limit_out_of_range_is_one_line(tmp_path, monkeypatch, capsys):
    from dispute_classifier.commands.cli import main
    from tests.conftest import task_folder, write_task

    task = write_task(task_folder(tmp_path, monkeypatch), extra="max_text_chars: -5\n")
    assert main(["serve", "--model", "tfidf", "--task", str(task), "--log-db", str(tmp_path / "t.db")]) == 2
    err = capsys.readouterr().err
    assert "max_text_chars must be a whole number of at least 1, got -5" in err and err.count("\n") == 1, err


def test_an_unwritable_log_db_is_one_line_before_any_model_loads(toy_task, tmp_path, capsys):
    from dispute_classifier.commands.cli import main

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for path in (blocker / "log.db", tmp_path):
        assert main(["serve", "--model", "tfidf", "--task", str(toy_task), "--log-db", str(path)]) == 2
        err = capsys.readouterr().err
        assert "--log-db" in err and err.count("\n") == 1 and "measuring" not in err, err
