"""Drift tests that hold their false-alarm rate: a p-value per window, a flag at a stated
``alpha`` after a correction across the windows of one report.

Both checks are the same test on counts: Pearson's chi-square of the window's counts against a
reference, over categories (the predicted labels, or bins of the confidence).

- **Two-sample** (the reference is a sample of ``N`` rows: the model's predicted labels, or its
  confidences, on held-out rows): the chi-square of homogeneity of the 2×K table (reference,
  window). The reference's own sampling noise is part of the null, so a window of thousands
  against a reference of a few thousand is not flagged for the reference's noise.
- **One-sample** (only shares are known, as in profiles written before held-out counts were
  stored): goodness of fit to the shares, smoothed so that a share of 0 stays finite.

The p-value is the chi-square distribution's tail when every expected window count is at
least 5 (Cochran's rule), else a Monte-Carlo p-value: the statistic of `SIMULATIONS` tables
drawn from the smoothed reference shares (the reference resampled too, when it is a sample),
``(1 + #{T* >= T}) / (1 + simulations)``. A window is flagged when its Holm-adjusted p-value is
at most ``alpha``, so the chance of any false alarm over all windows of one report is at most
``alpha``.

Confidences are binned at quantiles of the reference confidences (equal reference counts per
bin; tied edges merged): deciles, fewer for windows under 50 (`confidence_bins`). PSI is still reported beside the p-value as a size, never as a rule:
its sampling noise grows as the window shrinks, so a fixed PSI cut fires on most small windows
drawn from training itself (tests/serve/test_drift_simulation.py measures both).

Everything is vectorised over windows: ``windows`` is a (W, K) array of counts, one row each,
so the simulation suite runs thousands of windows through the very function the monitor uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

MIN_EXPECTED = 5.0
"""Smallest expected window count at which the chi-square tail is used instead of Monte Carlo."""
SIMULATIONS = 9999
"""Monte-Carlo tables per window size (p-values resolve down to 1e-4, enough for Holm over 100s of windows)."""
SMOOTHING = 0.5
"""Pseudo-count added to every reference category before shares are drawn from (Jeffreys)."""
SEED = 20
"""Seed of the Monte-Carlo null (fixed: the same log gives the same report)."""


@dataclass(frozen=True)
class Reference:
    """What a window is compared with: counts over categories (``rows`` None: shares only)."""

    categories: tuple[str, ...]
    """Category names, in the column order of ``counts``."""
    counts: tuple[float, ...]
    """Reference count (or share, when ``rows`` is None) of each category."""
    rows: int | None
    """Rows behind ``counts`` (two-sample test), or None when only shares are known (one-sample)."""

    @classmethod
    def from_counts(cls, counts: Mapping[str, float], categories: Sequence[str] = (), shares_only: bool = False) -> "Reference":
        """A reference over ``categories`` plus any in ``counts`` (order kept)."""
        cats = tuple(dict.fromkeys([*categories, *counts]))
        values = tuple(float(counts.get(c, 0.0)) for c in cats)
        return cls(cats, values, None if shares_only else int(round(sum(values))))

    def vector(self, counts: Mapping[str, int]) -> np.ndarray:
        """One window's counts in this reference's column order (categories it lacks are added
        by `extend` first)."""
        return np.array([counts.get(c, 0) for c in self.categories], dtype=float)

    def extend(self, categories: Sequence[str]) -> "Reference":
        """The same reference with extra categories (count 0), e.g. a label seen only in traffic."""
        extra = [c for c in categories if c not in self.categories]
        return Reference((*self.categories, *extra), (*self.counts, *[0.0] * len(extra)), self.rows) if extra else self


SHARES_ROWS = 1000
"""Rows that shares without a row count are smoothed as if they came from."""


def smoothed_shares(counts: np.ndarray, rows: int | None) -> np.ndarray:
    """Reference shares with `SMOOTHING` added to every category's count (no share is 0);
    ``rows`` None: ``counts`` are shares, smoothed as if from `SHARES_ROWS` rows."""
    counts = np.asarray(counts, dtype=float)
    c = (counts / counts.sum() * SHARES_ROWS if rows is None else counts) + SMOOTHING
    return c / c.sum()


def goodness_of_fit(shares: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Pearson's X² of each window row against fixed ``shares`` (no share may be 0)."""
    windows = np.asarray(windows, dtype=float)
    expected = windows.sum(axis=-1, keepdims=True) * shares
    return ((windows - expected) ** 2 / expected).sum(axis=-1)


