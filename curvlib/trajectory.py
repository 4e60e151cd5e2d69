r"""Trajectories in representation space and their local curvature θ (the paper's Figures 1, 4, 5).

Move an image along a line, x(ε) = clip(x + ε d), or over a plane, x + a d₁ + b d₂, and record the
penultimate features f(x(ε)). A CNN's features move almost straight; a Transformer's bend.
The local curvature at step n is the direction change between successive output steps,

.. math:: \theta(n) = \angle\big(f(x_{n+1}) - f(x_n),\; f(x_n) - f(x_{n-1})\big) \in [0, \pi],

0 on a straight path (π = reversal). All probes are batched, chunked to ``batch_size`` and run on
the model's device without gradients.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import runner
from .data import check_pixels
from .inference import model_device


def _as_grid(eps, name="eps") -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=torch.float32).flatten()
    if e.numel() == 0 or not torch.isfinite(e).all():
        raise ValueError(f"{name} must be a non-empty finite 1-D grid")
    return e


@torch.inference_mode()
def _forward_points(model, pts: torch.Tensor, batch_size: int, progress: bool, desc: str, bf16: bool = False):
    """Features and logits of many points; kept on the device until the end (no per-batch sync);
    ``bf16``: autocast the forward passes."""
    from .inference import autocast

    dev = model_device(model)
    on = bool(bf16)
    feats, logits = [], []
    for i in tqdm(range(0, len(pts), batch_size), desc=desc, disable=not progress, leave=False):
        xb = pts[i:i + batch_size].to(dev, non_blocking=True)
        with autocast(dev, on):
            f = model.features(xb)
            z = model.head(f)
        feats.append(f.float())
        logits.append(z.float())
    return torch.cat(feats).cpu(), torch.cat(logits).cpu()


def probe_line(model, x: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 500, progress: bool = False,
               bf16: bool = False) -> dict:
    """Features along lines: images x [N, C, H, W] in [0, 1], directions d [N, C, H, W] (or [M, N, C, H, W]
    for M directions per image), grid eps [S] → dict with ``features`` [(M,) N, S, F], ``logits``
    [(M,) N, S, K], ``pred`` [(M,) N, S] and ``eps`` [S]; points are clip(x + ε d). ``bf16``:
    autocast the forward passes."""
    check_pixels(x)
    e = _as_grid(eps)
    multi = d.ndim == x.ndim + 1
    if (d.shape[1:] if multi else d.shape) != x.shape:
        raise ValueError(f"directions must have shape {tuple(x.shape)} or [M, {', '.join(map(str, x.shape))}], "
                         f"got {tuple(d.shape)}")
    dd = d if multi else d[None]
    M, N, S = dd.shape[0], x.shape[0], e.numel()
    pts = (x[None, :, None] + e.view(1, 1, S, 1, 1, 1) * dd[:, :, None]).clamp_(0, 1)  # [M, N, S, C, H, W]
    f, lg = _forward_points(model, pts.reshape(-1, *x.shape[1:]), batch_size, progress, "probe line", bf16)
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
    A, B = _as_grid(a, "a"), _as_grid(b, "b")
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
    coords = (flat - c) @ basis.T
    return coords.reshape(*P.shape[:-1], 2).float(), {"basis": basis, "center": c}


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
    t = torch.as_tensor(th).reshape(-1, th.shape[-1]).double().numpy()
    with np.errstate(all="ignore"):
        return pd.DataFrame({
            "step": np.arange(1, t.shape[1] + 1), "min": np.nanmin(t, 0), "q1": np.nanquantile(t, 0.25, 0),
            "median": np.nanmedian(t, 0), "q3": np.nanquantile(t, 0.75, 0), "max": np.nanmax(t, 0),
            "mean": np.nanmean(t, 0)})


# ---------------------------------------------------------------------------------------------
# Meshes (the input plane's image): how far from flat, and a grid step tied to the boundary.
# ---------------------------------------------------------------------------------------------

def affine_residual(features, a, b) -> torch.Tensor:
    r"""Relative residual ρ of the best affine fit of a mesh: how far the image of an input grid
    is from an affine (flat, evenly spaced) image of that grid.

    Args:
        features: [..., A, B, F] — mesh point (i, j) is f(x + a_i d₁ + b_j d₂), the features (any
            units) of grid point (a_i, b_j); leading dims (images, models …) are separate meshes.
        a: [A] and b: [B] — the grid's input coordinates (pixel units; A, B ≥ 2, not constant).

    Fits f(a, b) ≈ f₀ + a·u + b·v (f₀, u, v ∈ ℝ^F) by least squares over the A·B grid points and
    returns, per mesh (shape [...], float64, dimensionless),

    .. math:: \rho = \frac{\lVert f - \hat f\rVert_F}{\lVert f - \bar f\rVert_F} \in [0, 1],

    the residual's norm over the norm of the mesh's variation about its mean (sums over grid
    points and feature dimensions). ρ² is the share of the mesh's variance that no affine image
    of the grid explains. ρ = 0 exactly when the mesh is a parallelogram grid (every mesh line
    straight, parallel and evenly spaced); bends, folds and uneven spacing raise it; ρ = 1 when
    the mesh has no affine part at all (e.g. f = a·b on a symmetric grid). ρ is computed on the
    full features, not on a 2-D projection; it is invariant to translating, rotating and
    uniformly scaling the features and to rescaling a and b, but grows with the grid's extent
    for any smooth curved map (≈ linearly for small extents), so compare meshes on the same
    input grid. NaN for a mesh that is a single point (no variation).
    """
    f = torch.as_tensor(features).double()
    A_, B_ = _as_grid(a, "a").double(), _as_grid(b, "b").double()
    if f.ndim < 3 or f.shape[-3:-1] != (len(A_), len(B_)):
        raise ValueError(f"features must be [..., A, B, F] with A = len(a) = {len(A_)}, B = len(b) = {len(B_)}, "
                         f"got {tuple(f.shape)}")
    if len(A_) < 2 or len(B_) < 2 or A_.std() == 0 or B_.std() == 0:
        raise ValueError("a and b need at least two distinct values each (a 2-D grid)")
    if not torch.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    ga, gb = torch.meshgrid(A_, B_, indexing="ij")
    X = torch.stack([torch.ones_like(ga), ga, gb], -1).reshape(-1, 3)  # [A·B, 3] design matrix
    Q, _ = torch.linalg.qr(X)  # orthonormal basis of the affine functions on the grid
    flat = f.reshape(*f.shape[:-3], -1, f.shape[-1])  # [..., A·B, F]
    resid = flat - Q @ (Q.T @ flat)
    centred = flat - flat.mean(-2, keepdim=True)
    num, den = resid.square().sum((-2, -1)), centred.square().sum((-2, -1))
    rho = (num / den).sqrt().clamp(max=1.0)
    return torch.where(den > 0, rho, torch.full_like(rho, float("nan")))


def interior_directions(x: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, extent_a: float,
                        extent_b: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions restricted to the pixels that stay inside [0, 1] over the whole grid.

    The plane clip(x + a d₁ + b d₂), |a| ≤ ``extent_a``, |b| ≤ ``extent_b`` (default the same), is
    not an affine image of the grid wherever clipping bites (on a black background, every pixel
    that moves down), so a mesh's flatness would measure the clipping as well as the model. Here
    both directions are zeroed on every pixel p with x_p ± (extent_a·|d₁_p| + extent_b·|d₂_p|)
    outside [0, 1]; the remaining pixels move exactly as before (no renormalisation), so the grid
    needs no clipping and is an exact affine image of (a, b): a mesh's ρ then measures the model
    alone. x, d1, d2: [C, H, W] or [1, C, H, W] (returned in d1's shape); extents in pixel units.
    """
    eb = extent_a if extent_b is None else extent_b
    if not (extent_a >= 0 and eb >= 0):
        raise ValueError(f"extents must be ≥ 0, got {extent_a}, {eb}")
    xv = x.reshape(d1.shape) if x.numel() == d1.numel() else None
    if xv is None or d2.numel() != d1.numel():
        raise ValueError(f"x, d1 and d2 must have the same number of pixels, got {tuple(x.shape)}, "
                         f"{tuple(d1.shape)}, {tuple(d2.shape)}")
    reach = extent_a * d1.abs() + eb * d2.reshape(d1.shape).abs()
    free = (xv - reach >= 0) & (xv + reach <= 1)
    return d1 * free, d2.reshape(d1.shape) * free


