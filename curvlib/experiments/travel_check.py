"""Experiment ``travel_check``: a seeded subset of the travel experiment's own rows re-checked by a dense scan."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch

from .. import data, runner
from ..measure.certify import AGREEING, categories, dense_scan
from ..measure.direction import direction
from .travel import TravelParams, travel_experiment


@dataclass(frozen=True)
class CheckParams(TravelParams):
    """Parameters of experiment ``travel_check``: the travel experiment's, and the check's own."""

    n_check: int = 100  #: rows checked (a seeded sample of the searched ones)
    check_seed: int = 0  #: seed of that sample
    step: float = 1e-3  #: step of the dense scan (pixel units)


def check_experiment(model_name: str, profile=None, *, kind: str | None = None, refresh: bool = False,
                     **params) -> pd.DataFrame:
    """Cached re-check of ``n_check`` seeded rows of the travel experiment with the same parameters
    (:class:`CheckParams`), one row per checked sample: ``index`` (its row in the travel frame),
    ``category``, the search's ``eps_lo``/``eps``/``status``, the scan's ``first_wrong`` ε."""
    return runner.run("travel_check", model_name, profile, refresh=refresh, kind=kind, **params)


def _travel_frame(model_name, profile, params, checkpoint) -> pd.DataFrame:
    """The travel experiment's own (cached) frame that is to be checked, on every rank first."""
    keys = [f.name for f in fields(TravelParams)]
    return travel_experiment(model_name, profile=profile, checkpoint=checkpoint, **{k: params[k] for k in keys})


def chosen_rows(frame: pd.DataFrame, n_check: int, seed: int) -> np.ndarray:
    """The rows to check, sorted: a seeded sample (without replacement) of the rows the search searched
    (classified correctly at ε = 0), all of them if fewer than ``n_check``."""
    searched = np.flatnonzero((frame.status != "misclassified_at_start").to_numpy())
    if len(searched) <= n_check:
        return searched
    return np.sort(np.random.default_rng(seed).choice(searched, size=n_check, replace=False))


def travel_images(profile, rows, model_name: str, n: int | None = None):
    """Images [R, C, H, W] (pixels in [0, 1]) and labels [R] of rows ``rows`` of the travel experiment's
    sample: its first n images (default ``profile.n_travel``; on ImageNet the seeded subset of n,
    preprocessed for ``model_name``), so that row i matches row i of a travel frame."""

    n = profile.n_travel if n is None else n
    rows = np.asarray(rows, dtype=np.int64)
    if profile.dataset == "fashion-mnist":
        x, y = data.test_set(profile, n=n)
        return x[rows], y[rows]
    ds = data.imagefolder(profile.data_dir, n=n, model_name=model_name)
    return data.load_tensors(torch.utils.data.Subset(ds, rows.tolist()))


@runner.experiment("travel_check",
                   params=CheckParams,
                   prepare=_travel_frame, calls=({"kind": "fgsm"}, {"kind": "random"}),
                   summary=lambda df: f"{int(df.category.isin(AGREEING).sum())}/{len(df)} agree with a dense scan")
def _check_part(model, profile, shard, frame, *, n, kind, eps_max, tol, seed, search, n_check, check_seed,
                step) -> pd.DataFrame:

    rows = chosen_rows(frame, n_check, check_seed)
    if shard is not None:
        rows = rows[shard[0]::shard[1]]
    if len(rows) == 0:
        return pd.DataFrame(columns=["index", "category", "status", "eps_lo", "eps", "first_wrong", "model", "kind"])
    x, y = travel_images(profile, rows, model.name, n)
    sub = frame.iloc[rows].reset_index(drop=True)
    if not (sub.label.to_numpy() == y.numpy()).all():
        raise RuntimeError("travel_check: the images' labels differ from the travel frame's (the data changed?)")
    index = torch.tensor(sub["index"].to_numpy(), dtype=torch.long)
    d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size, index=index)
    scan = dense_scan(model, x, y, d, step=step, k_max=int(round(eps_max / step)), batch_size=profile.batch_size)
    cat = categories(model, x, y, d, sub, scan, step=step)
    first = scan["first"].astype(float) * step
    return pd.DataFrame({"index": rows, "category": cat, "status": sub.status.astype(str).to_numpy(),
                         "eps_lo": sub.eps_lo.to_numpy(), "eps": sub.eps.to_numpy(),
                         "first_wrong": np.where(scan["first"] > 0, first, np.nan),
                         "model": model.name, "kind": kind})
