"""Trajectories in representation space (the paper's Figure 1): probes along lines and planes.

Move an image along a line, x(ε) = clip(x + ε d), or over a plane, x + a d₁ + b d₂, and record the
penultimate features f(x(ε)). A CNN's features move almost straight; a Transformer's bend (their
turning angle θ: :mod:`curvlib.measure.angles`). All probes are batched, chunked to ``batch_size``
and run on the model's device without gradients; ε grids and 2-D projections live here too.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data import check_pixels
from ..inference import autocast, call, model_device


def as_grid(eps, name="eps") -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=torch.float32).flatten()
    if e.numel() == 0 or not torch.isfinite(e).all():
        raise ValueError(f"{name} must be a non-empty finite 1-D grid")
    return e


@torch.inference_mode()
def _forward_points(model, pts: torch.Tensor, batch_size: int, progress: bool, desc: str, bf16: bool = False,
                    index: torch.Tensor | None = None):
    """Features and logits of many points; kept on the device until the end (no per-batch sync);
    ``bf16``: autocast the forward passes; ``index`` [len(pts)]: each point's image number."""

    dev = model_device(model)
    on = bool(bf16)
    feats, logits = [], []
    for i in tqdm(range(0, len(pts), batch_size), desc=desc, disable=not progress, leave=False):
        xb = pts[i:i + batch_size].to(dev, non_blocking=True)
        with autocast(dev, on):
            f = call(model, xb, None if index is None else index[i:i + batch_size], features=True)
            z = model.head(f)
        feats.append(f.float())
        logits.append(z.float())
    return torch.cat(feats).cpu(), torch.cat(logits).cpu()


