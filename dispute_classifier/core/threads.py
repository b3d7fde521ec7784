"""How many CPU threads torch should use on a machine other jobs share.

torch's default is one thread per core. On a busy machine that is a trap: OpenMP threads spin
waiting for cores that other processes hold, and a step can take five times as long as with
fewer threads (README, "CPU throughput"). The default here is the cores really free: the
cores this process may run on, less the load the last minute put on them.
"""

from __future__ import annotations

import os


def choose_threads(cores: int, load_1min: float, requested: int | None = None) -> int:
    """Threads to use: ``requested`` when given, else the ``cores`` this process may use less
    the 1-minute load average (rounded), never fewer than 1 nor more than ``cores``."""
    if requested:
        return max(1, requested)
    cores = max(1, cores)
    return min(cores, max(1, cores - round(load_1min)))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; all cores where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def load_1min() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def set_torch_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads to ``requested`` (a ``threads`` setting) or, when it is None,
    to the cores really free now; returns the number set."""
    import torch

    threads = choose_threads(usable_cores(), load_1min(), requested)
    torch.set_num_threads(threads)
    return threads
