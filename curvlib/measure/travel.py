r"""Travel to the decision boundary: the smallest ε with argmax f(clip(x + ε d)) ≠ y.

:func:`travel` walks every sample of a batch along its line x + ε d (clipped to [0, 1]) and reads the
logit margin m(ε) = z_y − max_{j≠y} z_j at the points the boundary search
(:mod:`curvlib.measure.search`) asks for: one batched forward pass per search step for every sample
still searching. Its result is the first crossing ε* within ``tol``, verified wrong, with the last
point accepted as correct, or "never" up to ``eps_max``.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..inference import call, model_device
from .direction import check_inputs
from .search import max_passes, run_search, search_setting

STATUSES = ("crossed", "never", "misclassified_at_start")


def positions(x: torch.Tensor, d: torch.Tensor, eps) -> torch.Tensor:
    """clip(x + ε_i·d_i) for images x, directions d [N, C, H, W] and per-sample ε [N] (NaN → 0,
    i.e. the image itself: pass a travel frame's ``eps`` to get the images at the boundary)."""
    eps = eps.to(x.dtype) if isinstance(eps, torch.Tensor) else torch.tensor(eps, dtype=x.dtype)  # copies arrays
    eps = torch.nan_to_num(eps, nan=0.0)
    return (x + eps.view(-1, *([1] * (x.ndim - 1))) * d).clamp_(0.0, 1.0)



def logit_margin(z: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per row of logits z [M, K] (float64)."""
    zy = z.gather(1, ys[:, None]).squeeze(1)
    other = z.scatter(1, ys[:, None], float("-inf")).amax(1)
    return (zy - other).double()


@torch.inference_mode()
def _margin(model, xs, ys, dev, index=None):
    """(prediction, margin z_y − max_{j≠y} z_j) of images xs [M, ...] with labels ys [M] (``index``:
    their sample numbers, for a model that asks for them)."""
    z = call(model, xs.to(dev, non_blocking=True), index).float()
    return z.argmax(-1).cpu(), logit_margin(z, ys.to(z.device)).cpu()




def _check_grid(grid) -> tuple[float, ...] | None:
    """Optional march caps as increasing fractions in (0, 1] ending at 1 (an int n: n uniform steps)."""
    if grid is None:
        return None
    if isinstance(grid, int):
        if grid < 1:
            raise ValueError(f"a uniform grid needs at least one step, got {grid}")
        grid = tuple((k + 1) / grid for k in range(grid))
    grid = tuple(float(g) for g in grid)
    if not grid or grid[-1] != 1.0 or any(b <= a for a, b in zip((0.0, *grid[:-1]), grid)):
        raise ValueError(f"grid must increase strictly within (0, 1] and end at 1, got {grid}")
    return grid


#: No fixed coarse grid: the march adapts its steps (``grid`` may still cap them).
DEFAULT_GRID = None


@torch.inference_mode()
def travel(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps_max: float = 1.0, tol: float = 1e-4,
           grid=DEFAULT_GRID, batch_size: int = 500, progress: bool = True, budget: int | None = None,
           search="default") -> pd.DataFrame:
    """Distance to the decision boundary along directions ``d`` for every sample.

    Args:
        model: pixels [N, C, H, W] in [0, 1] → logits [N, K].
        x: images [N, C, H, W] in [0, 1]; y: labels [N]; d: directions [N, C, H, W] (any norm is
           used as given; :func:`curvlib.measure.direction.direction` gives ‖d‖ = √D, i.e. ε in pixel units).
        eps_max: largest ε searched (> 0). tol: bracket width at which refinement stops (> 0).
        grid: optional caps for the march as increasing fractions of eps_max ending at 1 (an int n
              means n uniform steps): a probe never passes the next grid point. None (default):
              no caps beyond the adaptive ones. batch_size: samples per chunk (memory budget).
        search: the search's setting, a name in :data:`SEARCHES` (``default``, ``careful``) or a
                :class:`Search`. budget: worst-case forward passes per sample, start included (see
                :func:`max_passes`; None: the setting's).
    Returns:
        DataFrame, one row per sample in input order: ``index``, ``label``, ``confidence`` and
        ``pred`` at x, ``eps`` (ε*; NaN unless crossed), ``eps_lo`` (largest ε accepted as correct:
        the crossing lies in (eps_lo, eps]), ``status`` (crossed / never / misclassified_at_start),
        ``new_class`` (prediction at ε*), ``passes`` (forward passes spent on the sample).
    """
    check_inputs(x, y, getattr(model, "num_classes", None))
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
    if tol < eps_max * 2.0 ** -19:
        raise ValueError(f"tol must be at least eps_max·2⁻¹⁹ = {eps_max * 2.0 ** -19:.3g} (float32 probes), got {tol}")
    grid = _check_grid(grid)
    setting = search_setting(search)
    budget = max_passes(eps_max, tol, setting.budget if budget is None else budget)
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
    caps = None if grid is None else torch.tensor(grid, dtype=torch.float64) * eps_max
    for s in tqdm(range(0, n, batch_size), desc=f"travel {getattr(model, 'name', '')}", disable=not progress,
                  leave=False):
        sl = slice(s, min(n, s + batch_size))
        xb, yb, db = x[sl].float(), y[sl].long(), d[sl].float()
        z0 = call(model, xb.to(dev), torch.arange(sl.start, sl.stop)).float().cpu()
        p = z0.softmax(-1)
        conf0[sl], pred0[sl] = p.max(-1)
        alive = pred0[sl] == yb  # correctly classified at the start

        def probe(i, q, xb=xb, yb=yb, db=db, s=s):
            # the probed samples are a subset: each hands the model its sample number (s + position)
            pr, m = _margin(model, positions(xb[i], db[i], q.float()), yb[i], dev, s + i)
            return pr != yb[i], pr, m

        st = run_search(probe, logit_margin(z0, yb), alive, eps_max, tol, setting, budget, caps)
        eps_star[sl], eps_lo[sl], new_class[sl], passes[sl] = st.hi, st.lo, st.cls, st.used
        status[sl] = np.where(alive.numpy(), np.where(torch.isnan(st.hi).numpy(), "never", "crossed"),
                              "misclassified_at_start")
    mis = status == "misclassified_at_start"
    eps_lo[torch.from_numpy(mis)] = float("nan")
    return pd.DataFrame({
        "index": np.arange(n), "label": y.cpu().numpy(), "pred": pred0.numpy(), "confidence": conf0.double().numpy(),
        "eps": eps_star.numpy(), "eps_lo": eps_lo.numpy(), "status": pd.Categorical(status, categories=STATUSES),
        "new_class": new_class.numpy(), "passes": passes.numpy(),
    })

