r"""Travel to the decision boundary: the smallest ε with argmax f(clip(x + ε d)) ≠ y.

All samples move together. A coarse pass walks a uniform grid of ``n_coarse`` steps up to
``eps_max``, each sample stopping at its first wrong prediction; bisection then shrinks every
sample's bracket [last correct, first wrong] below ``tol``, one batched forward per halving. The
returned ε* is the bracket's upper end: a point verified to be misclassified, within ``tol`` of
the crossing. Forward passes per sample: 1 (start) + up to ``n_coarse`` + ⌈log₂(eps_max / n_coarse / tol)⌉
— at most 20 for the defaults (eps_max 1, tol 1e-4, 8 coarse steps).

The grid finds the *first crossing it sees*: when the prediction flips back and forth inside
one coarse step (a wrong-class island narrower than eps_max / n_coarse), an earlier island can
be missed. Along FGSM directions the prediction rarely reverts; the benchmark compares with the
authors' fine stride search to show how often it matters.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .direction import _check
from .inference import model_device

STATUSES = ("crossed", "never", "misclassified_at_start")


def positions(x: torch.Tensor, d: torch.Tensor, eps) -> torch.Tensor:
    """clip(x + ε_i·d_i) for images x, directions d [N, C, H, W] and per-sample ε [N] (NaN → 0,
    i.e. the image itself: pass a travel frame's ``eps`` to get the images at the boundary)."""
    eps = eps.to(x.dtype) if isinstance(eps, torch.Tensor) else torch.tensor(eps, dtype=x.dtype)  # copies arrays
    eps = torch.nan_to_num(eps, nan=0.0)
    return (x + eps.view(-1, *([1] * (x.ndim - 1))) * d).clamp_(0.0, 1.0)



@torch.inference_mode()
def _predict(model, xs, dev):
    return model(xs.to(dev, non_blocking=True)).argmax(-1).to(xs.device)


@torch.inference_mode()
def travel(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps_max: float = 1.0, tol: float = 1e-4,
           n_coarse: int = 8, batch_size: int = 500, progress: bool = True) -> pd.DataFrame:
    """Distance to the decision boundary along directions ``d`` for every sample.

    Args:
        model: pixels [N, C, H, W] in [0, 1] → logits [N, K].
        x: images [N, C, H, W] in [0, 1]; y: labels [N]; d: directions [N, C, H, W] (any norm is
           used as given; :func:`curvlib.direction.direction` gives ‖d‖ = √D, i.e. ε in pixel units).
        eps_max: largest ε searched (> 0). tol: bracket width at which bisection stops (> 0).
        n_coarse: coarse grid steps. batch_size: samples per chunk (memory budget).
    Returns:
        DataFrame, one row per sample in input order: ``index``, ``label``, ``confidence`` and
        ``pred`` at x, ``eps`` (ε*; NaN unless crossed), ``eps_lo`` (largest ε seen correct),
        ``status`` (crossed / never / misclassified_at_start), ``new_class`` (prediction at ε*),
        ``passes`` (forward passes spent on the sample).
    """
    _check(x, y, getattr(model, "num_classes", None))
    if d.shape != x.shape:
        raise ValueError(f"directions must have the images' shape {tuple(x.shape)}, got {tuple(d.shape)}")
    if not torch.isfinite(d).all():
        raise ValueError("directions contain NaN or inf")
    if (d.reshape(len(d), -1).abs().amax(1) == 0).any():
        raise ValueError("a direction is zero: travel along it never moves")
    if not (eps_max > 0 and math.isfinite(eps_max)):
        raise ValueError(f"eps_max must be a positive number, got {eps_max}")
    if not (0 < tol < eps_max):
        raise ValueError(f"tol must be in (0, eps_max), got {tol}")
    if n_coarse < 1 or batch_size < 1:
        raise ValueError("n_coarse and batch_size must be positive")
    dev = model_device(model)
    n = len(x)
    step = eps_max / n_coarse
    n_bisect = max(0, math.ceil(math.log2(step / tol)))
    eps_star = torch.full((n,), float("nan"), dtype=torch.float64)
    eps_lo = torch.zeros(n, dtype=torch.float64)
    status = np.full(n, "never", dtype=object)
    new_class = torch.full((n,), -1, dtype=torch.long)
    passes = torch.zeros(n, dtype=torch.long)
    conf0 = torch.empty(n)
    pred0 = torch.empty(n, dtype=torch.long)
    for s in tqdm(range(0, n, batch_size), desc=f"travel {getattr(model, 'name', '')}", disable=not progress,
                  leave=False):
        sl = slice(s, min(n, s + batch_size))
        xb, yb, db = x[sl].float(), y[sl].long(), d[sl].float()
        p = model(xb.to(dev)).float().softmax(-1).cpu()
        passes[sl] += 1
        conf0[sl], pred0[sl] = p.max(-1)
        alive = pred0[sl] == yb  # correctly classified at the start
        hi = torch.full((len(yb),), float("nan"), dtype=torch.float64)
        lo = torch.zeros(len(yb), dtype=torch.float64)
        searching = alive.clone()
        cls = torch.full((len(yb),), -1, dtype=torch.long)
        for k in range(1, n_coarse + 1):
            idx = torch.nonzero(searching).flatten()
            if len(idx) == 0:
                break
            e = torch.full((len(idx),), k * step, dtype=torch.float64)
            pr = _predict(model, positions(xb[idx], db[idx], e.float()), dev)
            passes[s + idx] += 1
            wrong = pr != yb[idx]
            hi[idx[wrong]] = k * step
            cls[idx[wrong]] = pr[wrong]
            lo[idx[~wrong]] = k * step
            searching[idx[wrong]] = False
        crossed = torch.nonzero(~torch.isnan(hi)).flatten()
        for _ in range(n_bisect if len(crossed) else 0):
            mid = (lo[crossed] + hi[crossed]) / 2
            pr = _predict(model, positions(xb[crossed], db[crossed], mid.float()), dev)
            passes[s + crossed] += 1
            wrong = pr != yb[crossed]
            hi[crossed[wrong]] = mid[wrong]
            cls[crossed[wrong]] = pr[wrong]
            lo[crossed[~wrong]] = mid[~wrong]
        eps_star[sl], eps_lo[sl], new_class[sl] = hi, lo, cls
        st = np.where(alive.numpy(), np.where(torch.isnan(hi).numpy(), "never", "crossed"), "misclassified_at_start")
        status[sl] = st
    mis = status == "misclassified_at_start"
    eps_lo[torch.from_numpy(mis)] = float("nan")
    return pd.DataFrame({
        "index": np.arange(n), "label": y.cpu().numpy(), "pred": pred0.numpy(), "confidence": conf0.double().numpy(),
        "eps": eps_star.numpy(), "eps_lo": eps_lo.numpy(), "status": pd.Categorical(status, categories=STATUSES),
        "new_class": new_class.numpy(), "passes": passes.numpy(),
    })


def travel_experiment(model_name: str, kind: str = "fgsm", profile=None, n: int | None = None,
                      eps_max: float = 1.0, tol: float = 1e-4, seed: int = 0, refresh: bool = False) -> pd.DataFrame:
    """Cached :func:`travel` of one model on the profile's first ``n`` test images (default
    ``profile.n_travel``) along ``kind`` directions (``fgsm`` or a seeded random kind)."""
    from . import cache, data, models
    from .config import get_profile
    from .direction import direction

    profile = profile or get_profile()
    n = n or profile.n_travel
    model = models.load(model_name, profile)
    params = {"n": n, "kind": kind, "eps_max": eps_max, "tol": tol, "seed": seed, "weights": model.fingerprint,
              "data": str(profile.data_dir) if profile.data_dir else None}

    def compute():
        x, y = data.test_set(profile, n=n, model_name=model_name if profile.dataset == "imagenet" else None)
        d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size)
        df = travel(model, x, y, d, eps_max=eps_max, tol=tol, batch_size=profile.batch_size)
        return df.assign(model=model_name, kind=kind)

    return cache.cached("travel", model_name, params, compute, profile=profile, refresh=refresh)


