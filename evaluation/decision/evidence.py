"""The paired evidence between two runs: non-inferiority, inferiority and superiority tests.

Two runs are compared on the examples both scored. With ``b`` examples only the challenger
got right and ``c`` only the incumbent got right, out of ``n`` shared, the accuracy
difference Δ = (b − c) / n gets **Tango's score interval** at 1 − 2·alpha (with a continuity
correction of half a pair; `evaluation.stats`). Its bounds are one-sided (1 − alpha) bounds,
so each status is a one-sided score test at level alpha:

- **adequate** (non-inferiority): the lower bound is above −margin, on at least
  ``min_shared_examples`` shared examples;
- **worse** (inferiority): the upper bound is below −margin — at any number of examples;
- **inconclusive**: neither, with the shared examples that would settle it at ``power``.

Superiority (the fine-tuning question) asks whether the lower bound clears a required gain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any, Callable

from evaluation.compare import paired_test
from evaluation.decision.assumptions import VerdictConfig
from evaluation.runs import RunRecord
from evaluation.stats import paired_sample_size, tango_interval

NEEDED_CAP = 100_000
"""Sample sizes above this are reported as "more than 100,000" (no realistic test set)."""


class Status(str, Enum):
    """Where one option stands against the most accurate one."""

    REFERENCE = "reference"
    ADEQUATE = "adequate"
    WORSE = "worse"
    INCONCLUSIVE = "inconclusive"
    NOT_COMPARABLE = "not comparable"


@dataclass
class Evidence:
    """The paired comparison of a challenger run with an incumbent run."""

    challenger: str
    """The challenger's display label."""
    incumbent: str
    challenger_run_id: str
    incumbent_run_id: str
    status: Status
    reason: str
    n_shared: int = 0
    delta_points: float | None = None
    delta_ci95_points: tuple[float, float] | None = None
    """Tango's score interval of the difference at 1 − 2·alpha, in points."""
    p_value: float | None = None
    """Two-sided exact McNemar p-value (reported, not used by the rule)."""
    challenger_only: int = 0
    incumbent_only: int = 0
    n_needed: float | None = None
    """Shared examples that would settle an inconclusive comparison at the configured power (inf: none would)."""

    @property
    def discordant_rate(self) -> float:
        return (self.challenger_only + self.incumbent_only) / self.n_shared if self.n_shared else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["n_needed"] = None if self.n_needed is None or math.isinf(self.n_needed) else int(self.n_needed)
        return out


def needed_text(n: float | None, split_size: int | None) -> str:
    """'about 1,930' — capped, and saying when the data cannot settle it."""
    if n is None or math.isinf(n):
        return "no number of shared examples would settle it (the difference sits on the margin)"
    if n > NEEDED_CAP:
        return f"more than {NEEDED_CAP:,} shared examples would be needed"
    text = f"about {math.ceil(n):,} shared examples would settle it"
    if split_size is not None and n > split_size:
        text += f" — more than this split holds ({split_size:,}), so this data cannot"
    return text


def _settling_n(delta: float, discordant: float, cfg: VerdictConfig) -> float:
    """Examples at which the test in the direction the data points settles with ``cfg.power``;
    adequacy also needs ``min_shared_examples``."""
    margin = cfg.margin_points / 100
    n = paired_sample_size(delta, discordant, -margin, cfg.alpha, cfg.power)
    return max(n, cfg.min_shared_examples) if delta > -margin else n


def paired(
    challenger: RunRecord, incumbent: RunRecord, cfg: VerdictConfig, *, split_size: int | None = None, exclude: frozenset[str] = frozenset()
) -> Evidence:
    """The evidence of ``challenger`` against ``incumbent`` on the examples both scored
    (less ``exclude``, e.g. the near-duplicates of training texts)."""
    base = dict(
        challenger=challenger.label, incumbent=incumbent.label, challenger_run_id=challenger.run_id, incumbent_run_id=incumbent.run_id
    )
    test = paired_test(challenger, incumbent, shared_only=True, exclude=exclude)
    if "refused" in test:
        return Evidence(**base, status=Status.NOT_COMPARABLE, reason=test["refused"])
    n, b, c = test["n_shared"], test["a_only"], test["b_only"]
    lo, hi = tango_interval(b, c, n, level=cfg.level)
    delta = (b - c) / n
    margin = cfg.margin_points / 100
    ev = Evidence(
        **base,
        status=Status.INCONCLUSIVE,
        reason="",
        n_shared=n,
        delta_points=100 * delta,
        delta_ci95_points=(100 * lo, 100 * hi),
        p_value=test["p_value"],
        challenger_only=b,
        incumbent_only=c,
    )
    shown = f"{100 * delta:+.2f} points ({100 * cfg.level:g} % CI {100 * lo:+.2f} to {100 * hi:+.2f}, {b}/{c} discordant on {n})"
    if hi < -margin:
        ev.status, ev.reason = Status.WORSE, f"{shown} is below −{cfg.margin_points:g}: worse (inferiority shown at level {cfg.alpha:g})"
        return ev
    if lo > -margin and n >= cfg.min_shared_examples:
        ev.status, ev.reason = Status.ADEQUATE, f"{shown} stays above −{cfg.margin_points:g}: non-inferior at level {cfg.alpha:g}"
        return ev
    ev.n_needed = _settling_n(delta, max(ev.discordant_rate, 1 / n), cfg)
    if lo > -margin:
        ev.reason = f"{shown} stays above −{cfg.margin_points:g}, but on fewer than {cfg.min_shared_examples} shared examples; {needed_text(ev.n_needed, split_size)}"
    else:
        ev.reason = f"{shown} straddles −{cfg.margin_points:g}; {needed_text(ev.n_needed, split_size)}"
    return ev


def superiority(ev: Evidence, gain_points: float) -> bool | None:
    """Whether the challenger is shown more accurate by at least ``gain_points`` (its interval's
    lower bound clears it: a one-sided score test), False when such a gain is excluded (the upper
    bound is below it), None while neither is shown."""
    if ev.delta_ci95_points is None:
        return None
    lo, hi = ev.delta_ci95_points
    if lo > gain_points:
        return True
    if hi < gain_points:
        return False
    return None


def best_run(runs: list[RunRecord], accuracy: Callable[[RunRecord], float] | None = None) -> RunRecord | None:
    """The most accurate run (macro-F1 breaks ties), or None."""
    acc = accuracy or (lambda r: r.metrics["accuracy"])
    return max(runs, key=lambda r: (acc(r), r.metrics["macro_f1"]), default=None)
