"""Experiment ``random_jump``: travel after a small random step, beside the cached direct travel."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import data, runner
from ..constants import EPS_R, JUMP_KIND
from ..measure.angles import theta
from ..measure.curvature import curvature
from ..measure.direction import direction
from ..measure.probe import eps_grid, probe_line
from ..measure.random_jump import jump_travel, random_jump
from .theta import OmegaLineParams, interleave, path_grids
from .travel import SearchParams, few_travel_images, travel_experiment
from .travel_check import travel_images

#: Jump sizes ε_r (per-pixel step, pixels in [0, 1]) of the chapter's sweep; the paper's is :data:`EPS_R`.
JUMP_SIZES = (0.01, 0.02, 0.05, 0.1)


@dataclass(frozen=True)
class JumpParams(SearchParams):
    """Parameters of experiment ``random_jump`` (pixel units)."""

    eps_r: float = EPS_R  #: size of the random jump
    n: int | None = runner.from_profile("n_travel")  #: the first n test images
    kind: str = JUMP_KIND  #: the jump's direction kind
    seed: int = 0  #: seed of the jump


def jump_experiment(model_name: str, profile=None, *, eps_r: float | None = None, refresh: bool = False,
                    **params) -> pd.DataFrame:
    """Cached :func:`jump_travel` (parameters and defaults: :class:`JumpParams`); the direct travel
    is shared with :func:`~curvlib.experiments.travel.travel_experiment`'s cache."""
    return runner.run("random_jump", model_name, profile, refresh=refresh, eps_r=eps_r, **params)


def _direct_travel(model_name, profile, params, checkpoint) -> pd.DataFrame:
    """The FGSM travel from x itself (its own cached, sharded experiment), on every rank first."""

    return travel_experiment(model_name, profile, kind="fgsm", n=params["n"], eps_max=params["eps_max"],
                             tol=params["tol"], checkpoint=checkpoint, search=params["search"])


@runner.experiment("random_jump", params=JumpParams, prepare=_direct_travel,
                   calls=tuple({"eps_r": e} for e in JUMP_SIZES), summary=lambda df: f"{len(df)} pairs")
def _jump_part(model, profile, shard, direct_all, *, eps_r, n, kind, seed, eps_max, tol, search) -> pd.DataFrame:
    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None, shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    direct = direct_all.iloc[index.numpy()].reset_index(drop=True)
    df = jump_travel(model, x, y, eps_r, kind, seed, eps_max, tol, profile.batch_size, direct=direct, index=index,
                     search=search)
    return df.assign(model=model.name)


