"""Experiment ``random_jump``: travel after a small random step, beside the cached direct travel."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import data, runner
from ..constants import EPS_R
from ..measure.random_jump import jump_travel
from .travel import SearchParams, travel_experiment

#: Jump sizes ε_r (per-pixel step, pixels in [0, 1]) of the chapter's sweep; the paper's is :data:`EPS_R`.
JUMP_SIZES = (0.01, 0.02, 0.05, 0.1)


@dataclass(frozen=True)
class JumpParams(SearchParams):
    """Parameters of experiment ``random_jump`` (pixel units)."""

    eps_r: float = EPS_R  #: size of the random jump
    n: int | None = runner.from_profile("n_travel")  #: the first n test images
    kind: str = "random_sign"  #: the jump's direction kind
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
