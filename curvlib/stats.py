"""One bootstrap for every interval in the book, and the rule that turns an interval into a verdict.

:func:`bootstrap` resamples *units* (test images, usually) with replacement, seeded and vectorised:
the statistic receives an index array [B, n] and returns B values, so the same resample of images
can be applied to every model at once (a *paired* comparison). ``strata`` resamples within groups
(e.g. the layers of each model and component separately). :func:`hierarchical_bootstrap` adds the
training seeds: it resamples the seeds of each model, then the images (paired across models that
share them), so an interval holds the seed-to-seed variance as well as the images'.
:func:`verdict` reads an interval against the value of "no effect".
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Sequence

import numpy as np

#: The three outcomes of a claim (plus "no data" where nothing could be measured).
VERDICTS = ("holds", "opposite", "inconclusive")
NO_DATA = "no data"


_RECORDERS: contextvars.ContextVar = contextvars.ContextVar("curvlib_bootstrap_recorders", default=None)


@contextlib.contextmanager
def recording():
    """Record every :func:`bootstrap` made inside the block: yields a list that receives, per call, a
    dict ``{"estimate", "lo", "hi"`` (what it returned) ``, "values": ndarray [n_boot]}`` (the statistic on
    every resample, NaN kept).
    :mod:`curvlib.claims.seeded` uses it to pool a claim's image resamples over seed draws."""
    log = []
    token = _RECORDERS.set([*(_RECORDERS.get() or []), log])
    try:
        yield log
    finally:
        _RECORDERS.reset(token)


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


def percentile_interval(est: float, vals: np.ndarray, n_boot: int, level: float, min_defined: float
                         ) -> tuple[float, float, float]:
    """(est, lo, hi) from the resampled values [n_boot] (NaN: undefined; see :func:`bootstrap`)."""
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0 or len(vals) < min_defined * n_boot:
        return est, math.nan, math.nan
    a = (1 - level) / 2
    with np.errstate(invalid="ignore"):
        lo, hi = np.quantile(vals, [a, 1 - a])
    if np.isnan(lo) or np.isnan(hi):  # interpolating between two infinite values (censored statistics)
        lo, hi = np.quantile(vals, a, method="lower"), np.quantile(vals, 1 - a, method="higher")
    return est, float(lo), float(hi)


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
    out = percentile_interval(float(est[0]), vals, n_boot, level, min_defined)
    for log in _RECORDERS.get() or []:
        log.append({"estimate": out[0], "lo": out[1], "hi": out[2], "values": vals})
    return out


def hierarchical_resamples(n_seeds: Sequence[int], n: int | Sequence[int], n_boot: int = 1000, seed: int = 0,
                           chunk: int | None = None):
    """Yield two-stage resamples ``(seed_idx, img_idx)`` in chunks of b ≤ ``chunk`` rows (n_boot rows in all).

    ``seed_idx``: one int array [b, S_m] per model — the seeds of model m drawn with replacement, a
    fresh draw for each model. ``img_idx``: one int array [b, n_m] per model — the images drawn with
    replacement. ``n`` an int: all models share the images, and every model gets the *same* array
    (a paired comparison; every seed of a model is measured on the same images too); ``n`` a
    sequence: each model has its own image set, resampled independently. The draws are the same
    whatever ``chunk`` is (one random stream per model for seeds, one per image set)."""
    n_seeds = [int(s) for s in n_seeds]
    if not n_seeds or min(n_seeds) < 1:
        raise ValueError(f"n_seeds must give at least one seed per model, got {n_seeds}")
    shared = isinstance(n, (int, np.integer))
    sizes = [int(n)] * len(n_seeds) if shared else [int(k) for k in n]
    if len(sizes) != len(n_seeds):
        raise ValueError(f"n gives {len(sizes)} image-set sizes for {len(n_seeds)} models")
    for k in sizes:
        _check(k, n_boot, 0.5)
    if min(sizes) < 1:
        raise ValueError(f"every model needs at least one image, got sizes {sizes}")
    streams = np.random.SeedSequence(seed).spawn(len(n_seeds) + (1 if shared else len(n_seeds)))
    seed_rngs = [np.random.default_rng(s) for s in streams[:len(n_seeds)]]
    img_rngs = [np.random.default_rng(s) for s in streams[len(n_seeds):]]
    chunk = n_boot if chunk is None else max(1, int(chunk))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        s_idx = [r.integers(0, k, size=(b, k)) for r, k in zip(seed_rngs, n_seeds)]
        if shared:
            one = img_rngs[0].integers(0, sizes[0], size=(b, sizes[0]))
            i_idx = [one] * len(n_seeds)
        else:
            i_idx = [r.integers(0, k, size=(b, k)) for r, k in zip(img_rngs, sizes)]
        yield s_idx, i_idx


