r"""Calibration: reliability tables, ECE, signed ECE, MCE, ACE and bootstrap intervals.

Confidence is the top softmax probability, ``correct`` whether the top class is the label. With
``n_bins`` bins, :math:`P(i)` the share of samples in bin :math:`i`, :math:`o_i` their accuracy and
:math:`e_i` their mean confidence,

.. math::
    \mathrm{ECE} = \sum_i P(i)\,|o_i - e_i|, \qquad \mathrm{sECE} = \sum_i P(i)\,(o_i - e_i),

so sECE < 0 means overconfident (confidence above accuracy) and |sECE| ≤ ECE.

Equal-width bins follow the paper: bin i is ``(i/n, (i+1)/n]``, i.e. lo < conf ≤ hi, with
conf = 0 put in the first bin and conf = 1 in the last. Equal-mass bins (``scheme="mass"``)
use the confidence quantiles as edges (the basis of ACE).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bootstrap

TABLE_COLUMNS = ["bin", "lo", "hi", "count", "share", "confidence", "accuracy", "gap", "is_empty"]
STATS = ("ece", "sece", "mce", "ace", "accuracy")


def _as_numpy(v, name: str) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor on any device
        v = v.detach().cpu()
        try:
            v = v.numpy()
        except TypeError:  # bfloat16 / float8 (autocast confidences): numpy has no such dtype; exact in float32
            if not v.is_floating_point():
                raise TypeError(f"{name} has dtype {v.dtype}, which numpy cannot hold") from None
            v = v.float().numpy()
    a = np.asarray(v)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    return a


def _check(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    conf = _as_numpy(confidence, "confidence")
    corr = _as_numpy(correct, "correct")
    if conf.size == 0:
        raise ValueError("confidence is empty: need at least one prediction")
    if conf.shape != corr.shape:
        raise ValueError(f"confidence and correct differ in length ({conf.size} vs {corr.size})")
    if not np.issubdtype(conf.dtype, np.floating):
        raise TypeError(f"confidence must be floating point, got dtype {conf.dtype}")
    conf = conf.astype(np.float64, copy=False)
    if np.isnan(conf).any():
        raise ValueError(f"confidence contains NaN ({int(np.isnan(conf).sum())} values)")
    if conf.min() < 0 or conf.max() > 1:
        raise ValueError(f"confidence must lie in [0, 1], got range [{conf.min():.4g}, {conf.max():.4g}]")
    if corr.dtype != bool:
        if np.issubdtype(corr.dtype, np.floating) and np.isnan(corr).any():
            raise ValueError("correct contains NaN")
        if not np.isin(corr, (0, 1)).all():
            raise ValueError("correct must be boolean or 0/1")
        corr = corr.astype(bool)
    return conf, corr


def _check_min_count(min_count: int) -> None:
    if not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be a positive integer (samples a bin needs for MCE), got {min_count!r}")


def _check_bins(n_bins: int) -> None:
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")


def order_statistics(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.sort(values)[ranks]`` for sorted unique ``ranks``, in O(N log M) without a full sort.

    Selects the middle rank with one single-pivot partition, then recurses into the two halves;
    meant for a few ranks of many values, where it does less work than ``np.partition(values, ranks)``.
    """
    a = np.array(values, dtype=np.float64, copy=True)
    ranks = np.asarray(ranks)
    if ranks.size and not np.issubdtype(ranks.dtype, np.integer):
        raise TypeError(f"ranks must be integers, got dtype {ranks.dtype}")
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"values must be a non-empty 1-D array, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError("values contain NaN")
    if ranks.ndim != 1 or (ranks.size and (ranks[0] < 0 or ranks[-1] >= a.size or np.any(np.diff(ranks) <= 0))):
        raise ValueError(f"ranks must be increasing integers in [0, {a.size - 1}], got {ranks.tolist()[:10]}")
    out = np.empty(len(ranks))

    def select(lo: int, hi: int, first: int, last: int) -> None:  # ranks[first:last] lie in a[lo:hi]
        if first >= last:
            return
        mid = (first + last) // 2
        k = int(ranks[mid])
        a[lo:hi].partition(k - lo)
        out[mid] = a[k]
        select(lo, k, first, mid)
        select(k + 1, hi, mid + 1, last)

    select(0, a.size, 0, len(ranks))
    return out


