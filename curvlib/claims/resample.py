"""Resampling helpers shared by the claims: families of models, the images they share, pooled medians, ranks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import models
from ..constants import FAMILIES
from ..stats import bootstrap, verdict


def split_families(names, families: dict) -> dict[str, list[str]]:
    """Family → its models among ``names`` (a clear error unless both families are present)."""
    fams = {f: [m for m in names if families[m] == f] for f in FAMILIES}
    if not fams["CNN"] or not fams["Transformer"]:
        got = ", ".join(f"{m} ({families.get(m, '?')})" for m in names) or "no models"
        raise ValueError(f"a family comparison needs models of both families (CNN and Transformer), got {got}")
    return fams


def family_ratio(thetas: dict, families: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean θ of the Transformers over mean θ of the CNNs, with a bootstrap interval over images
    (paired: every model's θ [M, N, S] is on the same N images, resampled together).

    ``thetas``: model → θ tensor [M, N, S] (radians; NaN ignored); ``families``: model → "CNN" or
    "Transformer" (both needed). ``verdict``: "holds" (the paper's ordering: interval above 1),
    "opposite" (interval below 1) or "inconclusive"."""
    fams = split_families(list(thetas), families)
    n_images = {torch.as_tensor(t).shape[1] for t in thetas.values()}
    if len(n_images) != 1:
        raise ValueError(f"every θ must be on the same images, got image counts {sorted(n_images)}")
    n = next(iter(n_images))
    # per model and image: (sum of finite θ, count) over directions and steps
    sums, counts = {}, {}
    for m, t in thetas.items():
        a = np.degrees(torch.as_tensor(t).double().numpy()).swapaxes(0, 1).reshape(n, -1)
        ok = np.isfinite(a)
        sums[m], counts[m] = np.where(ok, a, 0).sum(1), ok.sum(1)

    def ratio(idx):
        fam_mean = {f: np.mean([sums[m][idx].sum(-1) / np.maximum(counts[m][idx].sum(-1), 1) for m in ms], axis=0)
                    for f, ms in fams.items()}
        return fam_mean["Transformer"] / fam_mean["CNN"]

    est, lo, hi = bootstrap(ratio, n, n_boot=n_boot, level=level, seed=seed)
    return {"ratio": est, "lo": lo, "hi": hi, "verdict": verdict(lo, hi, 1.0, ">"), "n_images": n}


def same_images(frames: dict[str, pd.DataFrame]) -> np.ndarray:
    """The common ``index`` column of per-image frames (error if the models saw other images)."""
    if not frames:
        raise ValueError("no results to judge: the frames are empty")
    ref = None
    for name, df in frames.items():
        idx = df["index"].to_numpy()
        if ref is None:
            ref = idx
        elif len(idx) != len(ref) or not np.array_equal(idx, ref):
            raise ValueError(f"{name!r} was measured on other images than {next(iter(frames))!r}: a paired "
                             "comparison needs the same test images, in the same order")
    return ref


def pooled_median(values: list[np.ndarray]):
    """stat(idx) → median of the resampled images' values pooled over several models (NaN = left out,
    +inf kept: a censored distance counts as larger than any measured one)."""
    stacked = np.stack(values, axis=1)  # [n, models]

    def stat(idx):
        v = stacked[idx].reshape(len(idx), -1)
        out = np.full(len(idx), np.nan)
        have = (~np.isnan(v)).any(1)
        out[have] = np.nanmedian(v[have], axis=1)
        return out

    return stat


def _ranks(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank) of the values v[idx] within each row of idx [B, n]."""
    groups, g = np.unique(v, return_inverse=True)  # dense rank of every unit (inf sorts last)
    b, n = idx.shape
    gi = g[idx]  # [B, n] group of each drawn unit
    counts = np.bincount((gi + len(groups) * np.arange(b)[:, None]).ravel(),
                         minlength=b * len(groups)).reshape(b, len(groups))
    below = np.cumsum(counts, axis=1) - counts
    avg = below + (counts + 1) / 2
    return np.take_along_axis(avg, gi, axis=1)


def spearman(x: np.ndarray, y: np.ndarray):
    """stat(idx) → Spearman rank correlation of x and y over the resampled units (ties: average ranks;
    ±inf allowed, e.g. a censored distance; NaN is not: leave such units out first)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D and of equal length, got shapes {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("x or y contains NaN: leave those units out before ranking")

    def stat(idx):
        rx, ry = _ranks(x, idx), _ranks(y, idx)
        rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
        den = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (rx * ry).sum(1) / den, np.nan)

    return stat


def family_map(names, families: dict | None) -> dict[str, str]:
    """Model → family ("CNN" / "Transformer"): ``families`` as given, or each model's own (:func:`models.family`)."""
    if families is None:
        families = {m: models.family(m) for m in names}
    return families
