"""The statistics the decision stands on, each by its published name.

- `wilson_interval`: the Wilson score interval of one accuracy (never 100–100 at 48/48).
- `tango_interval` / `tango_score`: Tango's (1998) score interval and score statistic for the
  difference of two paired proportions, with a continuity correction of half a pair — two models scored on the same examples. It uses only
  the discordant pairs (``b``: the first right where the second is wrong, ``c``: the reverse)
  and the number of examples, holds its level at small counts and zero disagreements (where the
  percentile bootstrap collapses to a point), and inverts to the one-sided score tests of
  non-inferiority and superiority (Nam 1997; Tango 1998) that the rule uses. Without the
  correction its coverage dips to 92.8 % at a handful of disagreements (simulated in
  tests/stats); with it every cell of the grid holds 94.5 %+.
- `paired_sample_size`: examples needed for that one-sided score test to reject at a stated
  power: the score-test sample size for paired proportions (Nam 1997), solved with the same
  continuity correction: ``(Δ−δ₀)·n − ½ = z₁₋α·√(n·V₀) + z_power·√(n·(ψ − Δ²))``, with ψ the
  disagreement rate and V₀ the variance under the null restricted maximum likelihood.

Everything is vectorised over NumPy arrays, so the simulation tests can check the level of the
rule over thousands of simulated comparisons at once.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_STANDARD_NORMAL = NormalDist()
CONTINUITY = 0.5
"""Continuity correction of the paired score statistic, in discordant pairs."""


def z_quantile(p: float) -> float:
    """The standard normal quantile at ``p`` (e.g. 0.975 → 1.96)."""
    return _STANDARD_NORMAL.inv_cdf(p)


def wilson_interval(successes: int | np.ndarray, n: int | np.ndarray, level: float = 0.95) -> tuple:
    """Wilson score interval of a proportion ``successes / n`` at two-sided ``level``.

    At 48 of 48 the lower bound is 92.6 %, not 100 %; at n = 0 the interval is (0, 1): nothing
    is known. Works on scalars and on arrays.
    """
    z = z_quantile(0.5 + level / 2)
    k, m = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    safe = np.maximum(m, 1.0)
    p = k / safe
    denom = 1 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denom
    lo = np.where(m > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(m > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    if np.ndim(lo) == 0:
        return float(lo), float(hi)
    return lo, hi


def _restricted_q(b, c, n, d):
    """Restricted ML estimate of the second-right-only cell probability under p₁ − p₂ = d."""
    a2 = 2 * n
    b2 = -b - c + (2 * n - b + c) * d
    c2 = -c * d * (1 - d)
    return (np.sqrt(np.maximum(b2 * b2 - 4 * a2 * c2, 0.0)) - b2) / (2 * a2)


def tango_score(b: np.ndarray | int, c: np.ndarray | int, n: np.ndarray | int, delta: np.ndarray | float) -> np.ndarray:
    """Tango's score statistic for H0: p₁ − p₂ = ``delta`` on ``n`` paired examples with ``b``
    (first right only) and ``c`` (second right only) discordant pairs.

    ``Z = (b − c − n·δ ∓ ½) / √(n·(2·q̂ + δ·(1 − δ)))`` with ``q̂`` the restricted
    maximum-likelihood estimate of the second-right-only cell under H0 and the numerator moved
    half a pair towards 0 (`CONTINUITY`). Large positive Z: the first is better than ``delta``;
    Z is decreasing in ``delta``.
    """
    b, c, n = (np.asarray(x, dtype=np.float64) for x in (b, c, n))
    d = np.asarray(delta, dtype=np.float64)
    var = n * (2 * _restricted_q(b, c, n, d) + d * (1 - d))
    num = b - c - n * d
    num = np.sign(num) * np.maximum(np.abs(num) - CONTINUITY, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(var > 1e-15, num / np.sqrt(np.maximum(var, 1e-300)), np.sign(num) * np.inf)
    return np.where(num == 0, 0.0, z)


def _invert(b: np.ndarray, c: np.ndarray, n: np.ndarray, z: float, upper: bool, iterations: int = 60) -> np.ndarray:
    """Where Tango's score crosses ``z`` below the estimate (the lower bound) or ``-z`` above it
    (the upper bound), by vectorised bisection: the score decreases in delta, is 0 at the
    estimate and ±inf at ∓1, so each bound is bracketed by the estimate and -1 or 1."""
    est = (b - c) / np.maximum(n, 1)
    inside, outside = est.copy(), np.full_like(est, 1.0 if upper else -1.0)
    for _ in range(iterations):
        mid = (inside + outside) / 2
        score = tango_score(b, c, n, mid)
        ok = score >= -z if upper else score <= z
        inside, outside = np.where(ok, mid, inside), np.where(ok, outside, mid)
    return inside


def tango_interval(b: int | np.ndarray, c: int | np.ndarray, n: int | np.ndarray, level: float = 0.95) -> tuple:
    """Tango's score interval for the paired difference p₁ − p₂ at two-sided ``level``.

    Each bound is also a one-sided bound at ``(1 + level) / 2``: the lower bound of the 95 %
    interval is the one-sided 97.5 % lower bound. Works on scalars and arrays.
    """
    z = z_quantile(0.5 + level / 2)
    b_, c_, n_ = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (b, c, n))
    b_, c_, n_ = np.broadcast_arrays(b_, c_, n_)
    lo = _invert(b_, c_, n_, z, upper=False)
    hi = _invert(b_, c_, n_, z, upper=True)
    lo, hi = np.clip(lo, -1, 1), np.clip(hi, -1, 1)
    if np.ndim(b) == 0 and np.ndim(c) == 0 and np.ndim(n) == 0:
        return float(lo[0]), float(hi[0])
    return lo, hi


def paired_sample_size(delta: float, discordant: float, null_delta: float, alpha: float, power: float) -> float:
    """Examples at which the one-sided score test of H0: Δ = ``null_delta`` at level ``alpha``
    rejects with probability ``power`` when the true difference is ``delta`` and examples
    disagree at rate ``discordant`` (ψ): the smallest n with

    ``|Δ − δ₀|·n − ½ ≥ z₁₋α·√(n·V₀) + z_power·√(n·(ψ − Δ²))``

    (Nam 1997's score-test sample size with `CONTINUITY`; V₀ is the variance under the null's
    restricted maximum likelihood at the true cell probabilities). ``math.inf`` when ``delta``
    equals ``null_delta``: no sample size settles it.
    """
    gap = abs(delta - null_delta)
    if gap < 1e-12:
        return math.inf
    psi = max(discordant, abs(delta), 1e-6)
    p10, p01 = (psi + delta) / 2, (psi - delta) / 2
    q0 = float(_restricted_q(p10, p01, 1.0, null_delta))
    v0 = max(2 * q0 + null_delta * (1 - null_delta), 1e-9)
    w = max(psi - delta * delta, 1e-9)
    k = z_quantile(1 - alpha) * math.sqrt(v0) + z_quantile(power) * math.sqrt(w)
    root = (k + math.sqrt(k * k + 4 * gap * CONTINUITY)) / (2 * gap)  # √n of the quadratic in √n
    return root * root
