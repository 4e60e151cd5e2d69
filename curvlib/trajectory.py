r"""Trajectories in representation space and their local curvature θ (the paper's Figures 1, 4, 5).

Move an image along a line, x(ε) = clip(x + ε d), or over a plane, x + a d₁ + b d₂, and record the
penultimate features f(x(ε)). A CNN's features move almost straight; a Transformer's bend.
The local curvature at step n is the direction change between successive output steps,

.. math:: \theta(n) = \angle\big(f(x_{n+1}) - f(x_n),\; f(x_n) - f(x_{n-1})\big) \in [0, \pi],

0 on a straight path (π = reversal). All probes are batched, chunked to ``batch_size`` and run on
the model's device without gradients.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import runner
from .data import check_pixels
from .inference import call, model_device


def _as_grid(eps, name="eps") -> torch.Tensor:
    e = torch.as_tensor(eps, dtype=torch.float32).flatten()
    if e.numel() == 0 or not torch.isfinite(e).all():
        raise ValueError(f"{name} must be a non-empty finite 1-D grid")
    return e


@torch.inference_mode()
def _forward_points(model, pts: torch.Tensor, batch_size: int, progress: bool, desc: str, bf16: bool = False,
                    index: torch.Tensor | None = None):
    """Features and logits of many points; kept on the device until the end (no per-batch sync);
    ``bf16``: autocast the forward passes; ``index`` [len(pts)]: each point's image number."""
    from .inference import autocast

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


def _lines(x: torch.Tensor, d: torch.Tensor, eps) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Checked inputs of a batch of lines: (directions as [M, N, C, H, W], grid [S], whether d had the M axis)."""
    check_pixels(x)
    e = _as_grid(eps)
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
    dd, e, multi = _lines(x, d, eps)
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
    coords = ((flat - c) @ basis.T).reshape(*P.shape[:-1], 2).float()
    if not torch.isfinite(coords).all():
        raise ValueError("the 2-D coordinates overflow float32 (points or center too large)")
    return coords, {"basis": basis, "center": c}


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
    if f.shape[-1] == 0:
        raise ValueError(f"features need at least one feature dimension F, got {tuple(f.shape)}")
    if len(A_) < 2 or len(B_) < 2 or A_.std() == 0 or B_.std() == 0:
        raise ValueError("a and b need at least two distinct values each (a 2-D grid)")
    if not torch.isfinite(f).all():
        raise ValueError("features contain NaN or inf")
    ga, gb = torch.meshgrid(A_, B_, indexing="ij")
    X = torch.stack([torch.ones_like(ga), ga, gb], -1).reshape(-1, 3)  # [A·B, 3] design matrix
    Q, _ = torch.linalg.qr(X)  # orthonormal basis of the affine functions on the grid
    flat = f.reshape(*f.shape[:-3], len(A_) * len(B_), f.shape[-1])  # [..., A·B, F]
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
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in (x, d1, d2)):
        raise TypeError("x, d1 and d2 must be floating-point torch Tensors")
    if not (extent_a >= 0 and eb >= 0 and math.isfinite(extent_a) and math.isfinite(eb)):
        raise ValueError(f"extents must be finite and ≥ 0, got {extent_a}, {eb}")
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
    e = _as_grid(eps)
    if not (isinstance(x, torch.Tensor) and isinstance(d, torch.Tensor)):
        raise TypeError("x and d must be torch Tensors")
    if x.ndim != 4 or d.ndim != 5 or d.shape[1:] != x.shape:
        raise ValueError(f"need images x [N, C, H, W] and directions d [M, N, C, H, W], got {tuple(x.shape)} and "
                         f"{tuple(d.shape)}")
    return (x[None, :, None] + e.view(1, 1, -1, 1, 1, 1) * d[:, :, None]).clamp(0, 1)


def theta_local(model, x: torch.Tensor, d: torch.Tensor, eps, delta: float = 1e-4, batch_size: int = 500,
                bf16: bool = False) -> torch.Tensor:
    """The authors' local measure: features at ε − Δ, ε, ε + Δ and θ(ε) = π − ∠(f₋ − f, f₊ − f) (radians),
    i.e. :func:`theta` of that three-point path. x [N, C, H, W], d [N, ...] or [M, N, ...], eps [E] →
    θ [(M,) N, E]."""
    if not (delta > 0 and np.isfinite(delta)):
        raise ValueError(f"delta must be positive and finite, got {delta!r}")
    e = _as_grid(eps)
    grid = (e[:, None] + delta * torch.tensor([-1.0, 0.0, 1.0])).flatten()  # [E·3]
    f = probe_line(model, x, d, grid, batch_size, bf16=bf16)["features"]
    return theta(f.reshape(*f.shape[:-2], len(e), 3, f.shape[-1]))[..., 0]


def _unfused(model):
    """Context: timm's fused attention off (forward-mode AD has no rule for the fused kernel)."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        mods = [m for m in model.modules() if getattr(m, "fused_attn", None) is True]
        for m in mods:
            m.fused_attn = False
        try:
            yield
        finally:
            for m in mods:
                m.fused_attn = True
    return ctx()