def median_by_confidence(df: pd.DataFrame, edges=(0.0, 0.5, 0.7, 0.9, 0.99, 1.0)) -> pd.DataFrame:
    """Median ε* of crossed samples per confidence band (lo, hi], with counts, per model/kind."""
    ok = df[df.status == "crossed"].copy()
    labels = [f"[{lo:g}, {hi:g}]" if i == 0 else f"({lo:g}, {hi:g}]" for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    ok["band"] = pd.cut(ok.confidence, list(edges), include_lowest=True, labels=labels)
    keys = [c for c in ("model", "kind") if c in ok.columns]
    g = ok.groupby(keys + ["band"], observed=False)["eps"]
    return g.agg(median="median", n="size").reset_index()


def low_confidence_summary(frames: dict[str, pd.DataFrame], threshold: float = 0.9) -> pd.DataFrame:
    """Per model: median ε* of crossed samples with confidence ≤ ``threshold`` (``low``) and above
    it (``high``), the Spearman rank correlation of confidence and ε* over crossed samples, and the
    status counts."""
    from .config import FAMILY

    rows = []
    for name, df in frames.items():
        ok = df[df.status == "crossed"]
        low, high = ok[ok.confidence <= threshold], ok[ok.confidence > threshold]
        rho = ok.confidence.rank().corr(ok.eps.rank()) if len(ok) > 2 else float("nan")
        counts = df.status.value_counts()
        rows.append({"model": name, "family": FAMILY.get(name, "?"),
                     "median ε* low": low.eps.median(), "n low": len(low),
                     "median ε* high": high.eps.median(), "n high": len(high),
                     "spearman": rho, **{s: int(counts.get(s, 0)) for s in STATUSES}})
    return pd.DataFrame(rows).set_index("model")
