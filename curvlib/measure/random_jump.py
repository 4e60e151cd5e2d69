r"""The boundary was near all along: FGSM travel after a small random jump (the paper's Figure 10).

From x, take one random step of per-pixel size ε_r (``‖step‖₂ = ε_r·√D``), clip to [0, 1], and
travel from the jumped point x_r along *its own* FGSM direction. If the representation space is
curved near the data, the jump leaves the curved region and the second travel is short: a
boundary existed close to x, but the straight FGSM path from x bent away from it.

Two controls separate that explanation from a generic effect of any random step: travel from x_r
along the *old* direction FGSM(x) (the jump's new starting point alone), and from x along FGSM(x_r)
(the jump's new direction alone). The curvature explanation needs the jump route to beat both.
The total perturbation ‖x_final − x‖₂/√D of each route counts the jump too (the paper's Figure 10
reports it).

Image quality is reported as PSNR against the original,
:math:`\mathrm{PSNR} = 10\log_{10}(R^2 / \mathrm{MSE})` with data range R = 1: a uniform sign step
of ε changes every pixel by ε, so MSE = ε² and PSNR = −20 log₁₀ ε (26.02 dB for ε = 0.05).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..constants import EPS_R, JUMP_KIND
from ..data import check_pixels
from ..inference import predict
from ..stats import bootstrap
from .direction import direction
from .travel import positions, travel


def _check_eps(eps_r, n: int | None = None) -> float | torch.Tensor:
    """``eps_r`` as a float, or as a tensor [n, 1, 1, 1] when it gives one step per image (an array [n])."""
    if isinstance(eps_r, (int, float, np.floating, np.integer)) and not isinstance(eps_r, bool):
        if np.isfinite(eps_r) and eps_r > 0:
            return float(eps_r)
    elif isinstance(eps_r, (np.ndarray, torch.Tensor, list, tuple)):
        e = torch.as_tensor(np.asarray(eps_r, dtype=float))
        if e.ndim == 1 and (n is None or len(e) == n) and len(e) and torch.isfinite(e).all() and (e > 0).all():
            return e.float().view(-1, 1, 1, 1)
        raise ValueError(f"eps_r per image must be {n if n is not None else 'N'} positive finite steps "
                         f"(per-pixel, on the [0, 1] scale), got shape {tuple(e.shape)}")
    raise ValueError(f"eps_r must be a positive number (per-pixel step on the [0, 1] scale), got {eps_r!r}")


def random_jump(x: torch.Tensor, eps_r: float = EPS_R, kind: str = JUMP_KIND, seed: int = 0,
                index: torch.Tensor | None = None) -> torch.Tensor:
    """x_r = clip(x + ε_r·d) with d a seeded random direction, ‖d‖₂ = √D; images [N, C, H, W] in [0, 1].
    ``eps_r``: one step for all, or one per image [N]. ``index``: global sample numbers (see
    :func:`curvlib.measure.direction.direction`)."""

    check_pixels(x)
    eps_r = _check_eps(eps_r, len(x))
    if kind not in ("random_sign", "random"):
        raise ValueError(f"kind must be 'random_sign' or 'random', got {kind!r}")
    d = direction(None, x, kind=kind, seed=seed, index=index)
    return (x + eps_r.to(x) * d if isinstance(eps_r, torch.Tensor) else x + eps_r * d).clamp(0.0, 1.0)


def _pair(x, x2) -> None:
    """Two image batches [N, ...] of one shape, N ≥ 1, with pixels (else a clear error)."""
    if not (isinstance(x, torch.Tensor) and isinstance(x2, torch.Tensor)):
        raise TypeError(f"images must be torch Tensors, got {type(x).__name__} and {type(x2).__name__}")
    if x.shape != x2.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(x2.shape)}")
    if x.ndim < 2 or len(x) == 0 or x[0].numel() == 0:
        raise ValueError(f"need a non-empty batch [N, ...] of images with pixels, got shape {tuple(x.shape)}")
    if x.is_complex() or x2.is_complex():
        raise TypeError("images must be real")


def psnr(x: torch.Tensor, x_perturbed: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image [N]; +inf where the images are identical."""
    _pair(x, x_perturbed)
    try:
        ok = 0 < float(data_range) ** 2 < float("inf")
    except OverflowError:
        ok = False
    if not ok:  # also refuses NaN, inf and ranges whose square under/overflows
        raise ValueError(f"data_range must be a positive finite number, got {data_range}")
    mse = (x.double() - x_perturbed.double()).pow(2).flatten(1).mean(1)
    with np.errstate(divide="ignore"):
        return (10 * torch.log10(data_range ** 2 / mse)).float()  # mse = 0 → +inf


