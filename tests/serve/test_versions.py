"""A served version is one object carried with each job: under concurrent requests and
repeated reloads, every response names the version that predicted it, and a reload that
cannot load the new version keeps the old one and says so."""

from __future__ import annotations

import threading
import time

import pytest

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.types import ClassifierBase, Prediction
from evaluation.predlog import PredictionLog, db_url

LABELS = ("refund", "fee", "fraud")


class Marked(ClassifierBase):
    """Predicts one fixed label (its version's mark) and sleeps per call, so micro-batches
    are in flight while a reload swaps the champion."""

    name = "marked"

    def __init__(self, label: str) -> None:
        self.label = label

    def predict(self, texts):
        time.sleep(0.01)
        return [Prediction(self.label, 0.9, probs={lab: (0.9 if lab == self.label else 0.05) for lab in LABELS}) for _ in texts]


def _version(n: int, role: str = "champion"):
    from dispute_classifier.serving.state import ServedVersion

    return ServedVersion("marked@champion", role, Marked(LABELS[n % 3]), "marked", f"v{n}", LABELS, 0.5)


@pytest.fixture
def reloadable(toy_task, tmp_path, monkeypatch):
    """An app whose loader serves version ``current[0]`` (the 'alias'), with an API key."""
    from fastapi.testclient import TestClient

    from dispute_classifier.serving.app import create_app
    from dispute_classifier.serving.settings import ServeConfig
    from dispute_classifier.serving.state import ServiceState

    monkeypatch.setenv("DC_TEST_KEY", "k")
    current = [1]
    broken: set[int] = set()

    def loader(ref, role):
        if current[0] in broken:
            raise UserError(f"model '{ref}' cannot be loaded: v{current[0]}/model.joblib is unreadable")
        return _version(current[0], role)

    cfg = ServeConfig(model="marked@champion", task=str(toy_task), api_key_env="DC_TEST_KEY", max_batch=8, max_wait_ms=2)
    state = ServiceState(cfg, _version(1), PredictionLog(db_url(str(tmp_path / "v.db"))), key="k", loader=loader)
    with TestClient(create_app(state)) as client:
        yield client, state, current, broken


AUTH = {"Authorization": "Bearer k"}


def test_every_response_names_the_version_that_predicted_it_across_reloads(reloadable):
    client, state, current, _ = reloadable
    responses, stop = [], threading.Event()

    def ask():
        while not stop.is_set():
            r = client.post("/v1/classify", json={"input": ["refund please", "a fee"]}, headers=AUTH)
            responses.append(r)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for n in range(2, 8):  # six promote-and-reload cycles while requests are in flight
        time.sleep(0.15)
        current[0] = n
        r = client.post("/v1/reload", headers=AUTH)
        assert r.status_code == 200 and r.json()["data"][0]["version"] == f"v{n}"
    time.sleep(0.15)
    stop.set()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in responses)
    seen = {r.json()["version"] for r in responses}
    assert len(seen) >= 5, seen  # the requests really straddled the reloads
    wrong = [r.json() for r in responses if any(d["label"] != LABELS[int(r.json()["version"][1:]) % 3] for d in r.json()["data"])]
    assert not wrong, f"{len(wrong)} of {len(responses)} responses name another version than the one that predicted them"


def test_a_failed_reload_answers_409_keeps_the_old_version_and_shows_the_split(reloadable, monkeypatch):
    client, state, current, broken = reloadable
    from dispute_classifier.serving import app as app_module

    monkeypatch.setattr(app_module, "alias_version", lambda ref: f"v{current[0]}")  # what the registry's alias says
    current[0] = 3
    broken.add(3)
    r = client.post("/v1/reload", headers=AUTH)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (
        error["type"] == "reload_failed" and "unreadable" in error["message"] and "still serving champion marked (v1)" in error["message"]
    )
    assert client.post("/v1/classify", json={"input": ["x"]}, headers=AUTH).json()["version"] == "v1"
    model = client.get("/v1/models", headers=AUTH).json()
    assert model["data"][0]["version"] == "v1" and model["data"][0]["alias_version"] == "v3" and model["data"][0]["in_sync"] is False
    assert "unreadable" in model["last_reload_error"]
    ready = client.get("/readyz").json()
    assert (ready["version"], ready["alias_version"], ready["in_sync"]) == ("v1", "v3", False)
    broken.clear()  # fixed: the next reload catches up
    assert client.post("/v1/reload", headers=AUTH).json()["data"][0]["version"] == "v3"
    assert client.get("/readyz").json()["in_sync"] is True and client.get("/readyz").json()["last_reload_error"] is None
