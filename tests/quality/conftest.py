"""A small three-label task with planted label errors, written inside the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import task_folder, write_task

PHRASES = {
    "refund": ["please refund my order", "I want my money back for order", "return the money for purchase", "refund the payment of"],
    "fee": ["why was I charged a fee of", "what is this extra fee of", "there is a commission charge of", "fee on my statement of"],
    "fraud": ["I did not make payment", "someone stole my card and paid", "unknown transaction I never made", "fraudulent charge number"],
}
PLANTED = {5: "fee", 30: "fraud", 47: "refund"}
"""Row index in the training CSV → the wrong label written there (the truth is its phrase's)."""


def rows() -> list[tuple[str, str]]:
    out = []
    for label, phrases in PHRASES.items():
        out += [(f"{phrases[i % 4]} {i}", label) for i in range(20)]
    return [(text, PLANTED.get(i, label)) for i, (text, label) in enumerate(out)]


@pytest.fixture
def noisy_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Task YAML of 60 training rows (3 with a planted wrong label) and 9 test rows."""
    test = [(f"{phrases[i]} {100 + i}", label) for label, phrases in PHRASES.items() for i in range(3)]
    return write_task(task_folder(tmp_path, monkeypatch), train=rows(), test=test)
