"""Flatness of a probed plane: the residual of the best affine map from the plane's coordinates to its features."""
from __future__ import annotations

import math

import torch

from .probe import as_grid


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
    A_, B_ = as_grid(a, "a").double(), as_grid(b, "b").double()
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
