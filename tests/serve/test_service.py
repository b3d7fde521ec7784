"""The HTTP service in-process: response shape, every bad-input kind, the API key, metrics,
micro-batching, model failures, shadow logging and reload."""

from __future__ import annotations

import threading
import time

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.types import ClassifierBase, Prediction
from evaluation.predlog import db_url, read_log

JSON = {"content-type": "application/json"}


def test_classify_answers_like_vllm_with_abstain_and_version(serve_app):
    client, state = serve_app()
    r = client.post("/v1/classify", json={"input": ["please refund my order 5", "I did not make this payment, fraud"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "tfidf" and body["version"] == state.champion.version
    assert body["labels"] == ["refund", "fee", "fraud"]
    assert [d["label"] for d in body["data"]] == ["refund", "fraud"]
    for d in body["data"]:
        assert len(d["probs"]) == d["num_classes"] == 3 and sum(d["probs"]) == pytest.approx(1.0)
        assert d["confidence"] == pytest.approx(max(d["probs"])) and d["abstain"] is False
    assert r.headers["x-request-id"] in body["id"]
    # a single text is accepted as vLLM does; "model" may name the served model
    assert client.post("/v1/classify", json={"model": "tfidf", "input": "fee of 3 pounds"}).json()["data"][0]["label"] == "fee"


def test_min_confidence_makes_it_abstain(serve_app):
    client, state = serve_app(min_confidence=0.999)
    d = client.post("/v1/classify", json={"input": ["refund please"]}).json()["data"][0]
    assert d["abstain"] is True and state.champion.threshold == 0.999


BAD = [
    ("invalid_json", b'{"input": [', JSON, 400),
    ("wrong_content_type", b'{"input": ["a"]}', {"content-type": "text/plain"}, 415),
    ("invalid_request", b'["a", "b"]', JSON, 400),
    ("missing_input", b'{"text": ["a"]}', JSON, 400),
    ("invalid_input", b'{"input": 5}', JSON, 400),
    ("empty_input", b'{"input": []}', JSON, 400),
    ("invalid_item", b'{"input": ["ok", {"text": "x"}]}', JSON, 422),
    ("empty_text", b'{"input": ["ok", "   "]}', JSON, 422),
    ("text_too_long", b'{"input": ["' + b"x" * 2001 + b'"]}', JSON, 422),
    ("too_many_inputs", b'{"input": [' + b",".join([b'"a"'] * 65) + b"]}", JSON, 413),
    ("model_not_found", b'{"model": "gpt-4", "input": ["a"]}', JSON, 404),
]


@pytest.mark.parametrize("kind, body, headers, status", BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_json_4xx_that_says_what_is_wrong(serve_app, tmp_path, kind, body, headers, status):
    client, _ = serve_app()
    r = client.post("/v1/classify", content=body, headers=headers)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] == kind and error["message"]
    assert client.post("/v1/classify", json={"input": ["refund please"]}).status_code == 200  # still serving
    logged = read_log(db_url(str(tmp_path / "log.db"))).errors
    assert [(e["status"], e["kind"]) for e in logged] == [(status, kind)]


def test_unknown_path_and_method_are_json_errors(serve_app):
    client, _ = serve_app()
    assert client.get("/v2/nothing").json()["error"]["type"] == "not_found"
    assert client.get("/v1/classify").status_code == 405


def test_public_address_needs_an_api_key_and_requests_without_it_get_401(serve_app, monkeypatch, capsys, tmp_path):
    with pytest.raises(UserError, match="--api-key-env"):
        serve_app(host="0.0.0.0")
    with pytest.raises(UserError, match="not set or empty"):
        serve_app(host="0.0.0.0", api_key_env="DC_TEST_KEY")
    secret = "s3cret-key-value"
    monkeypatch.setenv("DC_TEST_KEY", secret)
    client, _ = serve_app(host="0.0.0.0", api_key_env="DC_TEST_KEY")  # the app object only: nothing binds 0.0.0.0
    ask = {"input": ["refund please"]}
    assert client.post("/v1/classify", json=ask).status_code == 401
    assert client.post("/v1/classify", json=ask, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200  # probes stay open
    assert client.post("/v1/classify", json=ask, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert client.post("/v1/classify", json=ask, headers={"X-API-Key": secret}).status_code == 200
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    assert secret.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("log.db*"))


def test_health_models_and_metrics(serve_app):
    client, state = serve_app(shadow="knn")
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json()["status"] == "ready"
    models = client.get("/v1/models").json()["data"]
    assert [(m["id"], m["role"]) for m in models] == [("tfidf", "champion"), ("knn", "shadow")]
    client.post("/v1/classify", json={"input": ["refund please", "fee charged"]})
    client.post("/v1/classify", json={"input": []})
    text = client.get("/metrics").text
    assert 'classifier_requests_total{path="/v1/classify",status="200"} 1.0' in text
    assert 'classifier_errors_total{kind="empty_input"} 1.0' in text
    assert "classifier_request_latency_seconds_bucket" in text and "classifier_batch_size_bucket" in text
    assert 'classifier_predictions_total{label="refund",model="tfidf",role="champion"} 1.0' in text
    assert "classifier_abstained_total" in text or "classifier_abstained" in text


class Slow(ClassifierBase):
    """Sleeps per call (not per text), like a transformer's forward pass; counts its calls."""

    name = "slow"

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on

    def predict(self, texts):
        if self.fail_on in texts:
            raise RuntimeError("model blew up")
        self.calls.append(len(texts))
        time.sleep(0.05)
        return [Prediction("refund", 0.9, probs={"refund": 0.9, "fee": 0.05, "fraud": 0.05}) for _ in texts]


def _served(state, clf):
    from dispute_classifier.serving.state import ServedVersion

    state.champion = ServedVersion("slow", "champion", clf, "slow", "v1", ("refund", "fee", "fraud"), 0.5)
    return state


def test_concurrent_requests_are_micro_batched(serve_app, toy_task, tmp_path):
    from fastapi.testclient import TestClient

    from dispute_classifier.serving.app import create_app
    from dispute_classifier.serving.settings import ServeConfig
    from dispute_classifier.serving.state import ServiceState
    from evaluation.predlog import PredictionLog

    clf = Slow()
    cfg = ServeConfig(model="slow", task=str(toy_task), max_batch=16, max_wait_ms=20)
    state = _served(ServiceState(cfg, None, PredictionLog(db_url(str(tmp_path / "b.db")))), clf)
    codes = []
    with TestClient(create_app(state)) as client:
        threads = [
            threading.Thread(target=lambda: codes.append(client.post("/v1/classify", json={"input": ["a"]}).status_code)) for _ in range(16)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert codes == [200] * 16
    assert sum(clf.calls) == 16 and len(clf.calls) < 8, clf.calls  # far fewer forward passes than requests


def test_a_failing_model_gets_a_500_and_the_service_lives_on(toy_task, tmp_path):
    from fastapi.testclient import TestClient

    from dispute_classifier.serving.app import create_app
    from dispute_classifier.serving.settings import ServeConfig
    from dispute_classifier.serving.state import ServiceState
    from evaluation.predlog import PredictionLog

    state = _served(
        ServiceState(ServeConfig(model="slow", task=str(toy_task)), None, PredictionLog(db_url(str(tmp_path / "f.db")))),
        Slow(fail_on="boom"),
    )
    with TestClient(create_app(state)) as client:
        r = client.post("/v1/classify", json={"input": ["boom"]})
        assert r.status_code == 500 and r.json()["error"]["type"] == "prediction_failed"
        assert client.post("/v1/classify", json={"input": ["fine"]}).status_code == 200


def test_shadow_runs_off_the_request_path_and_both_are_logged(serve_app, tmp_path):
    client, state = serve_app(shadow="knn")
    texts = ["please refund my order", "why this fee", "fraud, not my payment"]
    r = client.post("/v1/classify", json={"input": texts}, headers={"X-Request-ID": "req-1"})
    assert r.json()["model"] == "tfidf"  # the answer is the champion's
    deadline = time.time() + 30
    while time.time() < deadline:
        rows = read_log(db_url(str(tmp_path / "log.db"))).predictions
        if len(rows) == 6:
            break
        time.sleep(0.1)
    rid = r.headers["x-request-id"]  # the server's id is the log key; the client's is kept beside it
    assert rid != "req-1" and r.json()["id"] == f"classify-{rid}"
    by_role = {
        role: [(p["request_id"], p["client_request_id"], p["input_index"], p["model"]) for p in rows if p["role"] == role]
        for role in ("champion", "shadow")
    }
    assert by_role["champion"] == [(rid, "req-1", i, "tfidf") for i in range(3)]
    assert by_role["shadow"] == [(rid, "req-1", i, "knn") for i in range(3)]
    assert all(p["text"] is None and len(p["text_sha256"]) == 64 for p in rows)  # no raw text without --log-text


def test_log_text_stores_the_text(serve_app, tmp_path):
    client, _ = serve_app(log_text=True)
    client.post("/v1/classify", json={"input": ["refund please"]})
    assert read_log(db_url(str(tmp_path / "log.db"))).predictions[0]["text"] == "refund please"


def test_reload_resolves_the_alias_again(serve_app, toy_task, monkeypatch):
    from dispute_classifier.commands.models import (
        AliasConfig,
        RegisterConfig,
        promote,
        register,
    )

    for _ in range(2):
        register(RegisterConfig("tfidf", task=str(toy_task), name="toy-tfidf"))
    promote(AliasConfig("toy-tfidf:1", "champion"))
    monkeypatch.setenv("DC_TEST_KEY", "k")
    client, state = serve_app(model="toy-tfidf@champion", api_key_env="DC_TEST_KEY")
    auth = {"Authorization": "Bearer k"}
    assert client.post("/v1/classify", json={"input": ["refund"]}, headers=auth).json()["version"] == "v1"
    promote(AliasConfig("toy-tfidf:2", "champion", reason="better"))
    assert client.post("/v1/reload").status_code == 401
    assert client.post("/v1/reload", headers=auth).json()["data"][0]["version"] == "v2"
    assert client.post("/v1/classify", json={"model": "toy-tfidf", "input": ["refund"]}, headers=auth).json()["version"] == "v2"


def test_set_reaches_the_served_model_and_a_bad_one_fails_before_loading(serve_app, toy_task, tmp_path):
    """`serve --set KEY=VALUE` configures the served approach as `evaluate --set` does; a fine-tuned
    model's batch size follows --max-batch unless set."""
    from dispute_classifier.commands.serve import build_state, served_settings
    from dispute_classifier.serving.settings import ServeConfig

    _, state = serve_app(set=["tfidf.C=1"])
    assert state.champion.classifier.config.C == 1
    cfg = ServeConfig(model="tfidf", task=str(toy_task), max_batch=16)
    assert served_settings(cfg, "toy").section("finetuned").batch_size == 16
    cfg = ServeConfig(model="tfidf", task=str(toy_task), max_batch=16, set=["finetuned.batch_size=4"])
    assert served_settings(cfg, "toy").section("finetuned").batch_size == 4
    with pytest.raises(UserError, match="tfidf.nosuch"):
        build_state(ServeConfig(model="tfidf", task=str(toy_task), log_db=str(tmp_path / "bad.db"), set=["tfidf.nosuch=1"]))
    assert not (tmp_path / "bad.db").exists()  # refused before the log was opened
