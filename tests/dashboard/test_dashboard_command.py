"""The `dashboard` command: it refuses a busy port before printing an address, and a SIGTERM
to it stops Streamlit too (forwarded, waited for), so nothing is left orphaned."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from tests.conftest import REPO  # noqa: E402


def test_busy_port_is_refused_before_the_address_is_printed(tmp_path, capsys):
    from dispute_classifier.commands.cli import main

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        rc = main(["dashboard", "--port", str(s.getsockname()[1]), "--runs-dir", str(tmp_path), "--reports-dir", str(tmp_path)])
    out = capsys.readouterr()
    assert rc == 2 and "pick another with --port" in out.err and "http://" not in out.out


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def test_sigterm_stops_streamlit_too(tmp_path):
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the Streamlit child")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}
    log = open(tmp_path / "dashboard.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dispute_classifier.commands.cli",
            "dashboard",
            "--port",
            str(port),
            "--runs-dir",
            str(tmp_path),
            "--reports-dir",
            str(tmp_path),
            "--log-db",
            str(tmp_path / "log.db"),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "dashboard.log").read_text()
            time.sleep(0.5)
        children = _children(proc.pid)
        assert children, "streamlit runs as a child process"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        time.sleep(0.5)
        assert all(not Path(f"/proc/{c}").exists() or "Z" in Path(f"/proc/{c}/stat").read_text().split(")")[1][:3] for c in children)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
