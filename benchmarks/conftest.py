"""Benchmarks share the tests' fixtures (tiny models built from a config)."""

from tests.conftest import banking77_dir, tiny_llama  # noqa: F401
