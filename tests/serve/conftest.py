"""Fixtures for the service tests: the toy task served in-process (FastAPI's TestClient, no
network) with the real tfidf approach, and helpers to start the real command on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytest.importorskip("fastapi")
pytest.importorskip("sqlalchemy")
pytest.importorskip("prometheus_client")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def models_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "models"
    monkeypatch.setenv("DISPUTE_CLASSIFIER_MODELS", str(root))
    return root


@pytest.fixture
def serve_app(toy_task, tmp_path, models_root):
    """``serve_app(**settings)`` → (TestClient entered, state); closed after the test."""
    from fastapi.testclient import TestClient

    from dispute_classifier.commands.serve import build_state
    from dispute_classifier.serving.app import create_app
    from dispute_classifier.serving.settings import ServeConfig

    clients = []

    def make(**settings):
        settings = {"model": "tfidf", "task": str(toy_task), "log_db": str(tmp_path / "log.db"), **settings}
        state = build_state(ServeConfig(**settings))
        client = TestClient(create_app(state))
        client.__enter__()
        clients.append(client)
        return client, state

    yield make
    for client in clients:
        client.__exit__(None, None, None)


class Server:
    """`dispute-classifier serve` as a subprocess on a free loopback port."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.out = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispute_classifier.commands.cli", "serve", *args, "--port", str(self.port)],
            env={"OMP_NUM_THREADS": "1", **env, "PYTHONPATH": str(REPO)},
            stdout=self.out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"serve not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.out.close()


@pytest.fixture
def start_server(toy_task, tmp_path, models_root):
    """``start_server(*args)`` → a ready `Server` serving the toy task; killed after the test."""
    servers = []

    def start(*args: str, ready: bool = True) -> Server:
        server = Server(["--task", str(toy_task), *args], dict(os.environ), tmp_path / f"serve-{len(servers)}.log")
        servers.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()