def homogeneity(reference: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Pearson's X² of the 2×K table (reference counts, window counts) for each window row."""
    windows = np.asarray(windows, dtype=float)
    ref = np.broadcast_to(np.asarray(reference, dtype=float), windows.shape)
    n, N = windows.sum(axis=-1, keepdims=True), ref.sum(axis=-1, keepdims=True)
    col = ref + windows
    total = np.where(N + n > 0, N + n, 1.0)
    e_w, e_r = n * col / total, N * col / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(col > 0, (windows - e_w) ** 2 / e_w + (ref - e_r) ** 2 / e_r, 0.0)
    return np.nan_to_num(terms).sum(axis=-1)


@lru_cache(maxsize=256)
def _null(reference: tuple[float, ...], rows: int | None, n: int, simulations: int, seed: int) -> np.ndarray:
    """Sorted statistics of ``simulations`` windows of ``n`` drawn under the null: from the
    smoothed reference shares, with the reference itself resampled from them when it is a
    sample (``rows``), so its own noise is in the null."""
    counts = np.array(reference)
    shares = smoothed_shares(counts, rows)
    rng = np.random.default_rng([seed, n])
    windows = rng.multinomial(n, shares, size=simulations)
    if rows is None:
        return np.sort(goodness_of_fit(shares, windows))
    return np.sort(homogeneity(rng.multinomial(rows, shares, size=simulations), windows))


def p_values(
    reference: Reference, windows: np.ndarray, simulations: int = SIMULATIONS, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(statistic, p-value, method) of each window row (counts in ``reference``'s columns): the
    2×K homogeneity statistic (goodness of fit to the smoothed shares without a row count), its
    chi-square tail where every expected window count is at least `MIN_EXPECTED`, else a
    Monte-Carlo p-value against `_null`."""
    windows = np.atleast_2d(np.asarray(windows, dtype=float))
    counts = np.array(reference.counts)
    shares = smoothed_shares(counts, reference.rows)
    stats = homogeneity(counts, windows) if reference.rows is not None else goodness_of_fit(shares, windows)
    out = np.ones(len(windows))
    methods = ["none"] * len(windows)
    seen = counts > 0
    if seen.sum() < 2:  # one category: nothing can shift
        return stats, out, methods
    from scipy.stats import chi2

    df = ((counts > 0) | (windows > 0)).sum(axis=1) - 1  # categories present in the table, per window
    sizes = windows.sum(axis=1).astype(int)
    for n in np.unique(sizes):
        rows = np.flatnonzero(sizes == n)
        if n == 0:
            continue
        if n * shares[seen].min() >= MIN_EXPECTED:
            out[rows] = chi2.sf(stats[rows], df[rows])
            method = "chi2"
        else:
            null = _null(tuple(reference.counts), reference.rows, int(n), simulations, seed)
            exceed = len(null) - np.searchsorted(null, stats[rows] * (1 - 1e-12), side="left")  # ties count as exceeding
            out[rows] = (1 + exceed) / (1 + len(null))
            method = "monte-carlo"
        for i in rows:
            methods[i] = method
    return stats, out, methods


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control over the windows)."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def confidence_bins(n: int) -> int:
    """Confidence bins for a window of ``n``: deciles, fewer for small windows so that every bin
    expects at least `MIN_EXPECTED` predictions (with 10 bins, 30 predictions missed alpha)."""
    return int(max(2, min(10, n // MIN_EXPECTED)))


def confidence_edges(reference: Sequence[float], bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (tied edges merged)."""
    ref = np.asarray(reference, dtype=float)
    if len(ref) == 0:
        return np.array([])
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin of each row of ``values`` ((W, n) or (n,)); bins are ``(-inf, e0), [e0, e1), ...``."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    k = len(edges) + 1
    idx = np.searchsorted(edges, values, side="right") + k * np.arange(len(values))[:, None]
    return np.bincount(idx.ravel(), minlength=k * len(values)).reshape(len(values), k).astype(float)


def confidence_reference(reference: Sequence[float], bins: int = 10) -> tuple[Reference, np.ndarray]:
    """The reference over confidence bins (two-sample) and the bin edges."""
    edges = confidence_edges(reference, bins)
    counts = bin_counts(np.asarray(reference, dtype=float), edges)[0]
    return Reference(tuple(f"bin{i}" for i in range(len(counts))), tuple(counts), len(reference)), edges