#: Jump sizes relative to each image's own direct ε* (the chapter's second sweep).
RELATIVE_SIZES = (0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class RelativeJumpParams(SearchParams):
    """Parameters of experiment ``random_jump_relative``: a jump of ``fraction`` × the image's own direct
    ε* (pixel units), on the images whose direct route crossed."""

    fraction: float = 0.5  #: ε_r / ε*(x) per image
    n: int | None = runner.from_profile(few_travel_images)  #: the travel sample's first n images
    kind: str = JUMP_KIND  #: the jump's direction kind
    seed: int = 0  #: seed of the jump


def relative_jump_experiment(model_name: str, profile=None, *, fraction: float | None = None, refresh: bool = False,
                             **params) -> pd.DataFrame:
    """Cached :func:`jump_travel` with a jump sized to each image, ε_r = ``fraction`` × its direct ε*
    (parameters and defaults: :class:`RelativeJumpParams`); one row per image that crossed along FGSM
    from x, with ``fraction``. The direct travel is the travel experiment's (cached) frame."""
    return runner.run("random_jump_relative", model_name, profile, refresh=refresh, fraction=fraction, **params)


def _direct_all(model_name, profile, params, checkpoint) -> pd.DataFrame:
    return travel_experiment(model_name, profile, kind="fgsm", eps_max=params["eps_max"], tol=params["tol"],
                             checkpoint=checkpoint, search=params["search"])


@runner.experiment("random_jump_relative", params=RelativeJumpParams, prepare=_direct_all,
                   calls=tuple({"fraction": f} for f in RELATIVE_SIZES),
                   summary=lambda df: f"{len(df)} pairs" + (f" at ε_r = {df.fraction.iloc[0]:g} ε*" if len(df) else ""))
def _relative_part(model, profile, shard, direct_all, *, fraction, n, kind, seed, eps_max, tol, search
                   ) -> pd.DataFrame:
    # the first n rows of the travel sample (on ImageNet its seeded subset is not a prefix of a smaller one)
    index = data.shard_index(min(n, len(direct_all)), shard)
    x, y = travel_images(profile, index.numpy(), model.name)
    direct = direct_all.iloc[index.numpy()].reset_index(drop=True)
    ok = (direct.status == "crossed").to_numpy()
    if not ok.any():
        return pd.DataFrame({"index": pd.Series(dtype=int), "model": model.name, "fraction": fraction})
    keep = torch.from_numpy(np.flatnonzero(ok))
    df = jump_travel(model, x[keep], y[keep], fraction * direct.eps.to_numpy()[ok], kind, seed, eps_max, tol,
                     profile.batch_size, direct=direct[ok].reset_index(drop=True), index=index[keep], search=search)
    return df.assign(model=model.name, fraction=fraction)


@dataclass(frozen=True)
class JumpPathParams(OmegaLineParams):
    """Parameters of experiment ``jump_path``: the paths' (one-way grid along FGSM), the jump's, and ω's grid."""

    eps_r: float = EPS_R  #: size of the random jump
    jump_kind: str = JUMP_KIND  #: the jump's direction kind


def jump_path_experiment(model_name: str, profile=None, *, refresh: bool = False, checkpoint=None,
                         **params) -> dict:
    """Cached bending of the FGSM path from x and from the jumped point x_r (the route the paper says is
    straighter), on the profile's first ``n_images`` test images (:class:`JumpPathParams`): ``omega_x``,
    ``omega_r`` [N, S] (step-free ω, radians per unit ε, on ``omega_eps``), ``theta_x``, ``theta_r``
    [N, n_steps − 1] (θ on the one-way grid ``theta_eps``, radians) and ``index``."""
    return runner.run("jump_path", model_name, profile, checkpoint=checkpoint, refresh=refresh, **params)


def _merge_paths(parts: list, params: dict) -> dict:
    """Image-sharded parts back into image order (every size-th image from rank), plus the two grids."""
    return {**{key: interleave(parts, key) for key in ("omega_x", "omega_r", "theta_x", "theta_r", "index")},
            **path_grids(params)}


@runner.experiment("jump_path", params=JumpPathParams, merge=_merge_paths,
                   summary=lambda r: f"ω {tuple(r['omega_x'].shape)} from x and from x_r")
def _jump_path_part(model, profile, shard, context, *, n_images, n_steps, kind, eps_range, seed, eps_r, jump_kind,
                    omega_range, omega_steps) -> dict:
    x, y = data.test_set(profile, n=n_images, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n_images), shard)
    xr = random_jump(x, eps_r, jump_kind, seed, index=index)
    ew, et = torch.linspace(0, omega_range, omega_steps + 1), eps_grid("oneway", eps_range, n_steps)
    out = {"index": index}
    for tag, start in (("x", x), ("r", xr)):
        d = direction(model, start, y, kind, seed=seed, batch_size=profile.batch_size, index=index).to(profile.device)
        s = start.to(profile.device)
        out[f"omega_{tag}"] = curvature(model, s, d, ew, batch_size=max(1, profile.batch_size // 2))["omega"].cpu()
        out[f"theta_{tag}"] = theta(probe_line(model, s, d, et, profile.batch_size)["features"]).cpu()
    return out