def _blocks(model) -> list[tuple[str, torch.nn.Module]]:
    """The residual blocks of a timm network in forward order (ResNet stages' blocks, MobileNetV2 /
    ViT ``blocks``, Swin stages' blocks), for per-layer attribution."""
    net = getattr(model, "net", model)
    out = []
    for name, mod in net.named_modules():
        parts = name.split(".")
        if (len(parts) == 2 and parts[0] in ("layer1", "layer2", "layer3", "layer4")) or \
                (len(parts) == 2 and parts[0] == "blocks") or \
                (len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2].isdigit()) or \
                (len(parts) == 4 and parts[0] == "layers" and parts[2] == "blocks"):
            out.append((name, mod))
    # MobileNetV2 nests blocks two deep (blocks.<stage>.<i>): keep the innermost level only
    names = [n for n, _ in out]
    return [(n, m) for n, m in out if not any(o.startswith(n + ".") for o in names)]


def _turning(f1: torch.Tensor, f2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(κ, ω, speed) from first and second derivatives [P, F]: κ = ‖(I − uuᵀ) f''‖ / ‖f'‖², ω = κ‖f'‖."""
    f1, f2 = f1.detach().flatten(1).double(), f2.detach().flatten(1).double()
    speed = f1.norm(dim=1)
    u = f1 / speed.clamp_min(1e-30)[:, None]
    normal = (f2 - (f2 * u).sum(1, keepdim=True) * u).norm(dim=1)
    kappa = normal / speed.clamp_min(1e-30) ** 2
    bad = speed <= 1e-30
    return (kappa.masked_fill(bad, float("nan")), (normal / speed.clamp_min(1e-30)).masked_fill(bad, float("nan")),
            speed)


def curvature(model, x: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 250, blocks: bool = False,
              progress: bool = False) -> dict:
    r"""Step-free curvature of the feature path f(ε) = features(clip(x + ε d)).

    With f' and f'' the first and second directional derivatives along d (nested forward-mode AD,
    ``torch.func.jvp``) and u = f'/‖f'‖,

    .. math:: \kappa(\varepsilon) = \frac{\lVert (I - uu^\top) f''(\varepsilon)\rVert}{\lVert f'(\varepsilon)\rVert^2},
              \qquad \omega = \kappa \lVert f'\rVert \;\text{(radians per unit } \varepsilon\text{)}.

    κ is in 1/feature units; ω, the rate at which the direction of motion turns, is comparable across
    models and is what θ/Δε tends to for a smooth path. A ReLU network is piecewise linear, so f'' = 0
    almost everywhere: its bends are kinks, counted by :func:`kinks`. x [N, C, H, W] in [0, 1], d [N, …]
    or [M, N, …], eps [E]. Returns ``kappa``, ``omega``, ``speed`` [(M,) N, E] and, with ``blocks``,
    ``block_omega`` [B, (M,) N, E] for the residual blocks named in ``block_names``.
    """
    from torch.func import jvp

    dd, e, multi = _lines(x, d, eps)
    M, N, E = dd.shape[0], x.shape[0], e.numel()
    dev = model_device(model)
    P = M * N * E  # points, direction-major, then image, then ε
    named = _blocks(model) if blocks else []
    out = {k: [] for k in ("kappa", "omega", "speed")}
    block_omega = [[] for _ in named]
    was = getattr(model, "check_inputs", None)
    with _unfused(model):
        if was is not None:
            model.check_inputs = False  # dual tensors: the range check would read their primal anyway
        try:
            for i in tqdm(range(0, P, batch_size), desc="curvature", disable=not progress, leave=False):
                idx = torch.arange(i, min(i + batch_size, P))
                m, n, k = idx // (N * E), (idx // E) % N, idx % E
                xb, db, eb, nb = x[n].to(dev), dd[m, n].to(dev), e[k].to(dev), n.to(dev)

                def g(t, xb=xb, db=db, nb=nb):
                    captured = []
                    hooks = [m.register_forward_hook(lambda _m, _i, o: captured.append(o)) for _, m in named]
                    try:
                        f = call(model, (xb + t.view(-1, 1, 1, 1) * db).clamp(0, 1), nb, features=True)
                    finally:
                        for h in hooks:
                            h.remove()
                    return (f, *captured)

                ones = torch.ones_like(eb)
                f1, f2 = jvp(lambda t: jvp(g, (t,), (ones,))[1], (eb,), (ones,))
                k, w, sp = _turning(f1[0], f2[0])
                out["kappa"].append(k.cpu())
                out["omega"].append(w.cpu())
                out["speed"].append(sp.cpu())
                for j in range(len(named)):
                    block_omega[j].append(_turning(f1[j + 1], f2[j + 1])[1].cpu())
        finally:
            if was is not None:
                model.check_inputs = was
    shape = (M, N, E) if multi else (N, E)
    res = {k: torch.cat(v).view(shape).float() for k, v in out.items()}
    if blocks:
        res["block_omega"] = torch.stack([torch.cat(b).view(shape) for b in block_omega]).float()
        res["block_names"] = [n for n, _ in named]
    return res


#: Activation modules whose input's sign pattern defines the linear pieces (ReLU6 also at 6).
_ACTIVATIONS = ("ReLU", "ReLU6", "GELU", "LeakyReLU", "SiLU")


@torch.inference_mode()
def kinks(model, x: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 500, progress: bool = False) -> torch.Tensor:
    """Activation switches along each path: between successive points of the grid eps [S], how many
    activation units change sign (for ReLU6 also cross 6) — the kinks a piecewise-linear network's
    path goes through. x [N, C, H, W], d [N, …] or [M, N, …] → counts [(M,) N, S − 1] (int64). Read
    by pre-hooks, before any in-place activation overwrites its input."""
    dd, e, multi = _lines(x, d, eps)
    M, N, S = dd.shape[0], x.shape[0], e.numel()
    pts = line_points(x, dd, e).reshape(M * N, S, *x.shape[1:])
    dev = model_device(model)
    paths_per_batch = max(1, batch_size // S)
    counts = []
    for i in tqdm(range(0, M * N, paths_per_batch), desc="kinks", leave=False, disable=not progress):
        states = []

        def hook(m, inp):
            z = inp[0]
            st = (z > 0).to(torch.int8) + ((z > 6).to(torch.int8) if type(m).__name__ == "ReLU6" else 0)
            states.append(st.reshape(-1, S, st[0].numel()))

        mods = [m for m in model.modules() if type(m).__name__ in _ACTIVATIONS]
        hooks = [m.register_forward_pre_hook(hook) for m in mods]
        try:
            model.features(pts[i:i + paths_per_batch].reshape(-1, *x.shape[1:]).to(dev))
        finally:
            for h in hooks:
                h.remove()
        c = sum((st[:, 1:] != st[:, :-1]).sum(-1) for st in states) if states else \
            torch.zeros(len(pts[i:i + paths_per_batch]), S - 1, dtype=torch.long)
        counts.append(c.long().cpu())
    c = torch.cat(counts).view(M, N, S - 1)
    return c if multi else c[0]


def theta_experiment(model_name: str, kind: str = "random", profile=None, eps_range: float = 0.1,
                     seed: int = 0, refresh: bool = False, checkpoint=None, protocol: str = "oneway",
                     saturation: bool = False) -> dict:
    """Cached θ over ``profile.n_theta_images`` images × ``n_directions`` directions × ``n_steps`` steps
    (FGSM: one direction per image; random: seeded Gaussian), on the ``protocol``'s grid (:func:`eps_grid`:
    ``oneway`` from x along +d, the default, or ``symmetric`` around x); ``saturation``: use
    :func:`curvlib.direction.saturation_aware` directions. Returns ``theta`` [M, N, S−2] of the features,
    ``input_theta`` [M, N, S−2] of the clipped input points themselves (the ruler's baseline), ``eps``
    [S] and the per-step ``summary`` frame. ``checkpoint``: other weights."""
    return runner.run("theta", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      eps_range=eps_range, seed=seed, protocol=protocol, saturation=saturation)


def _theta_defaults(profile) -> dict:
    return {"n_images": profile.n_theta_images, "n_directions": profile.n_directions, "n_steps": profile.n_steps,
            "kind": "random", "eps_range": 0.1, "seed": 0, "protocol": "oneway", "saturation": False}


def _path_directions(model, profile, n_images, kind, seed, saturation, ms):
    """Images x [N, …] and directions [len(ms), N, …] (direction numbers ``ms``; FGSM has one)."""
    from . import data
    from .direction import direction, saturation_aware

    x, y = data.test_set(profile, n=n_images, model_name=model.name if profile.dataset == "imagenet" else None)
    if kind == "fgsm":
        d = direction(model, x, y, "fgsm")[None][: len(ms)]
    elif ms:
        d = torch.stack([direction(None, x, kind=kind, seed=seed * 100_000 + m) for m in ms])
    else:
        d = torch.empty(0, *x.shape)
    if saturation and len(d):
        d = torch.stack([saturation_aware(dm, x) for dm in d])
    return x, d


def _theta_part(model, profile, shard, context, *, n_images, n_directions, n_steps, kind, eps_range, seed,
                protocol, saturation):
    """θ of the shard's directions (every size-th from rank): features and input path, [M_shard, N, S−2] each."""
    rank, size = shard or (0, 1)
    S = n_steps + 1
    M = 1 if kind == "fgsm" else n_directions
    ms = list(range(rank, M, size))
    x, d = _path_directions(model, profile, n_images, kind, seed, saturation, ms)
    eps = eps_grid(protocol, eps_range, n_steps)
    chunk = max(1, (4 * profile.batch_size) // (len(x) * S))  # directions per probe (memory budget)
    th, th_in = [torch.empty(0, len(x), S - 2)], [torch.empty(0, len(x), S - 2)]
    for m in tqdm(range(0, len(ms), chunk), desc=f"theta {model.name} {kind}", leave=False):
        feats = probe_line(model, x, d[m:m + chunk], eps, profile.batch_size, bf16=profile.autocast == "bf16")
        th.append(theta(feats["features"]).cpu())
        th_in.append(theta(line_points(x, d[m:m + chunk], eps).flatten(3)))
    return {"theta": torch.cat(th), "input_theta": torch.cat(th_in)}


def _interleave(parts: list, key: str) -> torch.Tensor:
    """Direction-sharded tensors [M_r, …] of every rank back into direction order [M, …]."""
    size = len(parts)
    out = torch.empty(sum(len(p[key]) for p in parts), *parts[0][key].shape[1:], dtype=parts[0][key].dtype)
    for r, part in enumerate(parts):
        out[r::size] = part[key]
    return out


def _theta_merge(parts: list, params: dict) -> dict:
    """Interleave the ranks' directions back into order; add the grid and the summary."""
    th = _interleave(parts, "theta")
    eps = eps_grid(params["protocol"], params["eps_range"], params["n_steps"])
    return {"theta": th, "input_theta": _interleave(parts, "input_theta"), "eps": eps, "summary": theta_summary(th)}


runner.experiment("theta", defaults=_theta_defaults, merge=_theta_merge, code=("trajectory",), autocast=True,
                  calls=({"kind": "random"}, {"kind": "fgsm"}),
                  summary=lambda r: f"θ {tuple(r['theta'].shape)}")(_theta_part)


def curvature_experiment(model_name: str, kind: str = "fgsm", profile=None, eps_range: float = 0.1,
                         seed: int = 0, refresh: bool = False, checkpoint=None, protocol: str = "oneway",
                         saturation: bool = False, n_directions: int | None = None) -> dict:
    """Cached :func:`curvature` (κ, ω, speed, per-block ω) and :func:`kinks` on the same paths as
    :func:`theta_experiment` (``n_directions`` random directions, default min(profile's, 8); FGSM: one).
    Returns ``kappa``, ``omega``, ``speed`` [M, N, S], ``kinks`` [M, N, S−1], ``block_omega`` [B, M, N, S],
    ``block_names`` and ``eps`` [S]."""
    return runner.run("curvature", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      eps_range=eps_range, seed=seed, protocol=protocol, saturation=saturation,
                      n_directions=n_directions)


def _curvature_part(model, profile, shard, context, *, n_images, n_directions, n_steps, kind, eps_range, seed,
                    protocol, saturation):
    """κ, ω, speed, kinks and per-block ω of the shard's directions (direction-major, like θ)."""
    rank, size = shard or (0, 1)
    M = 1 if kind == "fgsm" else n_directions
    ms = list(range(rank, M, size))
    x, d = _path_directions(model, profile, n_images, kind, seed, saturation, ms)
    eps = eps_grid(protocol, eps_range, n_steps)
    names = [n for n, _ in _blocks(model)]
    if not ms:
        z = torch.empty(0, len(x), len(eps))
        return {"kappa": z, "omega": z, "speed": z, "kinks": torch.empty(0, len(x), len(eps) - 1, dtype=torch.long),
                "block_omega": torch.empty(0, len(names), len(x), len(eps)), "block_names": names}
    long = profile.dataset == "imagenet"  # progress bars where the loops take minutes (224 px models)
    c = curvature(model, x, d, eps, batch_size=max(1, profile.batch_size // 2), blocks=True, progress=long)
    return {"kappa": c["kappa"], "omega": c["omega"], "speed": c["speed"],
            "kinks": kinks(model, x, d, eps, profile.batch_size, progress=long),
            "block_omega": c["block_omega"].transpose(0, 1), "block_names": names}


def _curvature_merge(parts: list, params: dict) -> dict:
    """Interleave the ranks' directions; per-block ω back to [B, M, N, S]."""
    out = {k: _interleave(parts, k) for k in ("kappa", "omega", "speed", "kinks", "block_omega")}
    out["block_omega"] = out["block_omega"].transpose(0, 1).contiguous()
    out["block_names"] = list(parts[0]["block_names"])
    out["eps"] = eps_grid(params["protocol"], params["eps_range"], params["n_steps"])
    return out


runner.experiment("curvature", defaults=lambda p: {**_theta_defaults(p), "kind": "fgsm",
                                                    "n_directions": min(p.n_directions, 8)},
                  merge=_curvature_merge, code=("trajectory",), calls=({"kind": "fgsm"}, {"kind": "random"}),
                  summary=lambda r: f"κ {tuple(r['kappa'].shape)}")(_curvature_part)


#: Steps Δ of the θ-versus-step sweep (the authors' local measure uses 1e-4).
STEP_SWEEP = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def theta_step_experiment(model_name: str, profile=None, kind: str = "fgsm", eps_range: float = 0.1,
                          deltas=STEP_SWEEP, refresh: bool = False, checkpoint=None) -> pd.DataFrame:
    """Cached θ-versus-step sweep: the authors' local measure (:func:`theta_local`, clipped) at every Δ of
    ``deltas`` on the interior points ε_n, n = 1 … n_steps − 1, of the one-way grid, for the profile's
    ``n_theta_images`` images along ``kind`` (one direction per image: FGSM, or seeded random).
    One row per (Δ, image, ε): ``delta``, ``image``, ``eps``, ``theta`` (radians)."""
    return runner.run("theta_step", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      eps_range=eps_range, deltas=tuple(float(v) for v in deltas))


def _theta_step_part(model, profile, shard, context, *, n_images, n_steps, kind, eps_range, deltas, seed):
    """Local θ of the shard's images (every size-th from rank) at every Δ."""
    rank, size = shard or (0, 1)
    x, d = _path_directions(model, profile, n_images, kind, seed, False, [0])
    keep = list(range(rank, len(x), size))
    eps = eps_grid("oneway", eps_range, n_steps)[1:-1]
    rows = []
    for delta in deltas:
        th = theta_local(model, x[keep], d[0][keep], eps, delta, profile.batch_size)  # [N_shard, E]
        rows.append(pd.DataFrame({"delta": float(delta), "image": np.repeat(keep, len(eps)),
                                  "eps": np.tile(eps.double().numpy(), len(keep)),
                                  "theta": th.double().numpy().ravel()}))
    return pd.concat(rows, ignore_index=True)


def _theta_step_merge(parts: list, params: dict) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True)
    return df.sort_values(["delta", "image", "eps"], kind="stable").reset_index(drop=True)


runner.experiment("theta_step", defaults=lambda p: {"n_images": p.n_theta_images, "n_steps": p.n_steps,
                                                     "kind": "fgsm", "eps_range": 0.1, "deltas": STEP_SWEEP,
                                                     "seed": 0},
                  merge=_theta_step_merge, code=("trajectory",),
                  summary=lambda df: f"{df.delta.nunique()} steps × {len(df) // max(df.delta.nunique(), 1)} points"
                  )(_theta_step_part)


# ---------------------------------------------------------------------------------------------
# Summaries the curvature chapter reports (tidy frames; the chapter only displays them)

#: |ε| below which the symmetric grid's steps are dropped in the "away from x" summary (the clipping kink).
AWAY = 0.01


def _mean_deg(th: torch.Tensor, keep=None) -> float:
    t = np.degrees(torch.as_tensor(th).double().numpy())
    t = t[..., keep] if keep is not None else t
    return float(np.nanmean(t)) if np.isfinite(t).any() else float("nan")


def ruler_table(results: dict) -> pd.DataFrame:
    """Mean θ (degrees) of features and of the input path itself for every ruler.

    ``results`` maps (model, kind, protocol, saturation) → :func:`theta_experiment` result. One row per
    (model, kind, ruler): ``ruler`` (readable), ``theta`` (features), ``input_theta`` (the clipped input
    points: 0 for a straight input path); symmetric grids also get a row restricted to |ε| > AWAY."""
    rows = []
    for (model, kind, protocol, saturation), r in results.items():
        label = protocol + (", saturation-aware" if saturation else "")
        variants = [(label, None)]
        if protocol == "symmetric":
            variants.append((f"{label}, |ε| > {AWAY:g}", (r["eps"][1:-1].abs() > AWAY).numpy()))
        for name, keep in variants:
            rows.append({"model": model, "kind": kind, "ruler": name, "theta": _mean_deg(r["theta"], keep),
                         "input_theta": _mean_deg(r["input_theta"], keep)})
    return pd.DataFrame(rows)


def step_table(sweeps: dict) -> pd.DataFrame:
    """Per model and step Δ of a :func:`theta_step_experiment` sweep: mean and median θ (degrees) and
    mean θ/Δ (radians per unit ε, comparable with ω). ``sweeps``: model → sweep frame."""
    out = []
    for model, df in sweeps.items():
        g = df.assign(deg=np.degrees(df.theta), rate=df.theta / df.delta).groupby("delta")
        out.append(pd.DataFrame({"model": model, "delta": g.size().index, "mean": g.deg.mean().to_numpy(),
                                 "median": g.deg.median().to_numpy(), "rate": g.rate.mean().to_numpy()}))
    return pd.concat(out, ignore_index=True)


def curvature_table(results: dict) -> pd.DataFrame:
    """Per model: median and mean ω (radians per unit ε, smooth bending), median κ, mean kinks per unit ε
    (activation switches per step / step length) and the block whose output turns fastest (median ω).
    ``results``: model → :func:`curvature_experiment` result."""
    rows, blocks = [], block_omega_table(results)
    for model, r in results.items():
        w = r["omega"].double().numpy()
        step = float(r["eps"][1] - r["eps"][0])
        bw = blocks.omega_median[blocks.model == model].to_numpy()
        rows.append({"model": model, "omega_median": float(np.nanmedian(w)), "omega_mean": float(np.nanmean(w)),
                     "kappa_median": float(np.nanmedian(r["kappa"].double().numpy())),
                     "kinks_per_eps": float(r["kinks"].double().mean()) / step,
                     "top_block": r["block_names"][int(np.nanargmax(bw))] if len(bw) else None,
                     "top_block_omega": float(np.nanmax(bw)) if len(bw) else float("nan")})
    return pd.DataFrame(rows)


def block_omega_table(results: dict) -> pd.DataFrame:
    """Per model and residual block (forward order): the median ω of the block's output (radians per
    unit ε) and the block's relative depth 0 … 1. ``results``: model → :func:`curvature_experiment` result."""
    out = []
    for model, r in results.items():
        names = list(r["block_names"])
        bw = r["block_omega"].double().numpy()
        out.append(pd.DataFrame({
            "model": model, "block": names, "depth": np.linspace(0, 1, len(names)) if len(names) > 1 else 0.0,
            "omega_median": np.nanmedian(bw.reshape(len(names), -1), axis=1) if names else []}))
    return pd.concat(out, ignore_index=True)


def step_exponent(steps: pd.DataFrame) -> pd.Series:
    """Per model, the least-squares slope of log(mean θ) on log Δ over a :func:`step_table`: 1 for a
    smooth path (θ ≈ ωΔ), below 1 when θ comes from kinks dense enough that θ/Δ grows as Δ shrinks."""
    out = {}
    for model, g in steps.groupby("model", sort=False):
        ok = (g["mean"] > 0) & np.isfinite(g["mean"])
        fit = np.polyfit(np.log(g.delta[ok]), np.log(g["mean"][ok]), 1) if ok.sum() >= 2 else [float("nan")]
        out[model] = float(fit[0])
    return pd.Series(out, name="exponent")
