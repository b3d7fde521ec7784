"""Checks on the paths a command will write, made before any slow work starts."""

from __future__ import annotations

import os
from pathlib import Path

from dispute_classifier.core.errors import UserError


def check_writable_file(path: Path, flag: str) -> None:
    """Refuse a file path the process cannot create or write, before any model loads
    (otherwise the failure is a traceback minutes later)."""
    path = path.expanduser()
    if path.is_dir():
        raise UserError(f"{flag} {path}: that is a folder; name a file inside it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:  # the folders that would be created
        parent = parent.parent
    target = path if path.exists() else parent
    if not parent.is_dir() or not os.access(target, os.W_OK) or (target is parent and not os.access(parent, os.X_OK)):
        raise UserError(f"{flag} {path}: cannot write there (permission denied or not a folder); pick a writable path")
