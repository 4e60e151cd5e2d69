"""Experiments ``theta`` (finite-step θ along many paths) and ``theta_step`` (θ against the step Δ)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .. import data, runner
from ..measure.angles import theta, theta_local, theta_summary
from ..measure.direction import direction, saturation_aware
from ..measure.probe import eps_grid, line_points, probe_line


@dataclass(frozen=True)
class LineParams:
    """The paths' parameters, shared by every experiment that measures along lines x + ε d (pixel units)."""

    n_images: int | None = runner.from_profile("n_theta_images")  #: the first n test images
    n_steps: int | None = runner.from_profile("n_steps")  #: grid points along each path
    kind: str = "fgsm"  #: direction kind (FGSM: one direction per image; or seeded random)
    eps_range: float = 0.1  #: the path's extent
    seed: int = 0  #: seed of random directions


@dataclass(frozen=True)
class OmegaLineParams(LineParams):
    """Paths measured by the step-free ω as well: the paths' parameters and ω's grid (pixel units)."""

    omega_range: float = 0.04  #: extent of the ω grid
    omega_steps: int = 3  #: ω grid intervals


#: The curvature chapter's rulers, (protocol, saturation-aware directions): the paper's one-way travel first.
RULERS = (("oneway", False), ("oneway", True), ("symmetric", False))


@dataclass(frozen=True)
class ThetaParams(LineParams):
    """Parameters of experiment ``theta`` (ε in pixel units): the paths', and these."""

    n_directions: int | None = runner.from_profile("n_directions")  #: random directions per image (FGSM: 1)
    kind: str = "random"  #: direction kind
    protocol: str = "oneway"  #: grid: "oneway" (from x along +d) or "symmetric" (around x)
    saturation: bool = False  #: saturation-aware directions (:func:`saturation_aware`)


def theta_experiment(model_name: str, profile=None, *, kind: str | None = None, refresh: bool = False,
                     checkpoint=None, **params) -> dict:
    """Cached θ over ``profile.n_theta_images`` images × ``n_directions`` directions × ``n_steps`` steps
    (FGSM: one direction per image; random: seeded Gaussian), on the ``protocol``'s grid (:func:`eps_grid`:
    ``oneway`` from x along +d, the default, or ``symmetric`` around x); ``saturation``: use
    :func:`curvlib.measure.direction.saturation_aware` directions. Returns ``theta`` [M, N, S−2] of the features,
    ``input_theta`` [M, N, S−2] of the clipped input points themselves (the ruler's baseline), ``eps``
    [S] and the per-step ``summary`` frame. Parameters and defaults: :class:`ThetaParams`;
    ``checkpoint``: other weights."""
    return runner.run("theta", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind, **params)


def path_directions(model, profile, n_images, kind, seed, saturation, ms):
    """Images x [N, …] and directions [len(ms), N, …] (direction numbers ``ms``; FGSM has one)."""

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


def _theta_merge(parts: list, params: dict) -> dict:
    """Interleave the ranks' directions back into order; add the grid and the summary."""
    th = interleave(parts, "theta")
    eps = eps_grid(params["protocol"], params["eps_range"], params["n_steps"])
    return {"theta": th, "input_theta": interleave(parts, "input_theta"), "eps": eps, "summary": theta_summary(th)}


@runner.experiment("theta", params=ThetaParams, merge=_theta_merge, autocast=True,
                   calls=tuple({"kind": k, "protocol": p, "saturation": s}
                               for k in ("random", "fgsm") for p, s in RULERS),
                   summary=lambda r: f"θ {tuple(r['theta'].shape)}")
