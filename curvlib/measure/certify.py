r"""Certify the boundary search on the run in front of you: re-check a seeded subset of its rows by a dense scan.

:func:`curvlib.measure.travel.travel` finds the *first* crossing it can see with a few forward passes, but a
margin read at finitely many points cannot rule out a narrow wrong-class island between two probes
(see its docstring). So instead of trusting a miss rate measured once on other data, a chapter
re-checks its own rows: :func:`dense_scan` walks ε = k·step, k = 1, 2, … from each image of a seeded
subset and stops at the first wrong prediction; :func:`categories` compares that with the search's
bracket (eps_lo, eps]; :func:`summary` counts the categories with a 95 % Wilson interval on the
agreement. A disagreement is reported with its sample number, never replaced by the scan's value.

Categories, per sample correctly classified at ε = 0 by both:

* ``agree``: both say never, or the bracket overlaps the scan's cell (first_wrong − step, first_wrong];
* ``earlier, verified``: the search's ε* lies before the scan's cell (or the scan never crosses) and the
  model is wrong there (re-checked): an island narrower than the scan's spacing; counted as agreement,
  since the search's answer is a verified crossing the scan could not see;
* ``earlier, NOT verified``, ``missed`` (the bracket lies after the scan's first wrong point: a crossing
  stepped over), ``false never`` (never, but the scan finds a wrong point ≤ eps_max), ``start differs``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import stats
from ..inference import model_device
from .travel import logit_margin, positions

CATEGORIES = ("agree", "earlier, verified", "earlier, NOT verified", "missed", "false never", "start differs")
#: Categories that count as agreement (the search's answer is right, or a verified earlier crossing).
AGREEING = ("agree", "earlier, verified")


@torch.inference_mode()
def dense_scan(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, step: float = 1e-3, k_max: int = 1000,
               batch_size: int = 500, progress: bool = False) -> dict:
    """First wrong k per sample along clip(x + k·step·d), k = 1 … k_max (the clipping of ``travel``).

    x, d: [N, C, H, W] (pixels in [0, 1]); y: [N]. Cost Σ_i first_wrong_i forward passes (k_max for
    samples that never cross), batched over the samples still scanning. Returns dict(first=[N] int:
    −1 misclassified at ε = 0, 0 never up to k_max·step, else k ≥ 1; pred0=[N]; new_class=[N]
    (prediction at the first wrong point, −1 if none); margin=[N, k_max] float32 (m(k·step), NaN where
    not scanned); passes=int)."""
    if not (step > 0 and math.isfinite(step)) or int(k_max) < 1:
        raise ValueError(f"dense_scan needs step > 0 and k_max ≥ 1, got step {step}, k_max {k_max}")
    if d.shape != x.shape or len(y) != len(x):
        raise ValueError(f"x {tuple(x.shape)}, d {tuple(d.shape)} and y {tuple(y.shape)} must describe the same "
                         "samples")
    n, dev = len(x), model_device(model)
    pred0 = torch.empty(n, dtype=torch.long)
    for s in range(0, n, batch_size):
        pred0[s:s + batch_size] = model(x[s:s + batch_size].to(dev)).argmax(-1).cpu()
    first = torch.where(pred0 == y, 0, -1)
    new_class = torch.full((n,), -1, dtype=torch.long)
    margin = torch.full((n, int(k_max)), float("nan"), dtype=torch.float32)
    passes = n
    bar = tqdm(range(1, int(k_max) + 1), desc="dense scan", leave=False, mininterval=2.0, disable=not progress)
    for k in bar:
        idx = torch.nonzero(first == 0).flatten()
        if len(idx) == 0:
            break
        for s in range(0, len(idx), batch_size):
            sub = idx[s:s + batch_size]
            eps = torch.full((len(sub),), k * step, dtype=torch.float32)
            z = model(positions(x[sub], d[sub], eps).to(dev)).float().cpu()
            pr = z.argmax(-1)
            margin[sub, k - 1] = logit_margin(z, y[sub]).float()
            wrong = pr != y[sub]
            first[sub[wrong]] = k
            new_class[sub[wrong]] = pr[wrong]
        passes += len(idx)
    bar.close()
    return {"first": first.numpy(), "pred0": pred0.numpy(), "new_class": new_class.numpy(),
            "margin": margin.numpy(), "passes": passes}


@torch.inference_mode()
def categories(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, df: pd.DataFrame, scan: dict,
               step: float = 1e-3) -> np.ndarray:
    """Each sample's category (module docstring) from a :func:`curvlib.measure.travel.travel` frame ``df`` and a
    :func:`dense_scan` of the same images x, labels y and directions d. Returns [N] object array."""
    first = np.asarray(scan["first"])
    if len(df) != len(first) or len(df) != len(x):
        raise ValueError(f"travel frame ({len(df)} rows), scan ({len(first)}) and images ({len(x)}) differ in length")
    ours = df.status.astype(str).to_numpy()
    eps, lo = df.eps.to_numpy(dtype=float), df.eps_lo.to_numpy(dtype=float)
    cat = np.full(len(df), None, dtype=object)
    start_ours, start_scan = ours == "misclassified_at_start", first == -1
    cat[start_ours != start_scan] = "start differs"
    both = ~start_ours & ~start_scan
    sc_never = both & (first == 0)
    cell_hi = first * step
    cat[sc_never & (ours == "never")] = "agree"
    cat[both & ~sc_never & (ours == "never")] = "false never"
    crossed = both & (ours == "crossed")
    overlap = crossed & ~sc_never & (np.maximum(lo, cell_hi - step) <= np.minimum(eps, cell_hi) + 1e-9)
    cat[overlap] = "agree"
    earlier = crossed & (sc_never | (eps < cell_hi - step - 1e-9)) & ~overlap
    cat[crossed & ~sc_never & ~overlap & ~earlier] = "missed"
    idx = np.flatnonzero(earlier)
    if len(idx):
        t = torch.from_numpy(idx)
        pr = model(positions(x[t], d[t], torch.from_numpy(eps[idx]).float()).to(model_device(model))).argmax(-1).cpu()
        wrong = (pr != y[t]).numpy()
        cat[idx[wrong]] = "earlier, verified"
        cat[idx[~wrong]] = "earlier, NOT verified"
    return cat


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """:func:`curvlib.stats.wilson` for a proportion k / n, and (NaN, NaN) when nothing was checked (n = 0)."""
    if n == 0 and k == 0:
        return float("nan"), float("nan")
    return stats.wilson(k, n, level)


def summary(checks: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per (model, kind) of a frame of :func:`check_experiment` rows: samples checked, the count
    per category, the agreement share with its Wilson interval, and the sample numbers that disagree."""
    need = {"model", "kind", "index", "category"}
    if not need <= set(checks.columns):
        raise ValueError(f"certification rows need columns {sorted(need)}, got {list(checks.columns)}")
    rows = []
    for (model, kind), g in checks.groupby(["model", "kind"], sort=False):
        counts = {c: int((g.category == c).sum()) for c in CATEGORIES}
        k = sum(counts[c] for c in AGREEING)
        lo, hi = wilson(k, len(g), level)
        bad = g["index"][~g.category.isin(AGREEING)]
        rows.append({"model": model, "kind": kind, "checked": len(g), **counts, "agreement": k / len(g) if len(g) else
                     float("nan"), "lo": lo, "hi": hi, "disagreeing samples": ", ".join(f"#{int(i)}" for i in bad)})
    return pd.DataFrame(rows)


def sentence(table: pd.DataFrame, level: float = 0.95) -> str:
    """The certification in one Markdown sentence from a :func:`summary` table: the pooled agreement
    with its Wilson interval, and every disagreeing row by model, direction kind and row number."""
    if table.empty:
        return "No row of this run could be re-checked (no image was classified correctly at ε = 0)."
    n = int(table.checked.sum())
    k = int(table[list(AGREEING)].to_numpy().sum())
    lo, hi = wilson(k, n, level)
    bad = [f"{r['model']} / {r['kind']} {r['disagreeing samples']}" for _, r in table.iterrows()
           if r["disagreeing samples"]]
    text = (f"Of the {n} rows re-checked on this run, {k} agree with the dense scan: {k / n:.1%} "
            f"[{lo:.1%}, {hi:.1%}] ({level:.0%} Wilson interval), ")
    if not bad:
        return text + "and no row disagrees."
    return text + "and these disagree (left as the search found them): " + "; ".join(bad) + "."


__all__ = ["CATEGORIES", "AGREEING", "dense_scan", "categories", "wilson", "summary"]
