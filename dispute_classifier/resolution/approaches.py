"""Load every approach into the registry: the built-in ones and any installed plugin.

The built-ins register themselves in the modules that implement them (`baselines.classical`,
`baselines.prompted`, `finetune.classifier`); importing those modules here, at the top of the
layers, is what makes them known. A package outside this project adds an approach with a
``dispute_classifier.approaches`` entry point naming the module that registers it.
"""

from __future__ import annotations

import importlib.metadata
import sys

import baselines.classical  # noqa: F401  (registers tfidf, embedding, knn)
import baselines.prompted  # noqa: F401  (registers zero-shot, prompt, few-shot, rag)
import finetune.classifier  # noqa: F401  (registers finetuned)
import finetune.encoder  # noqa: F401  (registers finetuned-encoder)
from dispute_classifier.core import plugins

ENTRY_POINT_GROUP = "dispute_classifier.approaches"
_plugins_loaded = False


def load_approaches() -> dict[str, plugins.Approach]:
    """Every registered approach, after loading the plugins named by entry points (once)."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                print(f"warning: approach plugin '{ep.name}' ({ep.value}) failed to load: {exc}", file=sys.stderr)
    return plugins.approaches()
