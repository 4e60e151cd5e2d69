"""Experiment ``mesh``: how flat each model's representation of a grid around the image is (the
affine residual ρ of the mesh, 0 = flat), on the paper's clipped plane and on the interior plane."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .. import data, runner
from ..measure.views import plane_flatness


@dataclass(frozen=True)
class MeshParams:
    """Parameters of experiment ``mesh`` (pixel units). The grid is shared by every model and derived
    from their travel (:func:`curvlib.claims.trajectories.mesh_grid`), so ``step`` and ``n_steps`` have
    no default of their own: a call must give them (0 = not given)."""

    step: float = 0.0  #: grid step
    n_steps: int = 0  #: grid points per side (the grid is (2·n_steps + 1)²)
    n_images: int | None = runner.from_profile("n_theta_images")  #: the first n test images
    kind: str = "fgsm"  #: the plane's first direction
    seed: int = 0  #: seed of the plane's random second direction


def mesh_experiment(model_name: str, profile=None, *, step: float | None = None, n_steps: int | None = None,
                    refresh: bool = False, checkpoint=None, **params) -> pd.DataFrame:
    """Cached :func:`~curvlib.measure.views.plane_flatness` of one model on the profile's first ``n_images``
    test images (:class:`MeshParams`; ``step`` and ``n_steps`` from the shared grid are required): one
    row per plane and image with ``model``, ``image`` (test image), ``rho``, ``rho_input``, ``moving``,
    ``plane``."""
    if not step or not n_steps or step <= 0 or n_steps < 1:
        raise ValueError(f"mesh_experiment needs the shared grid's step > 0 and n_steps ≥ 1 "
                         f"(curvlib.claims.trajectories.mesh_grid), got step={step!r}, n_steps={n_steps!r}")
    return runner.run("mesh", model_name, profile, checkpoint=checkpoint, refresh=refresh, step=step,
                      n_steps=n_steps, **params)


@runner.experiment("mesh", params=MeshParams, merge=runner.concat_sorted("plane", "image"), calls=(),
                   summary=lambda df: f"ρ on {df.image.nunique()} images × {df.plane.nunique()} planes")
def _mesh_part(model, profile, shard, context, *, step, n_steps, n_images, kind, seed) -> pd.DataFrame:
    x, y = data.test_set(profile, n=n_images, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n_images), shard)
    flat = plane_flatness({model.name: model}, x, y, step, n_steps, kind, seed)
    return flat.assign(image=index.numpy()[flat.image.to_numpy()]).reset_index(drop=True)
