"""The thread count for fine-tuned training and inference on a shared machine."""

import time

import pytest

from dispute_classifier.core import threads


def test_idle_machine_uses_every_core():
    assert threads.choose_threads(cores=2, load_1min=0.2) == 2
    assert threads.choose_threads(cores=8, load_1min=0.0) == 8


def test_busy_cores_are_left_to_their_jobs():
    assert threads.choose_threads(cores=2, load_1min=1.1) == 1
    assert threads.choose_threads(cores=8, load_1min=3.4) == 5


def test_never_below_one_thread_even_when_overloaded():
    assert threads.choose_threads(cores=2, load_1min=5.0) == 1
    assert threads.choose_threads(cores=0, load_1min=0.0) == 1


def test_a_threads_setting_wins():
    assert threads.choose_threads(cores=2, load_1min=5.0, requested=2) == 2
    assert threads.choose_threads(cores=2, load_1min=0.0, requested=1) == 1


def test_reads_this_machine(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: 2.6)
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.set_torch_threads() == 1
        assert torch.get_num_threads() == 1
        assert threads.set_torch_threads(3) == 3
    finally:
        torch.set_num_threads(before)


def test_counts_other_processes_and_not_this_one():
    """A spinning child process is busy elsewhere; a thread of this process spinning is not
    (the load average would count both, and a sweep's own last trial, for a minute)."""
    import subprocess
    import sys
    import threading

    if threads._cpu_busy_seconds() is None:
        pytest.skip("no /proc/stat on this platform")
    if threads.usable_cores() < 2 or threads.busy_elsewhere(1.0) > 0.4:
        pytest.skip("needs two cores with at most one busy: other jobs already use this machine")
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads.busy_elsewhere(1.0) > 0.6
    finally:
        child.kill()
        child.wait()
    stop = threading.Event()
    spinner = threading.Thread(target=lambda: [None for _ in iter(lambda: stop.is_set(), True)])
    spinner.start()
    try:
        own = threads.busy_elsewhere(1.0)
    finally:
        stop.set()
        spinner.join()
    assert own < 0.6
