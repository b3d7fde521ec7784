"""Exclusive file locks (POSIX ``flock``): the kernel releases them when the holder dies, even
by SIGKILL, so a killed process never leaves a stale lock behind.

The batch job's lock (`dispute_classifier.batch.job.JobLock`) refuses at once when the
lock is held; the model registry waits for it (`exclusive`). A waited-for lock file is never
deleted: a process waiting on the old file and one locking a new file at the same path would
both think they hold it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from dispute_classifier.core.errors import UserError


@contextlib.contextmanager
def exclusive(path: Path, wait: bool = True, busy: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block. With
    ``wait=False`` a held lock raises `UserError` with ``busy`` (or a default) at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl  # POSIX only
        except ImportError:  # not POSIX: run unlocked
            yield
            return
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(busy or f"{path} is locked by another process; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
