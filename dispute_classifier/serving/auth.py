"""The API key: where it comes from, and how a request's key is compared with it.

A key read from a file or a secret mount usually ends in a newline. It is stripped when read
(with a warning, so the operator knows the variable held whitespace) and the client's key is
stripped too, so both sides compare the same characters, in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import sys
from typing import Mapping

from dispute_classifier.core.errors import UserError
from dispute_classifier.serving.settings import ServeConfig

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths that answer without an API key (probes)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key(cfg: ServeConfig, warn: bool = True) -> str | None:
    """The key requests must carry (None: no key), refusing a public bind without one."""
    if cfg.api_key_env is None:
        if not is_loopback(cfg.host):
            raise UserError(
                f"binding {cfg.host} exposes the service beyond this machine: set --api-key-env NAME (an environment variable holding the key) or use --host 127.0.0.1"
            )
        return None
    raw = os.environ.get(cfg.api_key_env, "")
    key = raw.strip()
    if not key:
        raise UserError(f"--api-key-env {cfg.api_key_env}: that environment variable is not set or empty; export it with the key first")
    if key != raw and warn:
        print(
            f"warning: ${cfg.api_key_env} has leading or trailing whitespace (a newline from a file?); it was stripped, clients send the key without it",
            file=sys.stderr,
            flush=True,
        )
    return key


def authorized(headers: Mapping[str, str], key: str) -> bool:
    """Whether a request's ``Authorization: Bearer KEY`` (or ``X-API-Key``) header carries ``key``."""
    given = headers.get("x-api-key") or ""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        given = auth[7:]
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), key.encode("utf-8"))
