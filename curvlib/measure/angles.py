r"""The finite-step turning angle θ of a path of features (the paper's Figures 4, 5).

.. math:: \theta(n) = \angle\big(f(x_{n+1}) - f(x_n),\; f(x_n) - f(x_{n-1})\big) \in [0, \pi],

0 on a straight path (π = reversal); :func:`theta_summary` gives its quantile bands per step and
:func:`theta_local` the authors' local version at a small step Δ."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .probe import as_grid, probe_line


def theta(features: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Direction change θ(n) in radians between successive steps, for n = 1 … S−2.

    features [..., S, F] (any leading batch dims: images, directions) → θ [..., S−2]. Steps of
    zero length give NaN (no direction)."""
    f = torch.as_tensor(features)
    if f.ndim < 2 or f.shape[-2] < 3:
        raise ValueError(f"features must be [..., S, F] with S ≥ 3 steps, got {tuple(f.shape)}")
    f = f.double()
    step = f[..., 1:, :] - f[..., :-1, :]  # [..., S-1, F]
    u, w = step[..., :-1, :], step[..., 1:, :]
    nu, nw = u.norm(dim=-1), w.norm(dim=-1)
    cos = (u * w).sum(-1) / (nu * nw).clamp_min(eps)
    th = torch.arccos(cos.clamp(-1, 1))
    return th.masked_fill((nu <= eps) | (nw <= eps), float("nan")).float()


def theta_summary(th: torch.Tensor) -> pd.DataFrame:
    """Per step n (last dim of θ [..., S−2]): min, q1, median, q3, max, mean over all other dims (NaN ignored)."""
    th = torch.as_tensor(th)
    if th.ndim < 1 or th.shape[-1] == 0:
        raise ValueError(f"θ must be [..., S−2] with at least one step, got shape {tuple(th.shape)}")
    if th.is_complex():
        raise TypeError(f"θ must be real, got dtype {th.dtype}")
    t = th.reshape(-1, th.shape[-1]).double().numpy()
    with np.errstate(all="ignore"):
        return pd.DataFrame({
            "step": np.arange(1, t.shape[1] + 1), "min": np.nanmin(t, 0), "q1": np.nanquantile(t, 0.25, 0),
            "median": np.nanmedian(t, 0), "q3": np.nanquantile(t, 0.75, 0), "max": np.nanmax(t, 0),
            "mean": np.nanmean(t, 0)})


def theta_local(model, x: torch.Tensor, d: torch.Tensor, eps, delta: float = 1e-4, batch_size: int = 500,
                bf16: bool = False) -> torch.Tensor:
    """The authors' local measure: features at ε − Δ, ε, ε + Δ and θ(ε) = π − ∠(f₋ − f, f₊ − f) (radians),
    i.e. :func:`theta` of that three-point path. x [N, C, H, W], d [N, ...] or [M, N, ...], eps [E] →
    θ [(M,) N, E]."""
    if not (delta > 0 and np.isfinite(delta)):
        raise ValueError(f"delta must be positive and finite, got {delta!r}")
    e = as_grid(eps)
    grid = (e[:, None] + delta * torch.tensor([-1.0, 0.0, 1.0])).flatten()  # [E·3]
    f = probe_line(model, x, d, grid, batch_size, bf16=bf16)["features"]
    return theta(f.reshape(*f.shape[:-2], len(e), 3, f.shape[-1]))[..., 0]