def rms_distance(x: torch.Tensor, x_final: torch.Tensor) -> torch.Tensor:
    """‖x_final − x‖₂ / √D per image: the total perturbation in pixel units."""
    _pair(x, x_final)
    return (x_final.double() - x.double()).flatten(1).norm(dim=1).float() / (x[0].numel() ** 0.5)


#: The four routes of :func:`jump_travel`: (column suffix, start, direction).
ROUTES = {"direct": ("x", "FGSM(x)"), "jump": ("x_r", "FGSM(x_r)"),
          "ctrl_point": ("x_r", "FGSM(x)"), "ctrl_direction": ("x", "FGSM(x_r)")}


def _check_direct(model, direct: pd.DataFrame, x, y, eps_max: float, tol: float, batch_size: int, index) -> None:
    """Refuse a ``direct`` frame that is not the FGSM travel of these very images: other length,
    labels, sample numbers, eps_max (a "never" row ends at its own eps_max, a crossing lies below
    it) or images (its confidences at x differ from the model's)."""

    need = {"label", "confidence", "status", "eps", "eps_lo"}
    if not isinstance(direct, pd.DataFrame) or need - set(direct.columns):
        raise ValueError(f"direct must be a travel() frame with columns {', '.join(sorted(need))}")
    if len(direct) != len(x):
        raise ValueError(f"direct has {len(direct)} rows for {len(x)} images")

    def first(bad) -> str:
        return f"first at row {int(np.flatnonzero(bad)[0])}"

    bad = direct["label"].to_numpy() != y.cpu().numpy()
    if bad.any():
        raise ValueError(f"direct's labels differ from y ({first(bad)}): it is another run's frame or its images "
                         "are in another order")
    if index is not None and "index" in direct.columns:
        bad = direct["index"].to_numpy() != np.asarray(index)
        if bad.any():
            raise ValueError(f"direct's sample numbers differ from index ({first(bad)})")
    eps, eps_lo, status = (direct[c].to_numpy() for c in ("eps", "eps_lo", "status"))
    bad = ((status == "crossed") & ~(eps <= eps_max * (1 + 1e-9))) | \
          ((status == "never") & ~(np.abs(eps_lo - eps_max) <= tol))
    if bad.any():
        raise ValueError(f"direct was computed with another eps_max than {eps_max:g} ({first(bad)}: status "
                         f"{status[bad][0]}, eps {eps[bad][0]:.6g}, eps_lo {eps_lo[bad][0]:.6g})")
    conf = predict(model, x, batch_size).amax(-1).double().numpy()
    bad = ~(np.abs(conf - direct["confidence"].to_numpy(dtype=float)) <= 1e-3)
    if bad.any():
        raise ValueError(f"direct's confidences at x differ from the model's ({first(bad)}: {conf[bad][0]:.4f} vs "
                         f"{direct['confidence'].to_numpy()[bad][0]:.4f}): it belongs to other images, another "
                         "order of them, or another model")


