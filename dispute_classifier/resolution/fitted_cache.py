"""The fitted-model cache: approaches whose classifier sets ``cache_fitted = True`` (the classical
baselines) are pickled under ``<cache>/models/`` so the next ``classify`` or ``serve`` loads them
instead of fitting again. The key covers everything the fitted model depends on: the task's data
hash, the approach, its resolved settings, the versions of the libraries that pickle it and the
project's code version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from pathlib import Path

from dispute_classifier.core.runconfig import RunConfig
from dispute_classifier.core.task import cache_dir
from dispute_classifier.core.types import Classifier
from evaluation.runs import code_version, config_hash, package_versions

_PICKLE_PACKAGES = ("scikit-learn", "numpy", "scipy", "sentence-transformers", "joblib")
"""Libraries whose version changes can break or alter an unpickled model."""


def fitted_key(approach: str, cfg: RunConfig, data_hash: str) -> str:
    """Cache key of a fitted approach: data, approach, resolved settings, library versions and
    the project's code version (a fix to an approach must not serve the old fitted model)."""
    versions = {k: v for k, v in package_versions().items() if k in _PICKLE_PACKAGES}
    for name in _PICKLE_PACKAGES:  # not all are tracked by the run records
        if name not in versions:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                pass
    payload = {
        "data": data_hash,
        "approach": approach,
        "config": config_hash(cfg.approach_settings()),
        "versions": versions,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fitted_path(task: str, approach: str, key: str) -> Path:
    """Where the fitted approach with cache key ``key`` is pickled."""
    return cache_dir() / "models" / f"{task}-{approach}-{key}.joblib"


def load_cached(path: Path) -> Classifier | None:
    import joblib

    try:
        return joblib.load(path)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign pickle: fit again rather than fail
        print(f"warning: fitted-model cache {path} is unreadable ({exc}); fitting again", file=sys.stderr)
        return None


def save_cached(clf: Classifier, path: Path) -> None:
    import joblib

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        joblib.dump(clf, tmp)
        os.replace(tmp, path)  # readers never see half a model
    finally:
        Path(tmp).unlink(missing_ok=True)