def grid_step(eps_star, fraction: float = 0.25, nice: bool = True) -> float:
    """A mesh step no larger than ``fraction`` × the median distance to the decision boundary.

    Args:
        eps_star: a travel frame (:func:`curvlib.travel.travel`; its ``crossed`` rows' ``eps``
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
        e = np.asarray(eps_star, dtype=float).ravel()
    e = e[np.isfinite(e)]
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if e.size == 0 or np.median(e) <= 0:
        raise ValueError("need at least one positive ε* (no sample crossed the boundary?)")
    step = fraction * float(np.median(e))
    if nice:
        k = 10.0 ** (np.floor(np.log10(step)) - 1)
        step = min(step, float(f"{np.floor(step / k * (1 + 1e-9)) * k:.2g}"))  # 1e-9: 0.0050 stays 0.0050
    return step


def theta_experiment(model_name: str, kind: str = "random", profile=None, eps_range: float = 0.1,
                     seed: int = 0, refresh: bool = False, checkpoint=None) -> dict:
    """Cached θ over ``profile.n_theta_images`` images × ``n_directions`` directions × ``n_steps`` steps on
    ε ∈ [−eps_range, eps_range] (FGSM: one direction per image, so the random directions are
    replaced by FGSM for every image; random: seeded Gaussian). Returns ``theta`` [M, N, S−2],
    ``eps`` [S] and the per-step ``summary`` frame. ``checkpoint``: other weights."""
    return runner.run("theta", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      eps_range=eps_range, seed=seed)


def _theta_defaults(profile) -> dict:
    return {"n_images": profile.n_theta_images, "n_directions": profile.n_directions, "n_steps": profile.n_steps,
            "kind": "random", "eps_range": 0.1, "seed": 0}


def _theta_part(model, profile, shard, context, *, n_images, n_directions, n_steps, kind, eps_range, seed):
    """θ of the shard's directions (every size-th from rank): [M_shard, N, S−2]."""
    from . import data
    from .direction import direction

    rank, size = shard or (0, 1)
    S = n_steps + 1
    M = 1 if kind == "fgsm" else n_directions
    x, y = data.test_set(profile, n=n_images, model_name=model.name if profile.dataset == "imagenet" else None)
    ms = list(range(rank, M, size))
    if kind == "fgsm":
        d = direction(model, x, y, "fgsm")[None][: len(ms)]
    else:
        d = torch.stack([direction(None, x, kind=kind, seed=seed * 100_000 + m) for m in ms])
    eps = torch.linspace(-eps_range, eps_range, S)
    chunk = max(1, (4 * profile.batch_size) // (len(x) * S))  # directions per probe (memory budget)
    th = [torch.empty(0, len(x), S - 2)]
    for m in tqdm(range(0, len(ms), chunk), desc=f"theta {model.name} {kind}", leave=False):
        feats = probe_line(model, x, d[m:m + chunk], eps, profile.batch_size, bf16=profile.autocast == "bf16")
        th.append(theta(feats["features"]).cpu())
    return torch.cat(th)


def _theta_merge(parts: list, params: dict) -> dict:
    """Interleave the ranks' directions back into order; add the grid and the summary."""
    size = len(parts)
    th = torch.empty(sum(len(p) for p in parts), *parts[0].shape[1:])
    for r, part in enumerate(parts):
        th[r::size] = part
    eps = torch.linspace(-params["eps_range"], params["eps_range"], params["n_steps"] + 1)
    return {"theta": th, "eps": eps, "summary": theta_summary(th)}


runner.experiment("theta", defaults=_theta_defaults, merge=_theta_merge, code=("trajectory",), autocast=True,
                  calls=({"kind": "random"}, {"kind": "fgsm"}),
                  summary=lambda r: f"θ {tuple(r['theta'].shape)}")(_theta_part)
