"""What the training script records and adapts while it runs: the two losses on the model card,
named, and the thread count chosen again at epoch ends and checkpoints."""

from types import SimpleNamespace

import pytest


def test_card_reports_mean_and_last_logged_loss_by_name():
    from finetune.train import loss_summary

    log = [{"loss": 3.1, "step": 5}, {"loss": 1.62, "step": 10, "learning_rate": 1e-4}, {"train_loss": 2.44, "step": 10}]
    summary = loss_summary(log, 2.44)
    assert summary == {"mean_train_loss": 2.44, "last_logged_loss": 1.62, "last_logged_step": 10}
    assert loss_summary([], 0.5)["last_logged_loss"] is None  # nothing logged: said, not invented


def test_threads_are_chosen_again_when_cores_free_up(monkeypatch):
    """A run that started beside a busy job (1 thread) goes back to 2 threads at its next
    checkpoint once that job has ended; train.threads pins the count."""
    import torch

    import dispute_classifier.core.threads as threads
    from finetune.train import threads_callback

    busy = iter([1.0, 0.0, 0.0])
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_elsewhere", lambda window_s=0.5: next(busy))
    original = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        callback = threads_callback(None)
        callback.on_save(None, SimpleNamespace(global_step=50), None)
        assert torch.get_num_threads() == 1
        callback.on_epoch_end(None, SimpleNamespace(global_step=149), None)
        assert torch.get_num_threads() == 2
        callback.on_save(None, SimpleNamespace(global_step=150), None)  # unchanged: not listed again
        assert callback.changes == [(50, 2, 1), (149, 1, 2)]

        monkeypatch.setattr(threads, "busy_elsewhere", lambda window_s=0.5: pytest.fail("a pinned count samples nothing"))
        pinned = threads_callback(1)
        pinned.on_epoch_end(None, SimpleNamespace(global_step=1), None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(original)
