r"""Travel to the decision boundary: the smallest ε with argmax f(clip(x + ε d)) ≠ y.

All samples move together. A coarse pass walks a grid up to ``eps_max`` (default: geometric
near 0, then steps of eps_max / 4), each sample stopping at its first wrong prediction; the
bracket [last correct, first wrong] is then shrunk below ``tol``, one batched forward per
iteration, by the ITP method (Oliveira & Takahashi 2020) on the logit margin
m(ε) = z_y − max_{j≠y} z_j, which is continuous along the path and changes sign at the boundary:
regula falsi on m, truncated and projected so that no sample ever needs more iterations than
bisection would (⌈log₂(bracket / tol)⌉), and usually far fewer where m is close to linear. The
returned ε* is the bracket's upper end: a point verified to be misclassified, within ``tol`` of
the crossing. Forward passes per sample: 1 (start) + up to len(grid) + the refinement —
at most 20 for the defaults (eps_max 1, tol 1e-4; see :func:`max_passes`).

The grid finds the *first crossing it sees*: when the prediction flips back and forth inside
one coarse step (a wrong-class island narrower than the grid spacing), an earlier island can
be missed. Along FGSM directions the prediction rarely reverts; the benchmark compares with the
authors' fine stride search to show how often it matters.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import models, runner
from .direction import _check
from .inference import model_device

STATUSES = ("crossed", "never", "misclassified_at_start")
#: ITP truncation κ1 (× 1 / coarse step): smaller trusts the interpolation more.
ITP_KAPPA1 = 0.2


def positions(x: torch.Tensor, d: torch.Tensor, eps) -> torch.Tensor:
    """clip(x + ε_i·d_i) for images x, directions d [N, C, H, W] and per-sample ε [N] (NaN → 0,
    i.e. the image itself: pass a travel frame's ``eps`` to get the images at the boundary)."""
    eps = eps.to(x.dtype) if isinstance(eps, torch.Tensor) else torch.tensor(eps, dtype=x.dtype)  # copies arrays
    eps = torch.nan_to_num(eps, nan=0.0)
    return (x + eps.view(-1, *([1] * (x.ndim - 1))) * d).clamp_(0.0, 1.0)



def _logit_margin(z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per row of logits z [M, K] (float64)."""
    zy = z.gather(1, ys[:, None]).squeeze(1)
    other = z.scatter(1, ys[:, None], float("-inf")).amax(1)
    return (zy - other).double()


@torch.inference_mode()
def _margin(model, xs, ys, dev):
    """(prediction, margin z_y − max_{j≠y} z_j) of images xs [M, ...] with labels ys [M]."""
    z = model(xs.to(dev, non_blocking=True)).float()
    return z.argmax(-1).cpu(), _logit_margin(z, ys.to(z.device)).cpu()


def itp_point(lo, hi, m_lo, m_hi, j, n_max, tol, kappa1, kappa2: float = 2.0):
    """Next ITP query in brackets [lo, hi] (tensors) with margins m_lo ≥ 0 ≥ m_hi, iteration j,
    per-sample iteration budgets ``n_max`` and truncation factors ``kappa1``.

    Regula falsi, truncated towards the midpoint by κ1·(hi − lo)^κ2 and projected into the
    ball around the midpoint whose radius keeps the worst case at ``n_max`` iterations (the
    bisection count for a final bracket ≤ ``tol``).
    """
    width = hi - lo
    mid = (lo + hi) / 2
    denom = (m_lo - m_hi).clamp_min(1e-30)
    x_f = (lo * (-m_hi) + hi * m_lo) / denom  # zero of the chord
    sigma = torch.sign(mid - x_f)
    delta = kappa1 * width ** kappa2
    x_t = torch.where(delta <= (mid - x_f).abs(), x_f + sigma * delta, mid)
    r = (tol / 2 * torch.exp2(n_max - j) - width / 2).clamp_min(0)
    return torch.where((x_t - mid).abs() <= r, x_t, mid - sigma * r)


#: Default coarse grid, as fractions of eps_max: geometric near 0 (most ε* are small, and a tight
#: first bracket makes the interpolation accurate), then steps of 1/4. With tol = 1e-4·eps_max the
#: worst case is 1 + 7 + ⌈log₂(0.25 / 1e-4)⌉ = 20 passes.
DEFAULT_GRID = (1 / 256, 1 / 64, 1 / 16, 1 / 4, 1 / 2, 3 / 4, 1.0)


def _check_grid(grid) -> tuple[float, ...]:
    """Coarse grid as increasing fractions in (0, 1] ending at 1 (an int n: n uniform steps)."""
    if isinstance(grid, int):
        if grid < 1:
            raise ValueError(f"a uniform grid needs at least one step, got {grid}")
        grid = tuple((k + 1) / grid for k in range(grid))
    grid = tuple(float(g) for g in grid)
    if not grid or grid[-1] != 1.0 or any(b <= a for a, b in zip((0.0, *grid[:-1]), grid)):
        raise ValueError(f"grid must increase strictly within (0, 1] and end at 1, got {grid}")
    return grid


def max_passes(grid=DEFAULT_GRID, eps_max: float = 1.0, tol: float = 1e-4) -> int:
    """Worst-case forward passes per sample of :func:`travel` for this grid."""
    edges = [0.0, *_check_grid(grid)]
    widest = max(b - a for a, b in zip(edges[:-1], edges[1:])) * eps_max
    return 1 + len(grid) + max(0, math.ceil(math.log2(widest / tol)))


@torch.inference_mode()
def travel(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps_max: float = 1.0, tol: float = 1e-4,
           grid=DEFAULT_GRID, batch_size: int = 500, progress: bool = True) -> pd.DataFrame:
    """Distance to the decision boundary along directions ``d`` for every sample.

    Args:
        model: pixels [N, C, H, W] in [0, 1] → logits [N, K].
        x: images [N, C, H, W] in [0, 1]; y: labels [N]; d: directions [N, C, H, W] (any norm is
           used as given; :func:`curvlib.direction.direction` gives ‖d‖ = √D, i.e. ε in pixel units).
        eps_max: largest ε searched (> 0). tol: bracket width at which refinement stops (> 0).
        grid: increasing coarse points as fractions of eps_max, ending at 1 (an int n means n
              uniform steps). batch_size: samples per chunk (memory budget).
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
    grid = _check_grid(grid)
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    dev = model_device(model)
    n = len(x)
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
        z0 = model(xb.to(dev)).float().cpu()
        p = z0.softmax(-1)
        passes[sl] += 1
        conf0[sl], pred0[sl] = p.max(-1)
        alive = pred0[sl] == yb  # correctly classified at the start
        hi = torch.full((len(yb),), float("nan"), dtype=torch.float64)
        lo = torch.zeros(len(yb), dtype=torch.float64)
        m_lo = _logit_margin(z0, yb)
        m_hi = torch.zeros(len(yb), dtype=torch.float64)
        searching = alive.clone()
        cls = torch.full((len(yb),), -1, dtype=torch.long)

        def probe(idx, e):
            """Classify samples idx at ε = e [len(idx)]; move their bracket ends; True where wrong."""
            pr, m = _margin(model, positions(xb[idx], db[idx], e.float()), yb[idx], dev)
            passes[s + idx] += 1
            wrong = pr != yb[idx]
            hi[idx[wrong]], m_hi[idx[wrong]], cls[idx[wrong]] = e[wrong], m[wrong].clamp_max(0), pr[wrong]
            lo[idx[~wrong]], m_lo[idx[~wrong]] = e[~wrong], m[~wrong].clamp_min(0)
            return wrong

        for frac in grid:
            idx = torch.nonzero(searching).flatten()
            if len(idx) == 0:
                break
            wrong = probe(idx, torch.full((len(idx),), frac * eps_max, dtype=torch.float64))
            searching[idx[wrong]] = False
        # refine every crossed bracket below tol: ITP on the margin, within each sample's bisection count
        active = torch.nonzero(~torch.isnan(hi)).flatten()
        width0 = hi[active] - lo[active]
        n_max = torch.zeros(len(yb), dtype=torch.float64)
        kappa1 = torch.zeros(len(yb), dtype=torch.float64)
        n_max[active] = torch.ceil(torch.log2(width0 / tol)).clamp_min(0)
        kappa1[active] = ITP_KAPPA1 / width0
        j = 0
        while len(active := active[(hi[active] - lo[active]) > tol]):
            q = itp_point(lo[active], hi[active], m_lo[active], m_hi[active], j, n_max[active], tol,
                          kappa1[active])
            probe(active, torch.minimum(torch.maximum(q, lo[active]), hi[active]))
            j += 1
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
                      eps_max: float = 1.0, tol: float = 1e-4, seed: int = 0, refresh: bool = False,
                      checkpoint=None) -> pd.DataFrame:
    """Cached :func:`travel` of one model on the profile's first ``n`` test images (default
    ``profile.n_travel``) along ``kind`` directions (``fgsm`` or a seeded random kind);
    ``checkpoint``: other weights (e.g. an epoch snapshot)."""
    return runner.run("travel", model_name, profile, checkpoint=checkpoint, refresh=refresh, n=n, kind=kind,
                      eps_max=eps_max, tol=tol, seed=seed)


def _crossed(df: pd.DataFrame) -> str:
    return f"{df.kind.iloc[0]}: {int((df.status == 'crossed').sum())}/{len(df)} crossed"


@runner.experiment("travel", defaults=lambda p: {"n": p.n_travel, "kind": "fgsm", "eps_max": 1.0, "tol": 1e-4,
                                                 "seed": 0},
                   code=("travel",), calls=({"kind": "fgsm"}, {"kind": "random"}), summary=_crossed)
def _travel_part(model, profile, shard, context, *, n, kind, eps_max, tol, seed) -> pd.DataFrame:
    from . import data
    from .direction import direction

    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size, index=index)
    df = travel(model, x, y, d, eps_max=eps_max, tol=tol, batch_size=profile.batch_size)
    return df.assign(index=index.numpy(), model=model.name, kind=kind)


