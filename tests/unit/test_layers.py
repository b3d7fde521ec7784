"""The layers run one way (import-linter's contract) and a new approach is one module."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dispute_classifier.commands.cli import main
from dispute_classifier.core.plugins import Approach
from dispute_classifier.core.types import ClassifierBase, Prediction
from evaluation.runs import scan_runs
from tests.conftest import REPO

PACKAGES = ("dispute_classifier", "baselines", "evaluation", "finetune", "dashboard")


def duplicate_basenames(root: Path) -> dict[str, list[str]]:
    """Module file names used more than once across the project's packages. ``__init__.py`` and
    the dashboard's page modules (named for the page they draw) are exempt."""
    seen: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if path.name == "__init__.py" or rel.parts[:2] == ("dashboard", "views"):
                continue
            seen.setdefault(path.name, []).append(str(rel))
    return {name: paths for name, paths in seen.items() if len(paths) > 1}


def test_no_two_modules_share_a_name(tmp_path):
    assert duplicate_basenames(REPO) == {}
    # and the check sees one when it is there
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "finetune" / "registry.py").write_text("")
    (tmp_path / "dispute_classifier" / "core" / "registry.py").write_text("")
    assert duplicate_basenames(tmp_path) == {"registry.py": ["dispute_classifier/core/registry.py", "finetune/registry.py"]}


def _lint(root: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint)], cwd=root, capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    )


def test_layer_contract_holds_and_fails_on_a_planted_back_edge(tmp_path):
    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    clean = _lint(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    core = tmp_path / "dispute_classifier" / "core" / "types.py"
    core.write_text(
        core.read_text() + "\n\ndef _back_edge():\n    from evaluation import decision  # noqa: F401  (a core module reaching up)\n"
    )
    broken = _lint(tmp_path)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout
    assert "dispute_classifier.core.types -> evaluation.decision" in broken.stdout


@dataclass
class ShoutConfig:
    """Settings of the toy approach."""

    label: str = "refund"
    """The one label it always answers."""


class Shout(ClassifierBase):
    """Always the same label: the smallest approach there is."""

    name = "shout"

    def __init__(self, cfg: ShoutConfig) -> None:
        self.cfg = cfg

    def predict(self, texts):
        return [Prediction(self.cfg.label, 1.0) for _ in texts]


def test_an_approach_registered_from_outside_the_package_runs_everywhere(toy_task, tmp_path, register_approach, capsys):
    register_approach(Approach("shout", "always one label", "classical", lambda cfg: Shout(cfg.section("shout")), {"shout": ShoutConfig}))
    runs = tmp_path / "runs"
    code = main(
        ["evaluate", "--task", str(toy_task), "--approach", "shout", "--set", "shout.label=fee", "--runs-dir", str(runs), "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    (run,), _ = scan_runs(runs)
    assert run.meta.category == "classical" and run.meta.config == {"shout": {"label": "fee"}}
    assert run.metrics["accuracy"] == 2 / 6  # the toy test split has two fee rows
    from dispute_classifier.commands.cli import build_parser

    assert "shout.label" in build_parser()._subparsers._group_actions[0].choices["evaluate"].epilog