def checked_lines(x: torch.Tensor, d: torch.Tensor, eps) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Checked inputs of a batch of lines: (directions as [M, N, C, H, W], grid [S], whether d had the M axis)."""
    check_pixels(x)
    e = as_grid(eps)
    multi = d.ndim == x.ndim + 1
    if (d.shape[1:] if multi else d.shape) != x.shape:
        raise ValueError(f"directions must have shape {tuple(x.shape)} or [M, {', '.join(map(str, x.shape))}], "
                         f"got {tuple(d.shape)}")
    if not torch.isfinite(d).all():
        raise ValueError("directions contain NaN or inf")
    return (d if multi else d[None]), e, multi


def probe_line(model, x: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 500, progress: bool = False,
               bf16: bool = False) -> dict:
    """Features along lines: images x [N, C, H, W] in [0, 1], directions d [N, C, H, W] (or [M, N, C, H, W]
    for M directions per image), grid eps [S] → dict with ``features`` [(M,) N, S, F], ``logits``
    [(M,) N, S, K], ``pred`` [(M,) N, S] and ``eps`` [S]; points are clip(x + ε d). ``bf16``:
    autocast the forward passes."""
    dd, e, multi = checked_lines(x, d, eps)
    M, N, S = dd.shape[0], x.shape[0], e.numel()
    pts = (x[None, :, None] + e.view(1, 1, S, 1, 1, 1) * dd[:, :, None]).clamp_(0, 1)  # [M, N, S, C, H, W]
    image = torch.arange(N).view(1, N, 1).expand(M, N, S).reshape(-1)  # each point's image
    f, lg = _forward_points(model, pts.reshape(-1, *x.shape[1:]), batch_size, progress, "probe line", bf16, image)
    f, lg = f.view(M, N, S, -1), lg.view(M, N, S, -1)
    if not multi:
        f, lg = f[0], lg[0]
    return {"features": f, "logits": lg, "pred": lg.argmax(-1), "eps": e}


def probe_plane(model, x: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, a, b, batch_size: int = 500,
                progress: bool = False) -> dict:
    """Features on the grid clip(x + a_i d₁ + b_j d₂) around one image x [1, C, H, W] (or [C, H, W]).

    Returns ``features`` [A, B, F], ``logits`` [A, B, K], ``pred`` [A, B], ``a`` [A], ``b`` [B].
    """
    x = x if x.ndim == 4 else x[None]
    check_pixels(x)
    if len(x) != 1:
        raise ValueError(f"probe_plane takes one image, got {len(x)}")
    for name, dv in (("d1", d1), ("d2", d2)):
        if dv.reshape(-1).shape != x.reshape(-1).shape:
            raise ValueError(f"{name} must have the image's shape {tuple(x.shape[1:])}, got {tuple(dv.shape)}")
    A, B = as_grid(a, "a"), as_grid(b, "b")
    d1, d2 = d1.reshape(x.shape[1:]), d2.reshape(x.shape[1:])
    pts = (x[0][None, None] + A.view(-1, 1, 1, 1, 1) * d1 + B.view(1, -1, 1, 1, 1) * d2).clamp_(0, 1)
    f, lg = _forward_points(model, pts.reshape(-1, *x.shape[1:]), batch_size, progress, "probe plane")
    f, lg = f.view(len(A), len(B), -1), lg.view(len(A), len(B), -1)
    return {"features": f, "logits": lg, "pred": lg.argmax(-1), "a": A, "b": B}


def project_2d(points: torch.Tensor, method: str = "pca", basis: torch.Tensor | None = None,
               center: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """2-D coordinates of points [..., F] and the projection used (to reuse on other points).

    ``pca``: the two leading principal axes of the points themselves (fitted in float64);
    ``plane``: the plane spanned by ``basis`` [2, F] (orthonormalised), e.g. the output
    displacements f(x + d₁) − f(x) and f(x + d₂) − f(x). Passing the returned ``proj`` dict's
    ``basis`` and ``center`` back projects new points into the same view.
    """
    P = torch.as_tensor(points, dtype=torch.float64)
    if P.ndim < 2 or P.shape[-1] < 2:
        raise ValueError(f"points must be [..., F] with F ≥ 2, got {tuple(P.shape)}")
    flat = P.reshape(-1, P.shape[-1])
    if not torch.isfinite(flat).all():
        raise ValueError("points contain NaN or inf")
    c = flat.mean(0) if center is None else torch.as_tensor(center, dtype=torch.float64)
    if basis is None:
        if method == "pca":
            if len(flat) < 2:
                raise ValueError("PCA needs at least two points")
            _, _, V = torch.linalg.svd(flat - c, full_matrices=False)
            basis = V[:2]
            # fix the signs so the view does not flip between calls
            basis = basis * torch.sign(basis[:, basis.abs().argmax(1)].diagonal()).view(-1, 1)
        elif method == "plane":
            raise ValueError("method 'plane' needs basis [2, F] (two displacement vectors)")
        else:
            raise ValueError(f"method must be 'pca' or 'plane', got {method!r}")
    else:
        basis = torch.as_tensor(basis, dtype=torch.float64)
        if basis.shape != (2, flat.shape[1]):
            raise ValueError(f"basis must be [2, {flat.shape[1]}], got {tuple(basis.shape)}")
        b1 = basis[0] / basis[0].norm().clamp_min(1e-300)  # Gram–Schmidt keeps each axis' orientation
        b2 = basis[1] - (basis[1] @ b1) * b1
        if b2.norm() < 1e-12 * max(1.0, basis[1].norm()):
            raise ValueError("basis vectors are parallel: they span no plane")
        basis = torch.stack([b1, b2 / b2.norm()])
    coords = ((flat - c) @ basis.T).reshape(*P.shape[:-1], 2).float()
    if not torch.isfinite(coords).all():
        raise ValueError("the 2-D coordinates overflow float32 (points or center too large)")
    return coords, {"basis": basis, "center": c}


# ---------------------------------------------------------------------------------------------
# Meshes (the input plane's image): how far from flat, and a grid step tied to the boundary.
# ---------------------------------------------------------------------------------------------


def grid_step(eps_star, fraction: float = 0.25, nice: bool = True) -> float:
    """A mesh step no larger than ``fraction`` × the median distance to the decision boundary.

    Args:
        eps_star: a travel frame (:func:`curvlib.measure.travel.travel`; its ``crossed`` rows' ``eps``
            are used) or ε* values (pixel units, NaN ignored).
        fraction: step / median ε* at most (¼: a boundary crossing is at least ~4 grid steps
            from the image for the median sample, so neighbouring grid points don't jump it).
        nice: round down to two significant digits (e.g. 0.005461 → 0.0054), never up.

    Returns the step in pixel units (same units as ε*).
    """
    if hasattr(eps_star, "columns"):
        if not {"eps", "status"} <= set(eps_star.columns):
            raise ValueError("a travel frame needs columns eps and status")
        e = eps_star.loc[eps_star.status == "crossed", "eps"].to_numpy(dtype=float)
    else:
        e = np.asarray(eps_star)
        if not (np.issubdtype(e.dtype, np.floating) or np.issubdtype(e.dtype, np.integer)):
            raise TypeError(f"ε* must be real numbers, got dtype {e.dtype}")
        e = e.astype(float).ravel()
    e = e[np.isfinite(e)]
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if e.size == 0 or np.median(e) <= 0:
        raise ValueError("need at least one positive ε* (no sample crossed the boundary?)")
    step = fraction * float(np.median(e))
    if not (0 < step < math.inf):
        raise ValueError(f"the grid step {fraction} × median ε* = {step} is not a positive finite number")
    if nice:
        k = 10.0 ** (np.floor(np.log10(step)) - 1)
        step = min(step, float(f"{np.floor(step / k * (1 + 1e-9)) * k:.2g}"))  # 1e-9: 0.0050 stays 0.0050
    return step


# Rulers: how θ is measured (protocol, step, clipping) and a step-free curvature

PROTOCOLS = ("oneway", "symmetric")


def eps_grid(protocol: str, eps_range: float, n_steps: int) -> torch.Tensor:
    """The ε grid [n_steps + 1] of a protocol: ``oneway`` = the paper's travel from x, ε_n = n·eps_range/n_steps
    for n = 0 … n_steps; ``symmetric`` = linspace(−eps_range, eps_range, n_steps + 1) (ε = 0 in the middle)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if not (isinstance(n_steps, int) and n_steps >= 2):
        raise ValueError(f"n_steps must be an integer ≥ 2, got {n_steps!r}")
    if not (eps_range > 0 and np.isfinite(eps_range)):
        raise ValueError(f"eps_range must be positive and finite, got {eps_range!r}")
    lo = 0.0 if protocol == "oneway" else -eps_range
    if eps_range > float(np.finfo(np.float32).max):
        raise ValueError(f"eps_range {eps_range!r} does not fit in float32")
    grid = torch.linspace(lo, eps_range, n_steps + 1)
    if not (grid.diff() > 0).all():
        raise ValueError(f"eps_range {eps_range!r} over {n_steps} steps is below float32's resolution (steps of 0)")
    return grid


def line_points(x: torch.Tensor, d: torch.Tensor, eps) -> torch.Tensor:
    """Input points clip(x + ε d) [M, N, S, C, H, W] for images x [N, C, H, W], directions d [M, N, C, H, W]
    and grid eps [S] (the path in input space, for its own θ: the ruler's baseline)."""
    e = as_grid(eps)
    if not (isinstance(x, torch.Tensor) and isinstance(d, torch.Tensor)):
        raise TypeError("x and d must be torch Tensors")
    if x.ndim != 4 or d.ndim != 5 or d.shape[1:] != x.shape:
        raise ValueError(f"need images x [N, C, H, W] and directions d [M, N, C, H, W], got {tuple(x.shape)} and "
                         f"{tuple(d.shape)}")
    return (x[None, :, None] + e.view(1, 1, -1, 1, 1, 1) * d[:, :, None]).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Summaries the curvature chapter reports (tidy frames; the chapter only displays them)


