"""Experiment ``curvature``: step-free κ and ω (and per-block ω, activation kinks) on θ's paths."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import runner
from ..measure.curvature import curvature, residual_blocks
from ..measure.kinks import kinks
from ..measure.probe import eps_grid
from .theta import ThetaParams, interleave, path_directions


@dataclass(frozen=True)
class CurvatureParams(ThetaParams):
    """Parameters of experiment ``curvature``: θ's paths, FGSM by default, at most 8 random directions."""

    n_directions: int | None = runner.from_profile(lambda p: min(p.n_directions, 8))  #: random directions per image
    kind: str = "fgsm"  #: direction kind


def curvature_experiment(model_name: str, profile=None, *, kind: str | None = None, refresh: bool = False,
                         checkpoint=None, **params) -> dict:
    """Cached :func:`curvature` (κ, ω, speed, per-block ω) and :func:`kinks` on the same paths as
    :func:`theta_experiment` (parameters and defaults: :class:`CurvatureParams`).
    Returns ``kappa``, ``omega``, ``speed`` [M, N, S], ``kinks`` [M, N, S−1], ``block_omega`` [B, M, N, S],
    ``block_names`` and ``eps`` [S]."""
    return runner.run("curvature", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind, **params)


def _curvature_merge(parts: list, params: dict) -> dict:
    """Interleave the ranks' directions; per-block ω back to [B, M, N, S]."""
    out = {k: interleave(parts, k) for k in ("kappa", "omega", "speed", "kinks", "block_omega")}
    out["block_omega"] = out["block_omega"].transpose(0, 1).contiguous()
    out["block_names"] = list(parts[0]["block_names"])
    out["eps"] = eps_grid(params["protocol"], params["eps_range"], params["n_steps"])
    return out


@runner.experiment("curvature", params=CurvatureParams, merge=_curvature_merge,
                   calls=({"kind": "fgsm"}, {"kind": "random"}),
                   summary=lambda r: f"κ {tuple(r['kappa'].shape)}")
def _curvature_part(model, profile, shard, context, *, n_images, n_directions, n_steps, kind, eps_range, seed,
                    protocol, saturation):
    """κ, ω, speed, kinks and per-block ω of the shard's directions (direction-major, like θ)."""
    rank, size = shard or (0, 1)
    M = 1 if kind == "fgsm" else n_directions
    ms = list(range(rank, M, size))
    x, d = path_directions(model, profile, n_images, kind, seed, saturation, ms)
    eps = eps_grid(protocol, eps_range, n_steps)
    names = [n for n, _ in residual_blocks(model)]
    if not ms:
        z = torch.empty(0, len(x), len(eps))
        return {"kappa": z, "omega": z, "speed": z, "kinks": torch.empty(0, len(x), len(eps) - 1, dtype=torch.long),
                "block_omega": torch.empty(0, len(names), len(x), len(eps)), "block_names": names}
    long = profile.dataset == "imagenet"  # progress bars where the loops take minutes (224 px models)
    c = curvature(model, x, d, eps, batch_size=max(1, profile.batch_size // 2), blocks=True, progress=long)
    return {"kappa": c["kappa"], "omega": c["omega"], "speed": c["speed"],
            "kinks": kinks(model, x, d, eps, profile.batch_size, progress=long),
            "block_omega": c["block_omega"].transpose(0, 1), "block_names": names}