def jump_travel(model, x: torch.Tensor, y: torch.Tensor, eps_r: float = EPS_R, kind: str = JUMP_KIND,
                seed: int = 0, eps_max: float = 1.0, tol: float = 1e-4, batch_size: int = 500,
                direct: pd.DataFrame | None = None, return_images: bool = False,
                index: torch.Tensor | None = None, search="default"):
    """Paired FGSM travel from x and from the jumped point x_r, plus the two controls, one row per
    sample (input order). ``eps_r``: the jump's size, one for all or one per image [N].

    For each route r in :data:`ROUTES` — ``direct`` (x along FGSM(x)), ``jump`` (x_r along FGSM(x_r)),
    ``ctrl_point`` (x_r along FGSM(x)), ``ctrl_direction`` (x along FGSM(x_r)) — columns ``eps_<r>``
    (ε* of that travel; NaN unless crossed), ``status_<r>``, ``total_<r>`` (‖x_final − x‖₂/√D, the
    jump included; NaN unless crossed — or, for the routes from x_r, unless x_r is already misclassified:
    then x_final = x_r) and ``psnr_<r>`` (final image vs x, dB). Also ``index``,
    ``label``, ``confidence`` (at x), ``jump_correct`` (x_r still classified y), ``psnr_jump_only``
    (x_r vs x) and ``eps_r``. ``direct`` may pass an already computed :func:`travel` frame from x
    along FGSM(x) with the same ``eps_max``; one of other images, labels, order or eps_max is
    refused (``ValueError``). With ``return_images`` also returns (x_direct_final, x_jump_final). ``search``: the
    boundary search's setting (:data:`curvlib.measure.search.SEARCHES`), the same for every route.
    """
    steps = _check_eps(eps_r, len(x))
    if direct is not None:
        _check_direct(model, direct, x, y, eps_max, tol, batch_size, index)
    d0 = direction(model, x, y, "fgsm", batch_size=batch_size)
    if direct is None:
        direct = travel(model, x, y, d0, eps_max=eps_max, tol=tol, batch_size=batch_size, search=search)
    xr = random_jump(x, eps_r, kind, seed, index=index)
    dr = direction(model, xr, y, "fgsm", batch_size=batch_size)
    starts, dirs = {"x": x, "x_r": xr}, {"FGSM(x)": d0, "FGSM(x_r)": dr}
    frames, finals = {"direct": direct}, {}
    cols = {"index": np.arange(len(x)) if index is None else index.numpy(), "label": y.cpu().numpy(),
            "confidence": direct.confidence.to_numpy()}
    for route, (start, d) in ROUTES.items():
        if route not in frames:
            frames[route] = travel(model, starts[start], y, dirs[d], eps_max=eps_max, tol=tol, batch_size=batch_size,
                                   progress=False, search=search)
        f = frames[route]
        finals[route] = positions(starts[start], dirs[d], f.eps.to_numpy())
        # a route from x_r that is already misclassified there ends at x_r itself: the jump alone did it
        ok = ((f.status == "crossed") | ((f.status == "misclassified_at_start") & (start == "x_r"))).to_numpy()
        cols.update({f"eps_{route}": f.eps.to_numpy(), f"status_{route}": f.status.to_numpy(),
                     f"total_{route}": np.where(ok, rms_distance(x, finals[route]).numpy(), np.nan),
                     f"psnr_{route}": np.where(ok, psnr(x, finals[route]).numpy(), np.nan)})
    cols["jump_correct"] = (frames["jump"].status != "misclassified_at_start").to_numpy()
    cols["psnr_jump_only"] = psnr(x, xr).numpy()
    cols["eps_r"] = steps.flatten().numpy() if isinstance(steps, torch.Tensor) else steps
    df = pd.DataFrame(cols)
    return (df, (finals["direct"], finals["jump"])) if return_images else df


def median_ratio(df: pd.DataFrame, num: str = "eps_jump", den: str = "eps_direct", n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> dict:
    """Median of the paired ratio ``num`` / ``den`` (two columns of :func:`jump_travel`, e.g.
    ``eps_jump`` / ``eps_direct`` or ``total_jump`` / ``total_direct``) over samples whose routes
    both crossed, with its bootstrap interval over those samples (:func:`curvlib.stats.bootstrap`)
    and their count ``n_pairs``."""

    for c in (num, den):
        if c not in df.columns:
            raise ValueError(f"no column {c!r} in the jump frame (have {', '.join(map(str, df.columns))})")
    r = (df[num] / df[den]).to_numpy(dtype=float)
    r = r[np.isfinite(r)]  # NaN unless both crossed
    est, lo, hi = bootstrap(lambda i: np.median(r[i], axis=1), len(r), n_boot=n_boot, level=level, seed=seed)
    return {"median_ratio": est, "lo": lo, "hi": hi, "n_pairs": int(len(r))}


def positive_pairs(df: pd.DataFrame, num: str = "eps_jump", den: str = "eps_direct") -> pd.DataFrame:
    """The samples of a :func:`jump_travel` frame where both ``den`` and ``num`` are finite and positive
    (both routes crossed), as a frame with those two columns and ``ratio`` = num / den."""
    missing = [c for c in (num, den) if c not in df.columns]
    if missing:
        raise ValueError(f"not a jump frame: no column(s) {', '.join(missing)}")
    p = df[[den, num]].astype(float).dropna()
    p = p[(p[den] > 0) & (p[num] > 0)]
    return p.assign(ratio=p[num] / p[den])


__all__ = ["ROUTES", "random_jump", "psnr", "rms_distance", "jump_travel", "median_ratio", "positive_pairs"]
