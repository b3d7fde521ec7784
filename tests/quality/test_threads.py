"""The thread count for fine-tuned training and inference on a shared machine."""

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
    monkeypatch.setattr(threads, "load_1min", lambda: 2.6)
    import torch

    before = torch.get_num_threads()
    try:
        assert threads.set_torch_threads() == 1
        assert torch.get_num_threads() == 1
        assert threads.set_torch_threads(3) == 3
    finally:
        torch.set_num_threads(before)