def bin_edges(confidence, n_bins: int = 10, scheme: str = "width") -> np.ndarray:
    """Edges [n_bins + 1]: equal width on [0, 1], or equal mass (``mass``).

    Equal-mass upper edges are the confidences of rank ⌈iN/M⌉ (1-based; a partial sort, O(N)), so
    bin i (lo, hi] holds the samples of ranks ⌈(i−1)N/M⌉+1 … ⌈iN/M⌉ up to ties, which stay together in
    the lower bin (N = 5, M = 2: 3 and 2 samples).
    """
    _check_bins(n_bins)
    if scheme == "width":
        return np.linspace(0.0, 1.0, n_bins + 1)
    if scheme == "mass":
        conf = _as_numpy(confidence, "confidence")
        conf, _ = _check(conf, np.zeros(conf.shape, bool))  # in [0, 1], no NaN, not empty: else edges are junk
        i = np.arange(1, n_bins, dtype=np.int64)
        ranks = np.unique(np.clip((i * conf.size + n_bins - 1) // n_bins - 1, 0, conf.size - 1))  # ⌈iN/M⌉, 0-based
        inner = order_statistics(conf, ranks) if conf.size > 1 else np.repeat(conf, n_bins - 1)
        if inner.size < n_bins - 1:  # fewer samples than bins: pad with 1.0 (empty top bins)
            inner = np.concatenate([inner, np.ones(n_bins - 1 - inner.size)])
        return np.concatenate([[0.0], np.sort(inner), [1.0]])
    raise ValueError(f"scheme must be 'width' or 'mass', got {scheme!r}")


def bin_index(confidence: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each confidence with lo < conf ≤ hi (conf = 0 → first bin, conf = 1 → last).

    Counts the inner edges each value exceeds: one vectorised comparison per edge, which for the
    ~10 bins used here does less work than a binary search (``np.digitize``).
    """
    inner = edges[1:-1]
    if inner.size > 64:  # many bins: the binary search wins
        return np.digitize(confidence, inner, right=True)
    idx = np.zeros(confidence.shape, dtype=np.int8)
    for e in inner:
        idx += confidence > e
    return idx


def calibration_table(confidence, correct, n_bins: int = 10, scheme: str = "width") -> pd.DataFrame:
    """One row per bin: lo, hi, count, share, mean confidence, accuracy, gap = accuracy − confidence.

    Args:
        confidence: [N] top-class probabilities in [0, 1] (numpy or torch, any device).
        correct: [N] booleans (or 0/1): prediction == label.
        n_bins: number of bins. scheme: ``"width"`` (equal width, the paper) or ``"mass"`` (quantiles).
    Empty bins have count 0, ``is_empty=True`` and NaN confidence / accuracy / gap.
    """
    conf, corr = _check(confidence, correct)
    return _table(conf, corr, n_bins, scheme)


def _table(conf: np.ndarray, corr: np.ndarray, n_bins: int, scheme: str) -> pd.DataFrame:
    """:func:`calibration_table` on already-checked arrays (float64 confidences, boolean correct)."""
    edges = bin_edges(conf, n_bins, scheme)
    idx = bin_index(conf, edges)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_corr = np.bincount(idx, weights=corr, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = sum_conf / count
        acc = sum_corr / count
    return pd.DataFrame({
        "bin": np.arange(n_bins), "lo": edges[:-1], "hi": edges[1:], "count": count,
        "share": count / conf.size, "confidence": mean_conf, "accuracy": acc, "gap": acc - mean_conf,
        "is_empty": count == 0,
    })


def ece(table: pd.DataFrame) -> float:
    """Expected calibration error Σ share·|gap| ∈ [0, 1]."""
    return float(np.nansum(table["share"] * table["gap"].abs()))


def sece(table: pd.DataFrame) -> float:
    """Signed ECE Σ share·gap (negative = overconfident)."""
    return float(np.nansum(table["share"] * table["gap"]))


def mce(table: pd.DataFrame, min_count: int = 1) -> float:
    """Maximum calibration error: largest |gap| over bins holding at least ``min_count`` samples
    (a bin of one sample has |gap| = 1 − its confidence or its confidence, whatever the model)."""
    _check_min_count(min_count)
    gaps = table.loc[table["count"] >= min_count, "gap"].abs()
    return float(gaps.max()) if len(gaps) else 0.0


def ace(confidence, correct, n_bins: int = 10) -> float:
    """Adaptive calibration error: ECE over equal-mass bins."""
    return ece(calibration_table(confidence, correct, n_bins, scheme="mass"))


def calibration_scores(confidence, correct, n_bins: int = 10, min_count: int = 1) -> tuple[pd.DataFrame, dict]:
    """The equal-width table and every scalar in one pass over the checked input.

    Returns ``(table, scores)`` with scores: n, accuracy, mean confidence, ECE, sECE, MCE (from
    the table, over bins of at least ``min_count`` samples) and ACE (equal-mass bins).
    """
    conf, corr = _check(confidence, correct)
    _check_bins(n_bins)
    t = _table(conf, corr, n_bins, "width")
    scores = {"n": conf.size, "accuracy": float(corr.mean()), "confidence": float(conf.mean()),
              "ece": ece(t), "sece": sece(t), "mce": mce(t, min_count),
              "ace": ece(_table(conf, corr, n_bins, "mass"))}
    return t, scores


def summary(confidence, correct, n_bins: int = 10, min_count: int = 1) -> dict:
    """accuracy, mean confidence, ECE, sECE, MCE (equal width) and ACE (equal mass) as a dict."""
    return calibration_scores(confidence, correct, n_bins, min_count)[1]


def _binned_stats(idx: np.ndarray, conf: np.ndarray, corr: np.ndarray, n_bins: int, stat: str,
                  min_count: int = 1) -> np.ndarray:
    """Stat per row for resampled index matrix idx [B, N] with fixed bins (vectorised)."""
    b, n = idx.shape
    bins = bin_index(conf, bin_edges(conf, n_bins))[idx]  # [B, N]
    flat = (bins + n_bins * np.arange(b)[:, None]).ravel()
    count = np.bincount(flat, minlength=b * n_bins).reshape(b, n_bins)
    s_conf = np.bincount(flat, weights=conf[idx].ravel(), minlength=b * n_bins).reshape(b, n_bins)
    s_corr = np.bincount(flat, weights=corr[idx].ravel().astype(np.float64), minlength=b * n_bins).reshape(b, n_bins)
    gap_mass = (s_corr - s_conf) / n  # share × gap, per bin
    if stat == "ece":
        return np.abs(gap_mass).sum(1)
    if stat == "sece":
        return gap_mass.sum(1)
    if stat == "accuracy":
        return s_corr.sum(1) / n
    with np.errstate(invalid="ignore", divide="ignore"):  # mce
        gaps = np.abs(s_corr - s_conf) / count
    return np.nan_to_num(np.nanmax(np.where(count >= min_count, gaps, np.nan), axis=1), nan=0.0)


def bootstrap_ci(confidence, correct, stat: str = "ece", n_boot: int = 1000, level: float = 0.95,
                 n_bins: int = 10, seed: int = 0, chunk: int = 100, min_count: int = 1) -> tuple[float, float, float]:
    """(estimate, lower, upper): percentile bootstrap interval of a calibration statistic.

    ``stat`` is one of ``ece``, ``sece``, ``mce``, ``ace``, ``accuracy`` (MCE's interval is biased
    upward: a maximum over noisy bins grows under resampling); resampling is
    :func:`curvlib.stats.bootstrap` over the images (``chunk`` resamples at a time; ACE
    re-estimates its quantile edges per resample). ``min_count``: MCE's smallest bin.
    """

    if stat not in STATS:
        raise ValueError(f"stat must be one of {', '.join(STATS)}, got {stat!r}")
    conf, corr = _check(confidence, correct)
    _check_bins(n_bins)
    _check_min_count(min_count)
    if stat == "ace":
        def values(idx):
            return np.array([ace(conf[i], corr[i], n_bins) for i in idx])
    else:
        def values(idx):
            return _binned_stats(idx, conf, corr, n_bins, stat, min_count)
    _, lo, hi = bootstrap(values, conf.size, n_boot=n_boot, level=level, seed=seed, chunk=chunk)
    return float(summary(conf, corr, n_bins, min_count)[stat]), lo, hi


# ---------------------------------------------------------------------------------------------
# Experiment: predictions of a profile's models on its test set (cached)


