"""What linearising each kind of component removes: shares of ω, ratios of ε*, turning before the boundary."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import models
from ..config import require
from ..constants import BANDS
from ..experiments.surgery import SURGERIES, path_experiment, travel_experiment
from ..stats import bootstrap, verdict
from .boundary import _band_label, _in_band, _ratio, distance
from .records import CLAIMS
from .resample import _families, _family_of, _pooled_median, _same_images, spearman


def _per_image_mean(t: torch.Tensor) -> np.ndarray:
    """Mean over the last axis (NaN ignored) per image [N]."""
    a = torch.as_tensor(t).double().numpy()
    with np.errstate(all="ignore"):
        return np.nanmean(a.reshape(a.shape[0], -1), axis=1)


def omega_shares(paths: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Share of the original's ω each surgery removes, per model, with a paired bootstrap over images.

    ``paths``: (model, surgery) → :func:`path_experiment` result, with surgery "none" for every model.
    One row per (model, surgery ≠ "none"): ``omega`` (mean ω, rad per unit ε, over images and ε),
    ``omega_none`` (the original's), ``share`` = 1 − omega / omega_none with ``lo``, ``hi``; ``theta``
    and ``theta_none`` (mean θ, degrees, the paper's one-way ruler); ``n`` images, ``modules`` (how many
    were linearised). A share is NaN where the original does not bend (ω = 0: a ReLU network)."""

    rows = []
    for (model, surgery), r in paths.items():
        if surgery == "none":
            continue
        if (model, "none") not in paths:
            raise ValueError(f"{model!r}: no original ('none') result to compare {surgery!r} with")
        o = paths[(model, "none")]
        if not torch.equal(torch.as_tensor(o["index"]), torch.as_tensor(r["index"])):
            raise ValueError(f"{model!r}: {surgery!r} was measured on other images than the original")
        wo, ws = _per_image_mean(o["omega"]), _per_image_mean(r["omega"])

        def share(i, wo=wo, ws=ws):
            den = wo[i].mean(1)
            with np.errstate(all="ignore"):
                return np.where(den > 0, 1 - ws[i].mean(1) / den, np.nan)

        est, lo, hi = bootstrap(share, len(wo), n_boot=n_boot, level=level, seed=seed)
        rows.append({"model": model, "surgery": surgery, "modules": len(r["replaced"]),
                     "omega_none": float(wo.mean()), "omega": float(ws.mean()), "share": est, "lo": lo, "hi": hi,
                     "theta_none": float(np.degrees(np.nanmean(o["theta"].double().numpy()))),
                     "theta": float(np.degrees(np.nanmean(r["theta"].double().numpy()))), "n": len(wo)})
    return pd.DataFrame(rows)


