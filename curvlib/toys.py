"""Hand-checkable toys: small models whose distances, jumps and angles follow from a formula, so a
reader can check curvlib's measurements (travel, the random jump, θ) against pencil and paper.

- :class:`Linear`: a linear classifier on pixels; :func:`linear_eps_star` is its exact ε* along a
  line (no clipping), e.g. ``margin / ‖w_y − w_j‖₁`` along the sign direction sign(w_j − w_y).
- :class:`Kinked`: two classes on two pixels whose margin has one ReLU kink; FGSM at the image
  sees only the flat side of the kink, FGSM after a small random jump sees the steep side
  (the random-jump chapter's mechanism, in two dimensions).
- :func:`polygon_path`, :func:`bent_line`: feature paths with known angles between steps.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Linear(nn.Module):
    """Logits W·vec(x) + b of images x [N, C, H, W] (pixels in [0, 1]); W [K, D], b [K]."""

    def __init__(self, W, b):
        super().__init__()
        W, b = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        if W.ndim != 2 or b.shape != (W.shape[0],) or W.shape[0] < 2:
            raise ValueError(f"need W [K, D] with K ≥ 2 and b [K], got {tuple(W.shape)} and {tuple(b.shape)}")
        if not (torch.isfinite(W).all() and torch.isfinite(b).all()):
            raise ValueError("W and b must be finite (no NaN or inf)")
        self.W = nn.Parameter(W, requires_grad=False)  # parameters: curvlib finds a model's device from them
        self.b = nn.Parameter(b, requires_grad=False)
        self.num_classes = W.shape[0]

    def forward(self, x):
        return x.flatten(1).to(self.W.dtype) @ self.W.T + self.b


def linear_eps_star(W, b, x, y: int, d) -> tuple[float, int | None]:
    """Exact ε* of the linear classifier (W [K, D], b [K]) along x + ε·d, without clipping, for one
    image x (D values) of label y and a direction d (D values, any norm: ε counts steps of d).

    The margin over class j, m_j(ε) = (w_y − w_j)·(x + εd) + b_y − b_j, falls at the rate
    r_j = (w_y − w_j)·d; it reaches 0 at ε_j = m_j(0) / (−r_j) where r_j < 0. ε* is the smallest
    ε_j, and j the class that overtakes y (``(inf, None)`` if no margin falls). For d =
    sign(w_j − w_y), r_j = −‖w_y − w_j‖₁, so ε_j = m_j(0) / ‖w_y − w_j‖₁."""
    W, b = torch.as_tensor(W, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    x, d = (torch.as_tensor(v, dtype=torch.float64).flatten() for v in (x, d))
    if x.shape != d.shape or W.shape[1] != x.numel():
        raise ValueError(f"x and d need W's {W.shape[1]} values, got {x.numel()} and {d.numel()}")
    if not all(torch.isfinite(v).all() for v in (W, b, x, d)):
        raise ValueError("W, b, x and d must be finite (no NaN or inf)")
    gap = W[y] - W  # [K, D]: w_y − w_j
    margin, rate = gap @ x + b[y] - b, gap @ d
    if margin[torch.arange(len(b)) != y].min() <= 0:
        raise ValueError(f"x is not classified as {y} (a margin is ≤ 0)")
    eps = torch.where(rate < 0, margin / -rate.clamp(max=-1e-300), torch.full_like(margin, math.inf))
    eps[y] = math.inf
    j = int(eps.argmin())
    return (float(eps[j]), j) if math.isfinite(eps[j]) else (math.inf, None)


class Kinked(nn.Module):
    """Two classes on images of two pixels u = (u₁, u₂) ([N, 1, 1, 2], pixels in [0, 1]).

    Logits (g(u), 0) with the margin g(u) = c − a·(u₂ − ½) + b·(u₁ − ½) − s·relu(u₁ − k): class 0
    while g > 0. Left of the kink (u₁ < k) the gradient is (b, −a), so FGSM (the sign of −∇g)
    walks along (−1, +1) and the margin falls at a + b per unit ε; right of it the gradient is
    (b − s, −a) and FGSM walks along (+1, +1), where the margin falls at s + a − b. Defaults: the
    image x = (½, ½) has g = c = 0.16 and FGSM needs ε* = 0.16 / 0.4 = 0.4 (no pixel is clipped on
    the way); after a jump of 0.05 along (+1, +1), past the kink at k = 0.52, the boundary is 0.03 /
    4.2 away: 0.057 in all, seven times nearer than FGSM's 0.4."""

    num_classes = 2

    def __init__(self, c: float = 0.16, a: float = 0.3, b: float = 0.1, s: float = 4.0, k: float = 0.52):
        super().__init__()
        if not (c > 0 and a > 0 and s > b > 0):
            raise ValueError("need c, a, b > 0 and s > b (the kink must turn the gradient's sign)")
        self.c, self.a, self.b, self.s, self.k = c, a, b, s, k
        self.register_parameter("anchor", nn.Parameter(torch.zeros(()), requires_grad=False))  # device

    def margin(self, x):
        """g(u) [N] of images x [N, 1, 1, 2]."""
        u = x.flatten(1).double() + self.anchor
        if u.shape[1] != 2:
            raise ValueError(f"Kinked takes images of 2 pixels, got {u.shape[1]}")
        return self.c - self.a * (u[:, 1] - 0.5) + self.b * (u[:, 0] - 0.5) - self.s * torch.relu(u[:, 0] - self.k)

    def forward(self, x):
        g = self.margin(x)
        return torch.stack([g, torch.zeros_like(g)], 1)


