"""What the explorer, the trajectory player and the trajectories chapter show, computed (not drawn): plane
views, walks, mesh flatness per plane and the paper's Figure 4 single lines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .angles import theta
from .direction import direction
from .mesh import affine_residual, interior_directions
from .probe import line_points, probe_line, probe_plane, project_2d


def plane_view(model, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int, kind: str = "fgsm",
               seed: int = 0, interior: bool = False) -> dict:
    """Grid clip(x + a d₁ + b d₂) around one image x [1, C, H, W]: input coordinates (a, b) [G, G]
    (pixel units), 2-D projected features [G, G, 2], predictions [G, G], G = 2·n_steps + 1, the
    mesh's flatness ``rho`` (:func:`curvlib.measure.mesh.affine_residual` of the full features) and
    ``rho_input``, the same measure of the clipped input points themselves (clipping at 0 and 1
    already bends the input plane). ``interior``: restrict both directions to the pixels that
    never clip on this grid (:func:`curvlib.measure.mesh.interior_directions`): then
    ``rho_input`` = 0 and ``rho`` measures the model alone."""
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}")
    x = x if x.ndim == 4 else x[None]
    y = y.view(1)
    d1 = direction(model, x, y, "fgsm") if kind == "fgsm" else direction(None, x, kind="random", seed=seed)
    d2 = direction(None, x, kind="perp", seed=seed + 1, reference=d1)
    d1, d2 = d1[0], d2[0]
    if interior:
        d1, d2 = interior_directions(x[0], d1, d2, n_steps * step)
    g = torch.arange(-n_steps, n_steps + 1, dtype=torch.float32) * step
    p = probe_plane(model, x, d1, d2, g, g)
    xy, _ = project_2d(p["features"], "pca")
    pixels = (x[0][None, None] + g.view(-1, 1, 1, 1, 1) * d1 + g.view(1, -1, 1, 1, 1) * d2).clamp_(0, 1)
    return {"a": g, "b": g, "rep": xy, "pred": p["pred"], "label": int(y), "step": step, "n_steps": n_steps,
            "num_classes": p["logits"].shape[-1], "rho": float(affine_residual(p["features"], g, g)),
            "rho_input": float(affine_residual(pixels.flatten(2), g, g)), "interior": interior,
            "moving": float((d1 != 0).float().mean())}


def plane_views(models: dict, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int, kind: str = "fgsm",
                seed: int = 0, interior: bool = False) -> dict:
    """:func:`plane_view` of every model (name → model) around the same image x [1, C, H, W], on the same
    grid: name → view (what the explorer draws)."""
    return {name: plane_view(model, x, y, step, n_steps, kind, seed, interior) for name, model in models.items()}


def mesh_flatness(models: dict, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int,
                  kind: str = "fgsm", seed: int = 0, interior: bool = False):
    """Flatness ρ of each model's mesh around each image x[i] (the same grid for all models), as a
    frame with columns model, image, rho (features), rho_input (the clipped input points) and
    moving (share of pixels that move); see :func:`plane_view`."""
    rows = []
    for name, model in models.items():
        for i in range(len(x)):
            v = plane_view(model, x[i:i + 1], y[i:i + 1], step, n_steps, kind, seed, interior)
            rows.append({"model": name, "image": i, "rho": v["rho"], "rho_input": v["rho_input"],
                         "moving": v["moving"]})
    return pd.DataFrame(rows)


WALK_KINDS = ("fgsm", "random")


def walk_paths(models: dict, x: torch.Tensor, y, kind: str = "fgsm", eps_max: float = 0.1, n: int = 16,
               seed: int = 0) -> dict:
    """The walk of one image x [C, H, W] (or [1, C, H, W]) in [0, 1], label ``y`` (int or one-element
    tensor), through every model of ``models`` (name → model): inputs clip(x + ε_k d), ε_k = k·ε_max/n,
    k = 0 … n, clipped to [0, 1] as in :func:`curvlib.measure.probe.probe_line` (ε in pixel units,
    ‖d‖ = √D). ``kind``: ``fgsm`` (each model its own direction, so each model its own inputs)
    or ``random`` (one direction, drawn from ``seed``, shared by all models).

    Returns ``eps`` [n+1], ``kind``, ``label``, ``num_classes`` and ``paths``: name → dict with
    ``inputs`` [n+1, C, H, W], ``rep`` [n+1, 2] (the penultimate features projected onto the two
    leading principal axes of the model's own path, :func:`curvlib.measure.probe.project_2d`),
    ``pred`` [n+1] (predicted classes) and ``crossing``: the first k whose prediction differs from
    the label (0 if x itself is misclassified), or None if none does up to ε_max."""

    if kind not in WALK_KINDS:
        raise ValueError(f"unknown walk direction {kind!r}; choose one of {', '.join(WALK_KINDS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of steps) must be an integer ≥ 1, got {n!r}")
    if not (eps_max > 0 and np.isfinite(eps_max)):
        raise ValueError(f"eps_max must be positive and finite, got {eps_max!r}")
    if not models:
        raise ValueError("models is empty: pass at least one name → model")
    if not isinstance(x, torch.Tensor) or not (x.ndim == 3 or (x.ndim == 4 and len(x) == 1)):
        raise ValueError(f"x must be one image [C, H, W] (or [1, C, H, W]), got {getattr(x, 'shape', type(x))}")
    yt = torch.as_tensor(y)
    if yt.numel() != 1 or yt.is_floating_point():
        raise ValueError(f"y must be one integer label (int or one-element tensor), got {y!r}")
    x = x.reshape(1, *x.shape[-3:])
    label = int(yt.reshape(()))
    yy = torch.tensor([label])
    eps = torch.arange(n + 1, dtype=torch.float32) * (eps_max / n)
    shared = direction(None, x, kind="random", seed=seed) if kind == "random" else None
    paths, num_classes = {}, 0
    for name, model in models.items():
        d = shared if shared is not None else direction(model, x, yy, "fgsm")
        p = probe_line(model, x, d, eps)
        num_classes = max(num_classes, p["logits"].shape[-1])
        if not 0 <= label < p["logits"].shape[-1]:
            raise ValueError(f"label {label} is not a class of {name} ({p['logits'].shape[-1]} classes)")
        pred = p["pred"][0]
        wrong = torch.nonzero(pred != label).flatten()
        paths[name] = {"inputs": line_points(x, d[None], eps)[0, 0], "rep": project_2d(p["features"][0], "pca")[0],
                       "pred": pred, "crossing": int(wrong[0]) if len(wrong) else None}
    return {"eps": eps, "kind": kind, "label": label, "num_classes": num_classes, "paths": paths}


def eps_per_kind(eps_max, kinds) -> dict:
    """ε_max (pixel units) for each walk kind of ``kinds``: ``eps_max`` is one number for all, or a mapping
    kind → number (a clear error if a kind is unknown or has none)."""
    kinds = list(kinds)
    if not kinds or any(kd not in WALK_KINDS for kd in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {', '.join(WALK_KINDS)}, got {kinds}")
    given = eps_max if isinstance(eps_max, dict) else dict.fromkeys(kinds, eps_max)
    missing = [kd for kd in kinds if kd not in given]
    if missing:
        raise ValueError(f"eps_max has no value for {', '.join(missing)}")
    return {kd: given[kd] for kd in kinds}


#: The planes of :func:`plane_flatness`: name → restricted to the pixels that never clip.
PLANES = {"clipped": False, "interior": True}


def plane_flatness(models: dict, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int, kind: str = "fgsm",
                   seed: int = 0) -> pd.DataFrame:
    """:func:`mesh_flatness` of every model around every image x [N, C, H, W]
    (pixels in [0, 1], labels y [N]) on both :data:`PLANES`: columns model, image, rho, rho_input,
    moving and ``plane``."""
    return pd.concat([mesh_flatness(models, x, y, step, n_steps, kind, seed, interior=inner).assign(plane=plane)
                      for plane, inner in PLANES.items()])


def single_lines(models: dict, x: torch.Tensor, d: torch.Tensor, eps: torch.Tensor) -> tuple[pd.DataFrame,
                                                                                               pd.DataFrame]:
    """The paper's Figure 4 lines: every model's features along clip(x + ε d) for one image x
    [1, C, H, W] (pixels in [0, 1]), directions d [M, 1, C, H, W] and a symmetric grid eps [S].

    Returns ``paths``: one row per (model, line, step) with ``eps`` and the 2-D view ``x``, ``y``
    (the line's own two principal axes, centred on the image ε = 0 and scaled into [−1, 1]²), and
    ``thetas``: one row per (model, line) with ``theta``, the mean turning angle θ in degrees over the
    interior steps, leaving out the step at the image (where clipping kinks every input line)."""
    mid = len(eps) // 2
    away = (eps[1:-1].abs() > 1e-12).numpy()
    paths, thetas = [], []
    for name, model in models.items():
        feats = probe_line(model, x, d, eps)["features"][:, 0]  # [M, S, F]
        mean = np.nanmean(np.degrees(theta(feats).numpy())[:, away], axis=1)
        for m in range(len(feats)):
            xy, _ = project_2d(feats[m], "pca")
            xy = xy - xy[mid]
            xy = xy / (xy.abs().max() + 1e-12)
            paths.append(pd.DataFrame({"model": name, "line": m, "eps": eps.numpy(), "x": xy[:, 0].numpy(),
                                       "y": xy[:, 1].numpy()}))
            thetas.append({"model": name, "line": m, "theta": mean[m]})
    return pd.concat(paths, ignore_index=True), pd.DataFrame(thetas)