def _theta_part(model, profile, shard, context, *, n_images, n_directions, n_steps, kind, eps_range, seed,
                protocol, saturation):
    """θ of the shard's directions (every size-th from rank): features and input path, [M_shard, N, S−2] each."""
    rank, size = shard or (0, 1)
    S = n_steps + 1
    M = 1 if kind == "fgsm" else n_directions
    ms = list(range(rank, M, size))
    x, d = path_directions(model, profile, n_images, kind, seed, saturation, ms)
    eps = eps_grid(protocol, eps_range, n_steps)
    chunk = max(1, (4 * profile.batch_size) // (len(x) * S))  # directions per probe (memory budget)
    th, th_in = [torch.empty(0, len(x), S - 2)], [torch.empty(0, len(x), S - 2)]
    for m in tqdm(range(0, len(ms), chunk), desc=f"theta {model.name} {kind}", leave=False):
        feats = probe_line(model, x, d[m:m + chunk], eps, profile.batch_size, bf16=profile.autocast == "bf16")
        th.append(theta(feats["features"]).cpu())
        th_in.append(theta(line_points(x, d[m:m + chunk], eps).flatten(3)))
    return {"theta": torch.cat(th), "input_theta": torch.cat(th_in)}


def path_grids(params: dict) -> dict:
    """The grids of :class:`OmegaLineParams` paths: ``omega_eps`` (ω's) and ``theta_eps`` (θ's one-way grid)."""
    return {"omega_eps": torch.linspace(0, params["omega_range"], params["omega_steps"] + 1),
            "theta_eps": eps_grid("oneway", params["eps_range"], params["n_steps"])}


def interleave(parts: list, key: str) -> torch.Tensor:
    """Sharded tensors [M_r, …] of every rank (rank r holding every size-th row from r: directions or
    images) back into their order [M, …]."""
    size = len(parts)
    out = torch.empty(sum(len(p[key]) for p in parts), *parts[0][key].shape[1:], dtype=parts[0][key].dtype)
    for r, part in enumerate(parts):
        out[r::size] = part[key]
    return out


#: Steps Δ of the θ-versus-step sweep (the authors' local measure uses 1e-4; up to 0.05, half the paths'
#: extent, where a finite step spans many kinks and smooth bends alike).
STEP_SWEEP = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 5e-2)


@dataclass(frozen=True)
class ThetaStepParams(LineParams):
    """Parameters of experiment ``theta_step`` (pixel units): the paths' (one direction per image, one-way
    grid), and the steps Δ."""

    deltas: tuple = STEP_SWEEP  #: the steps Δ of the sweep


def theta_step_experiment(model_name: str, profile=None, *, kind: str | None = None, deltas=None,
                          refresh: bool = False, checkpoint=None, **params) -> pd.DataFrame:
    """Cached θ-versus-step sweep: the authors' local measure (:func:`theta_local`, clipped) at every Δ of
    ``deltas`` on the interior points ε_n, n = 1 … n_steps − 1, of the one-way grid, for the profile's
    ``n_theta_images`` images along ``kind`` (one direction per image: FGSM, or seeded random).
    One row per (Δ, image, ε): ``delta``, ``image``, ``eps``, ``theta`` (radians)."""
    deltas = None if deltas is None else tuple(float(v) for v in deltas)
    return runner.run("theta_step", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      deltas=deltas, **params)


def _theta_step_merge(parts: list, params: dict) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True)
    return df.sort_values(["delta", "image", "eps"], kind="stable").reset_index(drop=True)


@runner.experiment("theta_step", params=ThetaStepParams, merge=_theta_step_merge,
                   summary=lambda df: f"{df.delta.nunique()} steps × {len(df) // max(df.delta.nunique(), 1)} points"
                   )
def _theta_step_part(model, profile, shard, context, *, n_images, n_steps, kind, eps_range, deltas, seed):
    """Local θ of the shard's images (every size-th from rank) at every Δ."""
    rank, size = shard or (0, 1)
    x, d = path_directions(model, profile, n_images, kind, seed, False, [0])
    keep = list(range(rank, len(x), size))
    eps = eps_grid("oneway", eps_range, n_steps)[1:-1]
    rows = []
    for delta in deltas:
        th = theta_local(model, x[keep], d[0][keep], eps, delta, profile.batch_size)  # [N_shard, E]
        rows.append(pd.DataFrame({"delta": float(delta), "image": np.repeat(keep, len(eps)),
                                  "eps": np.tile(eps.double().numpy(), len(keep)),
                                  "theta": th.double().numpy().ravel()}))
    return pd.concat(rows, ignore_index=True)
