"""How many CPU threads torch should use on a machine other jobs share.

torch's default is one thread per core. On a busy machine that is a trap: OpenMP threads spin
waiting for cores that other processes hold, and a step can take five times as long as with
fewer threads (docs/fine-tuning/results.md, "Speed and what limits accuracy"). The default
here is the cores really free: the cores this process may run on, less what other processes
are using right now. "Right now" is
a short sample of /proc/stat with this process's own CPU time taken out, not the load
average: the load average still counts a job that has just finished (or this process's own
previous trial in a sweep) for a minute or more, and would halve the threads of the next one.
"""

from __future__ import annotations

import os
import time


def choose_threads(cores: int, load_1min: float, requested: int | None = None) -> int:
    """Threads to use: ``requested`` when given, else the ``cores`` this process may use less
    the cores busy elsewhere (``load_1min``: `busy_elsewhere`, rounded), never fewer than 1 nor
    more than ``cores``."""
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


def _cpu_busy_seconds() -> float | None:
    """CPU seconds all processes have spent busy since boot (/proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def busy_elsewhere(window_s: float = 0.5) -> float:
    """Cores other processes keep busy: sampled over ``window_s`` from /proc/stat, less this
    process's own CPU time; the 1-minute load average where /proc/stat is missing."""
    start_busy, start_own, start = _cpu_busy_seconds(), time.process_time(), time.monotonic()
    if start_busy is None:
        return load_1min()
    time.sleep(window_s)
    end_busy = _cpu_busy_seconds()
    own = time.process_time() - start_own
    elapsed = time.monotonic() - start
    return max(0.0, ((end_busy or start_busy) - start_busy - own) / elapsed)


def set_torch_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads to ``requested`` (a ``threads`` setting) or, when it is None,
    to the cores really free now; returns the number set."""
    import torch

    threads = choose_threads(usable_cores(), busy_elsewhere() if not requested else 0.0, requested)
    torch.set_num_threads(threads)
    return threads