def polygon_path(sides: int, turns: float = 1.0) -> torch.Tensor:
    """Points [S, 2] around a regular polygon with ``sides`` sides (S = sides·turns + 1): every
    step turns by 360°/sides."""
    if sides < 3:
        raise ValueError(f"a polygon needs at least 3 sides, got {sides}")
    t = torch.arange(round(sides * turns) + 1, dtype=torch.float64) * (2 * math.pi / sides)
    return torch.stack([t.cos(), t.sin()], -1)


def bent_line(n_before: int, n_after: int, angle_deg: float, step: float = 1.0) -> torch.Tensor:
    """Points [n_before + n_after + 1, 2] of a path that goes straight along x for ``n_before`` equal
    steps, then turns once by ``angle_deg`` and goes straight for ``n_after`` steps: θ = 0 at every
    step but the turn, where θ = the angle (a piecewise-linear path, like a ReLU network's)."""
    if n_before < 1 or n_after < 1:
        raise ValueError("need at least one step before and after the turn")
    a = math.radians(angle_deg)
    steps = [torch.tensor([step, 0.0], dtype=torch.float64)] * n_before
    steps += [torch.tensor([step * math.cos(a), step * math.sin(a)], dtype=torch.float64)] * n_after
    return torch.cat([torch.zeros(1, 2, dtype=torch.float64), torch.stack(steps).cumsum(0)])


def plot_kinked(model: Kinked, x, routes: dict, ax=None, lim=(0.05, 0.95)):
    """The input plane of :class:`Kinked`: class 0 shaded, the boundary g = 0 and the kink
    u₁ = k as lines, the image x and each route's polyline. ``routes``: label → points [P, 2]
    (e.g. x → x_r → x_final)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    u = torch.linspace(*lim, 301, dtype=torch.float64)
    U1, U2 = torch.meshgrid(u, u, indexing="xy")
    g = model.margin(torch.stack([U1.flatten(), U2.flatten()], 1)).view(U1.shape)
    ax.contourf(U1, U2, g, levels=[0, g.max().item() + 1], colors=["#dbe9f6"])
    ax.contour(U1, U2, g, levels=[0], colors="black", linewidths=1.5)
    ax.axvline(model.k, color="gray", ls=":", lw=1)
    ax.text(model.k + 0.01, lim[0] + 0.02, "kink u₁ = k", color="gray", va="bottom", fontsize=8)
    for i, (label, pts) in enumerate(routes.items()):
        p = torch.as_tensor(pts, dtype=torch.float64).reshape(-1, 2)
        # the first route on top, dashed, so a later route along the same line does not hide it
        style = dict(ls="--", lw=1.2, color="black", zorder=5) if i == 0 else dict(
            ls="-", lw=2.5, alpha=0.8, color=plt.get_cmap("tab10")(i + 1))
        ax.plot(p[:, 0], p[:, 1], marker="o", ms=3, label=label, **style)
    x = torch.as_tensor(x, dtype=torch.float64).flatten()
    ax.plot(*x.tolist(), "k*", ms=12, label="x")
    ax.set(xlim=lim, ylim=lim, xlabel="pixel u₁", ylabel="pixel u₂", aspect="equal")
    ax.legend(fontsize=8, loc="upper right")
    return ax
