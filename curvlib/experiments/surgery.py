"""Experiments ``surgery_path``, ``surgery_travel`` and ``surgery_turning``: ω, ε* and the turning
before the boundary with parts linearised."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import data, models, runner
from ..config import require
from ..measure.angles import theta
from ..measure.curvature import curvature
from ..measure.direction import direction
from ..measure.probe import eps_grid, probe_line
from ..measure.surgery import KINDS, linearized, targets
from ..measure.travel import travel
from .theta import OmegaLineParams, interleave, path_grids
from .travel import SearchParams, few_travel_images

#: The surgeries the experiments take: "none" (the original model) or one kind.
SURGERIES = ("none", *KINDS)


def _check_surgery(surgery: str) -> str:
    if surgery not in SURGERIES:
        raise ValueError(f"unknown surgery {surgery!r}; choose one of {', '.join(SURGERIES)}")
    return surgery


def _surgered(model, x, surgery: str, batch_size: int):
    """The original model for "none", else the model linearised on ``surgery`` at the images x."""
    return model if _check_surgery(surgery) == "none" else linearized(model, x, (surgery,), batch_size)


def _chunk(profile) -> int:
    """Anchors per linearised model (memory: their captured inputs); the experiments loop over chunks."""
    return max(1, profile.batch_size // 4) if profile.dataset == "imagenet" else profile.batch_size


def applies(model, surgery: str) -> bool:
    """Whether ``surgery`` changes ``model`` at all (it has modules of that kind; "none" always applies)."""
    return _check_surgery(surgery) == "none" or bool(targets(model, (surgery,)))


def canonical(model, surgery: str) -> str:
    """``surgery``, or "all" where it linearises exactly the modules "all" does (a ReLU/BatchNorm CNN's
    "activation"): the two experiments would compute the same numbers, so a chapter runs one."""
    if _check_surgery(surgery) in ("none", "all"):
        return surgery
    same = [n for n, _ in targets(model, (surgery,))] == [n for n, _ in targets(model, ("all",))]
    return "all" if same else surgery


def _images(model, profile, n, kind, seed, shard=None):
    """(images, labels, directions, global numbers) of the profile's first n test images (a shard of
    them); directions of the *original* model (FGSM) or seeded random: the same for every surgery."""

    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size, index=index)
    return x, y, d, index


@dataclass(frozen=True)
class PathParams(OmegaLineParams):
    """Parameters of experiment ``surgery_path`` (ε in pixel units): the θ paths' (one-way grid; FGSM of the
    original model, or seeded random), and these."""

    surgery: str = "none"  #: what is linearised: a kind of :data:`SURGERIES`


def path_experiment(model_name: str, profile=None, *, surgery: str | None = None, kind: str | None = None,
                    refresh: bool = False, checkpoint=None, **params) -> dict:
    """Cached ω (step-free) and θ (the paper's one-way ruler) of ``model_name`` with ``surgery``
    (a kind, or "none") along ``kind`` directions, anchor = the image x, on the profile's first
    ``n_images`` test images (parameters and defaults: :class:`PathParams`).

    Returns ``omega`` [N, E] (radians per unit ε, on ``omega_eps`` = linspace(0, omega_range, E)),
    ``theta`` [N, n_steps − 1] (radians, on the one-way grid ``theta_eps`` up to eps_range), ``index``
    [N] (test-image numbers) and ``replaced`` (the linearised modules)."""
    return runner.run("surgery_path", model_name, profile, checkpoint=checkpoint, refresh=refresh,
                      surgery=surgery, kind=kind, **params)


def _interleave_images(parts: list, params: dict) -> dict:
    """Image-sharded parts back into image order (every size-th image from rank)."""
    return {**{key: interleave(parts, key) for key in ("omega", "theta", "index")},
            "replaced": list(parts[0]["replaced"]), **path_grids(params)}


@runner.experiment("surgery_path", params=PathParams, merge=_interleave_images,
                   calls=tuple({"surgery": s} for s in ("none", "attention", "norm", "activation", "all")),
                   summary=lambda r: f"ω {tuple(r['omega'].shape)}, {len(r['replaced'])} modules linearised")
def _path_part(model, profile, shard, context, *, n_images, surgery, kind, eps_range, n_steps, omega_range,
               omega_steps, seed):

    x, _, d, index = _images(model, profile, n_images, kind, seed, shard)
    ew, et = torch.linspace(0, omega_range, omega_steps + 1), eps_grid("oneway", eps_range, n_steps)
    omega, th, replaced = [], [], []
    dev = profile.device
    for s in range(0, len(x), _chunk(profile)):
        xs, ds = x[s:s + _chunk(profile)].to(dev), d[s:s + _chunk(profile)].to(dev)
        m = _surgered(model, xs, surgery, profile.batch_size)
        replaced = getattr(m, "replaced", [])
        omega.append(curvature(m, xs, ds, ew, batch_size=max(1, profile.batch_size // 2))["omega"].cpu())
        th.append(theta(probe_line(m, xs, ds, et, profile.batch_size)["features"]).cpu())
    return {"omega": torch.cat(omega), "theta": torch.cat(th), "index": index, "replaced": replaced}


@dataclass(frozen=True)
class SurgeryTravelParams(SearchParams):
    """Parameters of experiment ``surgery_travel`` (pixel units)."""

    n: int | None = runner.from_profile(few_travel_images)  #: the first n test images
    surgery: str = "none"  #: what is linearised: a kind of :data:`SURGERIES`
    kind: str = "fgsm"  #: direction kind (FGSM of the original model, or seeded random)


def travel_experiment(model_name: str, profile=None, *, surgery: str | None = None, kind: str | None = None,
                      refresh: bool = False, checkpoint=None, **params) -> pd.DataFrame:
    """Cached :func:`curvlib.measure.travel.travel` of ``model_name`` with ``surgery`` (anchor held at the
    image x) on the profile's first ``n`` test images (:class:`SurgeryTravelParams`) along
    ``kind`` (FGSM of the original model, or seeded random): the travel frame plus ``model``, ``kind``,
    ``surgery`` and ``n_replaced``. Confidence and prediction at x equal the original's."""
    return runner.run("surgery_travel", model_name, profile, checkpoint=checkpoint, refresh=refresh,
                      surgery=surgery, kind=kind, **params)


@runner.experiment("surgery_travel", params=SurgeryTravelParams,
                   calls=tuple({"surgery": s, "kind": k} for k in ("fgsm", "random")
                               for s in ("none", "attention", "norm", "activation", "all")),
                   summary=lambda df: f"{df.surgery.iloc[0]} {df.kind.iloc[0]}: "
                                      f"{int((df.status == 'crossed').sum())}/{len(df)} crossed")
def _travel_part(model, profile, shard, context, *, n, surgery, kind, eps_max, tol, seed, search):
    x, y, d, index = _images(model, profile, n, kind, seed, shard)
    out, c = [], _chunk(profile)
    n_rep = 0
    for s in range(0, len(x), c):
        m = _surgered(model, x[s:s + c].to(profile.device), surgery, profile.batch_size)
        n_rep = len(getattr(m, "replaced", []))
        out.append(travel(m, x[s:s + c], y[s:s + c], d[s:s + c], eps_max=eps_max, tol=tol,
                          batch_size=profile.batch_size, search=search, progress=False))
    df = pd.concat(out, ignore_index=True)
    return df.assign(index=index.numpy(), model=model.name, kind=kind, surgery=surgery, n_replaced=n_rep)


@dataclass(frozen=True)
class TurningParams(SearchParams):
    """Parameters of experiment ``surgery_turning``: those of the unsurgered travel, and ``n_t``."""

    n: int | None = runner.from_profile(few_travel_images)  #: the first n test images
    kind: str = "fgsm"  #: direction kind
    n_t: int = 3  #: intervals of the trapezoid rule on [0, ε*]


def turning_experiment(model_name: str, profile=None, *, kind: str | None = None, refresh: bool = False,
                       checkpoint=None, **params) -> pd.DataFrame:
    """Cached turning accumulated before the boundary, ∫₀^ε* ω dε (radians), of the *original* model
    per image, on the images of :func:`travel_experiment` ("none"): ω on ``n_t`` + 1 evenly spaced
    points of [0, ε*] (trapezoid rule; d scaled by ε*, so ω per unit of that scaled step is ω·ε*).
    One row per image: ``index``, ``confidence``, ``eps``, ``status``, ``turning`` (NaN unless crossed)."""
    return runner.run("surgery_turning", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      **params)


def _turning_prepare(model_name, profile, params, checkpoint):
    keep = {k: v for k, v in params.items() if k != "n_t"}
    return runner.run("surgery_travel", model_name, profile, checkpoint=checkpoint, surgery="none", **keep)


@runner.experiment("surgery_turning", params=TurningParams, prepare=_turning_prepare,
                   summary=lambda df: f"turning on {int(df.turning.notna().sum())} images")
def _turning_part(model, profile, shard, context, *, n, kind, eps_max, tol, seed, search, n_t):
    x, y, d, index = _images(model, profile, n, kind, seed, shard)
    tr = context.set_index("index").loc[index.numpy()]
    ok = torch.from_numpy((tr.status == "crossed").to_numpy().copy())
    turning = np.full(len(x), np.nan)
    if ok.any():
        e = torch.as_tensor(tr.eps.to_numpy()[ok.numpy()], dtype=torch.float32).view(-1, 1, 1, 1)
        t = torch.linspace(0, 1, n_t + 1)
        w = curvature(model, x[ok].to(profile.device), (d[ok] * e).to(profile.device), t,
                      batch_size=max(1, profile.batch_size // 2))["omega"].double().numpy()
        turning[ok.numpy()] = np.trapezoid(w, t.double().numpy(), axis=1)
    return pd.DataFrame({"index": index.numpy(), "confidence": tr.confidence.to_numpy(), "eps": tr.eps.to_numpy(),
                         "status": tr.status.astype(str).to_numpy(), "turning": turning, "model": model.name,
                         "kind": kind})


#: The surgeries the chapter runs per model, "all" before the single kinds it may coincide with.
CHAPTER_SURGERIES = ("none", "all", "attention", "norm", "activation")


def path_results(names, profile=None, *, surgeries=CHAPTER_SURGERIES) -> dict:
    """(model, surgery) → :func:`path_experiment` for each model and each surgery that applies to it; a surgery
    that linearises the same modules as one already run (:func:`canonical`) shares its result."""
    profile = require(profile)
    paths = {}
    for m in names:
        model = models.load(m, profile)
        for s in surgeries:
            if applies(model, s):
                c = canonical(model, s)
                paths[(m, s)] = paths[(m, c)] if (m, c) in paths else path_experiment(m, profile, surgery=s)
    return paths


def travel_results(names, profile=None, *, variants=(), surgeries=CHAPTER_SURGERIES) -> dict:
    """(model, surgery, kind) → :func:`travel_experiment` frame: for ``names`` every surgery that applies along
    FGSM and "none" and "all" along random directions; for ``variants`` (component swaps) FGSM only. Shared
    between surgeries as in :func:`path_results`."""
    profile = require(profile)
    frames = {}
    for m in [*names, *variants]:
        model = models.load(m, profile)
        for kind, kinds in (("fgsm", surgeries), ("random", ("none", "all"))):
            for s in kinds if m in names or kind == "fgsm" else ():
                if applies(model, s):
                    c = canonical(model, s)
                    frames[(m, s, kind)] = frames[(m, c, kind)] if (m, c, kind) in frames else \
                        travel_experiment(m, profile, surgery=s, kind=kind)
    return frames
