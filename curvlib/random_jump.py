r"""The boundary was near all along: FGSM travel after a small random jump (the paper's Figure 10).

From x, take one random step of per-pixel size ε_r (``‖step‖₂ = ε_r·√D``), clip to [0, 1], and
travel from the jumped point x_r along *its own* FGSM direction. If the representation space is
curved near the data, the jump leaves the curved region and the second travel is short: a
boundary existed close to x, but the straight FGSM path from x bent away from it.

Image quality is reported as PSNR against the original,
:math:`\mathrm{PSNR} = 10\log_{10}(R^2 / \mathrm{MSE})` with data range R = 1: a uniform sign step
of ε changes every pixel by ε, so MSE = ε² and PSNR = −20 log₁₀ ε (26.02 dB for ε = 0.05).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import runner
from .direction import direction
from .travel import positions, travel


def _check_eps(eps_r: float) -> None:
    if not (isinstance(eps_r, (int, float)) and np.isfinite(eps_r) and eps_r > 0):
        raise ValueError(f"eps_r must be a positive number (per-pixel step on the [0, 1] scale), got {eps_r!r}")


def random_jump(x: torch.Tensor, eps_r: float = 0.05, kind: str = "random_sign", seed: int = 0,
                index: torch.Tensor | None = None) -> torch.Tensor:
    """x_r = clip(x + ε_r·d) with d a seeded random direction, ‖d‖₂ = √D; images [N, C, H, W] in [0, 1].
    ``index``: global sample numbers (see :func:`curvlib.direction.direction`)."""
    from .data import check_pixels

    check_pixels(x)
    _check_eps(eps_r)
    if kind not in ("random_sign", "random"):
        raise ValueError(f"kind must be 'random_sign' or 'random', got {kind!r}")
    d = direction(None, x, kind=kind, seed=seed, index=index)
    return (x + eps_r * d).clamp(0.0, 1.0)


def psnr(x: torch.Tensor, x_perturbed: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image [N]; +inf where the images are identical."""
    if x.shape != x_perturbed.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(x_perturbed.shape)}")
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"need a non-empty batch [N, ...], got shape {tuple(x.shape)}")
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    mse = (x.double() - x_perturbed.double()).pow(2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        return (10 * torch.log10(data_range ** 2 / mse)).float()  # mse = 0 → +inf


def rms_distance(x: torch.Tensor, x_final: torch.Tensor) -> torch.Tensor:
    """‖x_final − x‖₂ / √D per image: the total perturbation in pixel units."""
    return (x_final.double() - x.double()).flatten(1).norm(dim=1).float() / (x[0].numel() ** 0.5)


def jump_travel(model, x: torch.Tensor, y: torch.Tensor, eps_r: float = 0.05, kind: str = "random_sign",
                seed: int = 0, eps_max: float = 1.0, tol: float = 1e-4, batch_size: int = 500,
                direct: pd.DataFrame | None = None, return_images: bool = False,
                index: torch.Tensor | None = None):
    """Paired FGSM travel from x and from the jumped point x_r, one row per sample (input order).

    Columns: ``index``, ``label``, ``confidence`` (at x), ``eps_direct``/``status_direct`` (ε* from x
    along FGSM(x)), ``jump_correct`` (x_r still classified y), ``eps_jump``/``status_jump`` (ε* from
    x_r along FGSM(x_r)), ``total_direct``/``total_jump`` (‖x_final − x‖/√D), ``psnr_direct``/
    ``psnr_jump`` (final image vs x, dB; NaN unless crossed), ``psnr_jump_only`` (x_r vs x).
    ``direct`` may pass an already computed :func:`travel` frame from x along FGSM(x).
    With ``return_images`` also returns (x_direct_final, x_jump_final).
    """
    _check_eps(eps_r)
    if direct is not None and len(direct) != len(x):
        raise ValueError(f"direct has {len(direct)} rows for {len(x)} images")
    d0 = direction(model, x, y, "fgsm", batch_size=batch_size)
    if direct is None:
        direct = travel(model, x, y, d0, eps_max=eps_max, tol=tol, batch_size=batch_size)
    xr = random_jump(x, eps_r, kind, seed, index=index)
    dr = direction(model, xr, y, "fgsm", batch_size=batch_size)
    after = travel(model, xr, y, dr, eps_max=eps_max, tol=tol, batch_size=batch_size)
    fin0, finr = positions(x, d0, direct.eps.to_numpy()), positions(xr, dr, after.eps.to_numpy())
    ok0 = (direct.status == "crossed").to_numpy()
    okr = (after.status == "crossed").to_numpy()
    df = pd.DataFrame({
        "index": np.arange(len(x)) if index is None else index.numpy(), "label": y.cpu().numpy(),
        "confidence": direct.confidence.to_numpy(),
        "eps_direct": direct.eps.to_numpy(), "status_direct": direct.status.to_numpy(),
        "jump_correct": (after.status != "misclassified_at_start").to_numpy(),
        "eps_jump": after.eps.to_numpy(), "status_jump": after.status.to_numpy(),
        "total_direct": np.where(ok0, rms_distance(x, fin0).numpy(), np.nan),
        "total_jump": np.where(okr, rms_distance(x, finr).numpy(), np.nan),
        "psnr_direct": np.where(ok0, psnr(x, fin0).numpy(), np.nan),
        "psnr_jump": np.where(okr, psnr(x, finr).numpy(), np.nan),
        "psnr_jump_only": psnr(x, xr).numpy(),
        "eps_r": eps_r,
    })
    return (df, (fin0, finr)) if return_images else df


def median_ratio(df: pd.DataFrame, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Median of eps_jump / eps_direct over samples that crossed both ways, with a percentile
    bootstrap interval (seeded); also the count of such pairs."""
    both = df[(df.status_direct == "crossed") & (df.status_jump == "crossed")]
    r = (both.eps_jump / both.eps_direct).to_numpy()
    if len(r) == 0:
        return {"median_ratio": np.nan, "lo": np.nan, "hi": np.nan, "n_pairs": 0}
    rng = np.random.default_rng(seed)
    boots = np.median(r[rng.integers(0, len(r), size=(n_boot, len(r)))], axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return {"median_ratio": float(np.median(r)), "lo": float(lo), "hi": float(hi), "n_pairs": int(len(r))}


def jump_experiment(model_name: str, eps_r: float = 0.05, profile=None, n: int | None = None,
                    kind: str = "random_sign", seed: int = 0, eps_max: float = 1.0, tol: float = 1e-4,
                    refresh: bool = False) -> pd.DataFrame:
    """Cached :func:`jump_travel` on the profile's first ``n`` test images (default ``n_travel``);
    the direct travel is shared with :func:`curvlib.travel.travel_experiment`'s cache."""
    return runner.run("random_jump", model_name, profile, refresh=refresh, eps_r=eps_r, n=n, kind=kind, seed=seed,
                      eps_max=eps_max, tol=tol)


def _direct_travel(model_name, profile, params, checkpoint) -> pd.DataFrame:
    """The FGSM travel from x itself (its own cached, sharded experiment), on every rank first."""
    from .travel import travel_experiment

    return travel_experiment(model_name, "fgsm", profile, n=params["n"], eps_max=params["eps_max"],
                             tol=params["tol"], checkpoint=checkpoint)


@runner.experiment("random_jump", defaults=lambda p: {"eps_r": 0.05, "n": p.n_travel, "kind": "random_sign", "seed": 0,
                                                      "eps_max": 1.0, "tol": 1e-4},
                   prepare=_direct_travel, code=("random_jump", "travel"), summary=lambda df: f"{len(df)} pairs")
def _jump_part(model, profile, shard, direct_all, *, eps_r, n, kind, seed, eps_max, tol) -> pd.DataFrame:
    from . import data

    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None, shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    direct = direct_all.iloc[index.numpy()].reset_index(drop=True)
    df = jump_travel(model, x, y, eps_r, kind, seed, eps_max, tol, profile.batch_size, direct=direct, index=index)
    return df.assign(model=model.name)


__all__ = ["random_jump", "psnr", "rms_distance", "jump_travel", "median_ratio", "jump_experiment"]
