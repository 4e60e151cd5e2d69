"""One bootstrap for every interval in the book, and the rule that turns an interval into a verdict.

:func:`bootstrap` resamples *units* (test images, usually) with replacement, seeded and vectorised:
the statistic receives an index array [B, n] and returns B values, so the same resample of images
can be applied to every model at once (a *paired* comparison). ``strata`` resamples within groups
(e.g. the layers of each model and component separately). :func:`verdict` reads an interval
against the value of "no effect".
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

#: The three outcomes of a claim (plus "no data" where nothing could be measured).
VERDICTS = ("holds", "opposite", "inconclusive")
NO_DATA = "no data"


def _check(n, n_boot, level) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer (units to resample), got {n!r}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def resamples(n: int, n_boot: int = 1000, seed: int = 0, strata=None, chunk: int | None = None):
    """Yield index arrays [b, n] (b ≤ ``chunk``, n_boot rows in all) of units drawn with replacement.

    The draws are the same whatever ``chunk`` is. ``strata``: a label per unit [n]; units are then
    resampled within their own group (group sizes fixed; all n_boot rows are drawn at once)."""
    _check(n, n_boot, 0.5)
    rng = np.random.default_rng(seed)
    chunk = n_boot if chunk is None else max(1, int(chunk))
    groups = None
    if strata is not None:
        strata = np.asarray(strata)
        if strata.shape != (n,):
            raise ValueError(f"strata must give one label per unit, shape ({n},), got {strata.shape}")
        groups = [np.flatnonzero(strata == s) for s in dict.fromkeys(strata.tolist())]
    if groups is not None:
        idx = np.empty((n_boot, n), dtype=np.int64)
        for g in groups:
            idx[:, g] = g[rng.integers(0, len(g), size=(n_boot, len(g)))]
        for start in range(0, n_boot, chunk):
            yield idx[start:start + chunk]
        return
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def bootstrap(stat: Callable[[np.ndarray], np.ndarray], n: int, n_boot: int = 1000, level: float = 0.95,
              seed: int = 0, strata=None, chunk: int | None = None, min_defined: float = 0.9
              ) -> tuple[float, float, float]:
    """(estimate, lower, upper): the statistic on all units and its percentile bootstrap interval.

    Args:
        stat: index array [B, n] → B values (NaN allowed: resamples where the statistic is undefined
              are left out of the interval — but when more than 1 − ``min_defined`` of them are, the
              interval would describe a selected subset of resamples, and none is given: NaN).
        n: units to resample (0 → all NaN). n_boot: resamples. level: coverage of the interval.
        seed: the resamples are a function of (n, n_boot, seed, strata) only, so statistics computed
              with the same seed see the same resamples. strata: see :func:`resamples`.
        chunk: resamples per call of ``stat`` (memory; the result does not depend on it).
    """
    _check(n, n_boot, level)
    if n == 0:
        return math.nan, math.nan, math.nan
    est = np.asarray(stat(np.arange(n)[None]), dtype=float)
    if est.shape != (1,):
        raise ValueError(f"stat must return one value per resample, got shape {est.shape} for one resample")
    vals = []
    for idx in resamples(n, n_boot, seed, strata, chunk):
        v = np.asarray(stat(idx), dtype=float)
        if v.shape != (len(idx),):
            raise ValueError(f"stat must return one value per resample, shape ({len(idx)},), got {v.shape}")
        vals.append(v)
    vals = np.concatenate(vals)
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0 or len(vals) < min_defined * n_boot:
        return float(est[0]), math.nan, math.nan
    a = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo, hi = np.quantile(vals, [a, 1 - a])
    if np.isnan(lo) or np.isnan(hi):  # interpolating between two infinite values (censored statistics)
        lo, hi = np.quantile(vals, a, method="lower"), np.quantile(vals, 1 - a, method="higher")
    return float(est[0]), float(lo), float(hi)


def verdict(lo: float, hi: float, null: float = 0.0, expect: str = ">") -> str:
    """Read an interval [lo, hi] against the no-effect value ``null``.

    ``expect``: the side the claim predicts (">" above the null, "<" below). "holds": the whole
    interval on that side; "opposite": the whole interval on the other side; "inconclusive": it
    contains the null; "no data": the interval is undefined (NaN; infinite ends are values)."""
    if expect not in (">", "<"):
        raise ValueError(f"expect must be '>' or '<', got {expect!r}")
    if np.isnan(lo) or np.isnan(hi):  # ±inf is a value (e.g. a censored distance), NaN is none
        return NO_DATA
    if lo > hi:
        raise ValueError(f"interval is reversed: [{lo}, {hi}]")
    above, below = lo > null, hi < null
    if expect == ">":
        return "holds" if above else "opposite" if below else "inconclusive"
    return "holds" if below else "opposite" if above else "inconclusive"