def resampled_means(values: np.ndarray, seed_idx: np.ndarray, img_idx: np.ndarray) -> np.ndarray:
    """Mean of ``values`` [S, n] (one row per seed, one column per image; finite) over resampled
    seeds ``seed_idx`` [B, S] and resampled images ``img_idx`` [B, n] → [B]. Memory O(B·(n + S))."""
    values = np.asarray(values, dtype=float)
    seed_idx, img_idx = np.atleast_2d(seed_idx), np.atleast_2d(img_idx)
    S, n = values.shape
    B = len(img_idx)
    if seed_idx.shape[0] != B or img_idx.shape[1] != n or seed_idx.max() >= S:
        raise ValueError(f"values [{S}, {n}] do not match seed_idx {seed_idx.shape} and img_idx {img_idx.shape}")
    counts = np.bincount((np.arange(B)[:, None] * n + img_idx).ravel(), minlength=B * n).reshape(B, n)
    per_seed = counts @ values.T / img_idx.shape[1]  # [B, S]: each seed's mean over the resampled images
    return np.take_along_axis(per_seed, seed_idx, axis=1).mean(1)


def hierarchical_bootstrap(stat: Callable[[list, list], np.ndarray], n_seeds: Sequence[int],
                           n: int | Sequence[int], n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                           chunk: int | None = None, min_defined: float = 0.9) -> tuple[float, float, float]:
    """(estimate, lower, upper) with a two-stage percentile bootstrap: seeds within each model, then
    images (see :func:`hierarchical_resamples`).

    Args:
        stat: (seed_idx, img_idx) → [B] values, where seed_idx is a list over models of [B, S_m]
              seed indices and img_idx a list over models of [B, n_m] image indices. The estimate
              is ``stat`` on every seed and image once (identity indices, B = 1).
        n_seeds: seeds per model, [M]. n: images shared by all models (int, paired) or per model.
        n_boot, level, seed, chunk, min_defined: as in :func:`bootstrap`.

    Example — a family gap in a per-image quantity, ``vals[m]`` of shape [S_m, n]::

        gap = lambda si, ii: (resampled_means(vals[2], si[2], ii[2]) + resampled_means(vals[3], si[3], ii[3])
                              - resampled_means(vals[0], si[0], ii[0]) - resampled_means(vals[1], si[1], ii[1])) / 2
        est, lo, hi = hierarchical_bootstrap(gap, [len(v) for v in vals], n=vals[0].shape[1])
    """
    _check(1, n_boot, level)
    ident_s = [np.arange(k)[None] for k in n_seeds]
    ident_i = ([np.arange(int(n))[None]] * len(n_seeds) if isinstance(n, (int, np.integer))
               else [np.arange(int(k))[None] for k in n])
    est = np.asarray(stat(ident_s, ident_i), dtype=float)
    if est.shape != (1,):
        raise ValueError(f"stat must return one value per resample, got shape {est.shape} for one resample")
    vals = []
    for s_idx, i_idx in hierarchical_resamples(n_seeds, n, n_boot, seed, chunk):
        v = np.asarray(stat(s_idx, i_idx), dtype=float)
        if v.shape != (len(i_idx[0]),):
            raise ValueError(f"stat must return one value per resample, shape ({len(i_idx[0])},), got {v.shape}")
        vals.append(v)
    return percentile_interval(float(est[0]), np.concatenate(vals), n_boot, level, min_defined)


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


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (fractions) for k successes in n trials."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 ≤ k ≤ n and n ≥ 1, got k={k}, n={n}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: rounding left ~1e-20 above 0 for k = 0
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi
