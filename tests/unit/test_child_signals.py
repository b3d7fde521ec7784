"""The dashboard's child server (Streamlit) ends with its parent on SIGTERM as on Ctrl-C:
`run_forwarding_signals` forwards the signal and waits, so no child is left orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

PARENT = """
import sys
from dispute_classifier.commands.cli import run_forwarding_signals
child = [sys.executable, "-c", "import os, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)".replace("sys.argv[1]", repr(sys.argv[1]))]
sys.exit(run_forwarding_signals(child, {}))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_child_server_ends_with_its_parent(tmp_path, sig):
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 30
        while not (pid_file.is_file() and pid_file.read_text()) and time.time() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.send_signal(sig)
        parent.wait(timeout=30)
        deadline = time.time() + 10
        while _alive(child) and time.time() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