def median_by_confidence(df: pd.DataFrame, edges=(0.0, 0.5, 0.7, 0.9, 0.99, 1.0)) -> pd.DataFrame:
    """Median ε* of crossed samples per confidence band (lo, hi], with counts, per model/kind."""
    ok = df[df.status == "crossed"].copy()
    labels = [f"[{lo:g}, {hi:g}]" if i == 0 else f"({lo:g}, {hi:g}]"
              for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    ok["band"] = pd.cut(ok.confidence, list(edges), include_lowest=True, labels=labels)
    keys = [c for c in ("model", "kind") if c in ok.columns]
    g = ok.groupby(keys + ["band"], observed=False)["eps"]
    return g.agg(median="median", n="size").reset_index()


def low_confidence_summary(frames: dict[str, pd.DataFrame], threshold: float = 0.9) -> pd.DataFrame:
    """Per model: median ε* of crossed samples with confidence ≤ ``threshold`` (``low``) and above
    it (``high``), the Spearman rank correlation of confidence and ε* over crossed samples, and the
    status counts."""
    rows = []
    for name, df in frames.items():
        ok = df[df.status == "crossed"]
        low, high = ok[ok.confidence <= threshold], ok[ok.confidence > threshold]
        rho = ok.confidence.rank().corr(ok.eps.rank()) if len(ok) > 2 else float("nan")
        counts = df.status.value_counts()
        rows.append({"model": name, "family": models.family(name),
                     "median ε* low": low.eps.median(), "n low": len(low),
                     "median ε* high": high.eps.median(), "n high": len(high),
                     "spearman": rho, **{s: int(counts.get(s, 0)) for s in STATUSES}})
    return pd.DataFrame(rows).set_index("model")