def _paired_ratios(frames: dict, model: str, surgery: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ε*_surgery / ε*_original per image, the original's confidence): +inf where only the surgered
    model never crossed, 1 where neither did, NaN where misclassified at the start."""

    o, s = frames[(model, "none", kind)], frames[(model, surgery, kind)]
    _same_images({"none": o, surgery: s})
    return _ratio(distance(s), distance(o)), o["confidence"].to_numpy(float)


def eps_ratios(frames: dict, families: dict | None = None, edges=None, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> pd.DataFrame:
    """Median paired ratio ε*_surgery / ε*_original per family, surgery and direction kind, over all
    images and within the boundary chapter's confidence bands (the original's confidence at x).

    ``frames``: (model, surgery, kind) → :func:`travel_experiment` frame, every model with surgery "none"
    and all on the same images. The median pools the family's models (as the boundary chapter does);
    the interval resamples images, the same resample for every model. One tidy row per (family,
    surgery, kind, band): ``median``, ``lo``, ``hi``, ``n_pairs``, ``verdict`` (below 1: the surgery
    shortens the travel)."""

    edges = BANDS if edges is None else edges
    names = list(dict.fromkeys(m for m, _, _ in frames))
    families = _family_of(names, families)
    combos = sorted({(s, k) for _, s, k in frames if s != "none"}, key=lambda sk: (SURGERIES.index(sk[0]), sk[1]))
    bands = [("all", None, None)] + [(_band_label(a, b), a, b) for a, b in zip(edges[:-1], edges[1:])]
    rows = []
    for fam in dict.fromkeys(families[m] for m in names):
        for surgery, kind in combos:
            ms = [m for m in names if families[m] == fam and (m, surgery, kind) in frames]
            if not ms:
                continue
            pairs = [_paired_ratios(frames, m, surgery, kind) for m in ms]
            n = len(pairs[0][0])
            for label, a, b in bands:
                vals = [np.where(np.ones_like(c, bool) if a is None else _in_band(c, a, b), r, np.nan)
                        for r, c in pairs]
                est, lo, hi = bootstrap(_pooled_median(vals), n, n_boot=n_boot, level=level, seed=seed)
                rows.append({"family": fam, "surgery": surgery, "kind": kind, "band": label, "models": ", ".join(ms),
                             "median": est, "lo": lo, "hi": hi, "n_pairs": int(sum((~np.isnan(v)).sum() for v in vals)),
                             "verdict": verdict(lo, hi, 1.0, "<")})
    return pd.DataFrame(rows)


def turning_table(turning: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per model: does more turning before the boundary go with a longer travel, or with lower confidence?

    ``turning``: model → :func:`turning_experiment` frame. Crossed images only: ``turning_median``
    (radians accumulated up to ε*), Spearman ρ of turning with ε* (``rho_eps``, ``lo_eps``, ``hi_eps``),
    with the confidence at x (``rho_conf`` …) and with the mean rate turning/ε* (``rho_rate`` …: a longer
    path accumulates more turning at a constant ω; the rate asks whether it also bends faster),
    intervals over images; ``n`` images."""

    rows = []
    for model, df in turning.items():
        ok = df[(df.status == "crossed") & df.turning.notna()]
        t, e, c = (ok[k].to_numpy(float) for k in ("turning", "eps", "confidence"))
        row = {"model": model, "n": len(ok), "turning_median": float(np.median(t)) if len(t) else np.nan,
               "eps_median": float(np.median(e)) if len(e) else np.nan}
        for key, v in (("eps", e), ("conf", c), ("rate", t / e)):
            est, lo, hi = bootstrap(spearman(t, v), len(t), n_boot=n_boot, level=level, seed=seed) if len(t) > 2 \
                else (np.nan,) * 3
            row.update({f"rho_{key}": est, f"lo_{key}": lo, f"hi_{key}": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_ratio(num: pd.DataFrame, den: pd.DataFrame, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Median over images of ε*(num) / ε*(den) for two travel frames on the same images (e.g. a
    component-swap variant over its parent), with its bootstrap interval: ``median``, ``lo``, ``hi``,
    ``n`` (images with a defined ratio)."""

    _same_images({"num": num, "den": den})
    r = _ratio(distance(num), distance(den))
    est, lo, hi = bootstrap(_pooled_median([r]), len(r), n_boot=n_boot, level=level, seed=seed)
    return {"median": est, "lo": lo, "hi": hi, "n": int((~np.isnan(r)).sum())}


#: Confidence at or below which the "low confidence" row compares travel (the boundary chapter's threshold).
LOW_CONFIDENCE = 0.9


def claim_rows(paths: dict, frames: dict, families: dict | None = None, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> list[dict]:
    """The ledger's surgery rows (:data:`curvlib.claims.records.CLAIMS` "surgery (…)"), from the chapter's results.

    ``paths``: (model, surgery) → :func:`path_experiment` (the Transformers, "none" and "attention");
    ``frames``: (model, surgery, "fgsm") → :func:`travel_experiment` ("none" and "all" for every model).
    Rows: the share of the Transformers' ω that linearising attention removes (holds above ½: attention
    carries most of the bend); the Transformers' median ε*_all / ε*_none, overall and at confidence ≤
    :data:`LOW_CONFIDENCE` (holds below 1: taking the bend out shortens the travel); the control, that
    ratio for the Transformers over the CNNs' (holds below 1: the surgery matters more for them)."""

    kw = {"n_boot": n_boot, "level": level, "seed": seed}
    names = list(dict.fromkeys(m for m, _, _ in frames))
    families = _family_of(names, families)
    fams = _families(names, families)
    rows = []
    # 1. what bends: the share of ω removed by linearising attention, pooled over the Transformers
    tr = [m for m in fams["Transformer"] if (m, "attention") in paths and (m, "none") in paths]
    wo = np.stack([_per_image_mean(paths[(m, "none")]["omega"]) for m in tr], 1) if tr else np.zeros((0, 1))
    ws = np.stack([_per_image_mean(paths[(m, "attention")]["omega"]) for m in tr], 1) if tr else np.zeros((0, 1))

    def share(i):
        den = wo[i].mean((1, 2))
        with np.errstate(all="ignore"):
            return np.where(den > 0, 1 - ws[i].mean((1, 2)) / den, np.nan)

    est, lo, hi = bootstrap(share, len(wo), **kw)
    rows.append(CLAIMS["surgery (what bends)"].judge(
        est, lo, hi, len(wo), measure=f"share of the Transformers' mean ω removed by linearising attention "
                                      f"({', '.join(tr)}; FGSM, anchor = the image)"))
    # 2.–4. does the bend buy distance
    n = len(frames[(names[0], "none", "fgsm")])
    pairs = {m: _paired_ratios(frames, m, "all", "fgsm") for m in names if (m, "all", "fgsm") in frames}
    stat = {}
    for fam, ms in fams.items():
        stat[fam] = _pooled_median([pairs[m][0] for m in ms if m in pairs])
        stat[fam + " low"] = _pooled_median([np.where(_in_band(pairs[m][1], 0.0, LOW_CONFIDENCE), pairs[m][0], np.nan)
                                             for m in ms if m in pairs])
    for claim, key, what in (("surgery (distance)", "Transformer", "all images"),
                             ("surgery (low confidence)", "Transformer low", f"confidence ≤ {LOW_CONFIDENCE:g}")):
        est, lo, hi = bootstrap(stat[key], n, **kw)
        rows.append(CLAIMS[claim].judge(
            est, lo, hi, n, measure=f"median ε*(all linearised) / ε*(original), Transformers, FGSM, {what}"))

    def control(i):
        with np.errstate(all="ignore"):
            return stat["Transformer"](i) / stat["CNN"](i)

    est, lo, hi = bootstrap(control, n, **kw)
    cnn = float(stat["CNN"](np.arange(n)[None])[0])
    rows.append(CLAIMS["surgery (control)"].judge(
        est, lo, hi, n, note=f"The CNNs' own median ratio is {cnn:.3g}: for a ReLU network 'all' keeps every unit's "
                             "gate from the image, so its path is straight as long as no unit switches."))
    return rows


def ledger_rows(profile, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """:func:`claim_rows` for the profile's models, from the cached experiments (computed on a miss)."""

    profile = require(profile)
    names = list(profile.models)
    paths = {(m, s): path_experiment(m, s, profile) for m in names if models.family(m) == "Transformer"
             for s in ("none", "attention")}
    frames = {(m, s, "fgsm"): travel_experiment(m, s, "fgsm", profile) for m in names for s in ("none", "all")}
    return claim_rows(paths, frames, n_boot=n_boot, seed=seed)
