"""Progress bars that read well in a terminal and in a log.

In a terminal a tqdm bar redraws one line. Without one (``make run`` in CI, output piped to a
file) every redraw of tqdm is kept, so a log shows each stage's bar several times over; there
`progress_bar` writes nothing while it runs and one line when it closes, with the count, the
time and the rate. tqdm is imported only when a bar is drawn in a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any


class LineBar:
    """The bar of a run without a terminal: silent until `close`, then one line."""

    def __init__(self, total: int, desc: str, unit: str, file: IO[str], initial: int = 0) -> None:
        self.total, self.desc, self.unit, self.file = total, desc, unit, file
        self.n = self._initial = initial  # a resumed job starts at the rows already done
        self._started = time.perf_counter()
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        seconds = time.perf_counter() - self._started
        done = self.n - self._initial
        rate = f", {done / seconds:,.1f} {self.unit}/s" if seconds > 0 and done else ""
        print(f"{self.desc}: {self.n:,}/{self.total:,} {self.unit} in {seconds:.1f} s{rate}", file=self.file, flush=True)

    def __enter__(self) -> "LineBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _NoBar:
    """No progress at all (``--quiet``)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> "_NoBar":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "it", enabled: bool = True, file: IO[str] | None = None, **tqdm_args: Any) -> Any:
    """A context-managed bar with ``update(n)`` and ``close()``: tqdm in a terminal, one line
    at the end without one, nothing when not ``enabled``. ``file`` defaults to stderr; other
    keywords go to tqdm (``initial`` counts for the line too)."""
    stream = file if file is not None else sys.stderr
    if not enabled:
        return _NoBar()
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return LineBar(total, desc, unit, stream, initial=tqdm_args.get("initial", 0))
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=stream, **tqdm_args)
