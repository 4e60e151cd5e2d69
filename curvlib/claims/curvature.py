"""Curvature claims (θ and ω per family, mesh flatness) and the curvature chapter's summary tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import models
from ..constants import AWAY
from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import _families, _family_of, family_ratio


def _mean_deg(th: torch.Tensor, keep=None) -> float:
    t = np.degrees(torch.as_tensor(th).double().numpy())
    t = t[..., keep] if keep is not None else t
    return float(np.nanmean(t)) if np.isfinite(t).any() else float("nan")


def ruler_table(results: dict) -> pd.DataFrame:
    """Mean θ (degrees) of features and of the input path itself for every ruler.

    ``results`` maps (model, kind, protocol, saturation) → :func:`theta_experiment` result. One row per
    (model, kind, ruler): ``ruler`` (readable), ``theta`` (features), ``input_theta`` (the clipped input
    points: 0 for a straight input path); symmetric grids also get a row restricted to |ε| > AWAY."""
    rows = []
    for (model, kind, protocol, saturation), r in results.items():
        label = protocol + (", saturation-aware" if saturation else "")
        variants = [(label, None)]
        if protocol == "symmetric":
            variants.append((f"{label}, |ε| > {AWAY:g}", (r["eps"][1:-1].abs() > AWAY).numpy()))
        for name, keep in variants:
            rows.append({"model": model, "kind": kind, "ruler": name, "theta": _mean_deg(r["theta"], keep),
                         "input_theta": _mean_deg(r["input_theta"], keep)})
    return pd.DataFrame(rows)


def step_table(sweeps: dict) -> pd.DataFrame:
    """Per model and step Δ of a :func:`theta_step_experiment` sweep: mean and median θ (degrees) and
    mean θ/Δ (radians per unit ε, comparable with ω). ``sweeps``: model → sweep frame."""
    out = []
    for model, df in sweeps.items():
        g = df.assign(deg=np.degrees(df.theta), rate=df.theta / df.delta).groupby("delta")
        out.append(pd.DataFrame({"model": model, "delta": g.size().index, "mean": g.deg.mean().to_numpy(),
                                 "median": g.deg.median().to_numpy(), "rate": g.rate.mean().to_numpy()}))
    return pd.concat(out, ignore_index=True)


def curvature_table(results: dict) -> pd.DataFrame:
    """Per model: median and mean ω (radians per unit ε, smooth bending), median κ, mean kinks per unit ε
    (activation switches per step / step length) and the block whose output turns fastest (median ω).
    ``results``: model → :func:`curvature_experiment` result."""
    rows, blocks = [], block_omega_table(results)
    for model, r in results.items():
        w = r["omega"].double().numpy()
        step = float(r["eps"][1] - r["eps"][0])
        bw = blocks.omega_median[blocks.model == model].to_numpy()
        rows.append({"model": model, "omega_median": float(np.nanmedian(w)), "omega_mean": float(np.nanmean(w)),
                     "kappa_median": float(np.nanmedian(r["kappa"].double().numpy())),
                     "kinks_per_eps": float(r["kinks"].double().mean()) / step,
                     "top_block": r["block_names"][int(np.nanargmax(bw))] if len(bw) else None,
                     "top_block_omega": float(np.nanmax(bw)) if len(bw) else float("nan")})
    return pd.DataFrame(rows)


def block_omega_table(results: dict) -> pd.DataFrame:
    """Per model and residual block (forward order): the median ω of the block's output (radians per
    unit ε) and the block's relative depth 0 … 1. ``results``: model → :func:`curvature_experiment` result."""
    out = []
    for model, r in results.items():
        names = list(r["block_names"])
        bw = r["block_omega"].double().numpy()
        out.append(pd.DataFrame({
            "model": model, "block": names, "depth": np.linspace(0, 1, len(names)) if len(names) > 1 else 0.0,
            "omega_median": np.nanmedian(bw.reshape(len(names), -1), axis=1) if names else []}))
    return pd.concat(out, ignore_index=True)


def step_exponent(steps: pd.DataFrame) -> pd.Series:
    """Per model, the least-squares slope of log(mean θ) on log Δ over a :func:`step_table`: 1 for a
    smooth path (θ ≈ ωΔ), below 1 when θ comes from kinks dense enough that θ/Δ grows as Δ shrinks."""
    out = {}
    for model, g in steps.groupby("model", sort=False):
        ok = (g["mean"] > 0) & np.isfinite(g["mean"])
        fit = np.polyfit(np.log(g.delta[ok]), np.log(g["mean"][ok]), 1) if ok.sum() >= 2 else [float("nan")]
        out[model] = float(fit[0])
    return pd.Series(out, name="exponent")


def curvature_theta_claim(thetas: dict, families: dict | None = None, ruler: str = "", **kw) -> dict:
    """The ledger row of :func:`family_ratio` (θ in radians [M, N, S] per model)."""
    r = family_ratio(thetas, _family_of(thetas, families), **kw)
    return CLAIMS["curvature (θ)"].judge(r["ratio"], r["lo"], r["hi"], r["n_images"],
                                         measure=f"mean θ Transformers / CNNs{', ' + ruler if ruler else ''}",
                                         note="θ at a finite step counts activation kinks as turns; the chapter "
                                              "compares rulers and steps.")


def _mean_omega(r) -> np.ndarray:
    """Mean ω per image [N] of a curvature result (``omega`` [M, N, S]; NaN where undefined)."""
    w = torch.as_tensor(r["omega"]).double().numpy()
    a = w.swapaxes(0, 1).reshape(w.shape[1], -1)
    return np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in a])


def omega_gap(results: dict, families: dict | None = None, variants: dict | None = None, n_boot: int = 1000,
              level: float = 0.95, seed: int = 0) -> dict:
    """Mean step-free bending rate ω (rad per unit ε) of the Transformers minus the CNNs', with an
    interval paired over images. ``results``: model → :func:`curvlib.experiments.curvature.curvature_experiment`
    result (``omega`` [M, N, S]). A piecewise-linear network (ReLU with BatchNorm) has ω = 0 between
    its kinks by construction, so against such CNNs the verdict cannot be "opposite"; ``variants``
    (model → result, e.g. the CNNs with GELU or LayerNorm swapped in) go into the row's note."""
    families = _family_of(results, families)
    fams = _families(list(results), families)
    per = {m: _mean_omega(r) for m, r in results.items()}
    sizes = {len(v) for v in per.values()}
    if len(sizes) != 1:
        raise ValueError(f"every ω must be on the same images, got image counts {sorted(sizes)}")
    fam = {f: np.mean([per[m] for m in ms], axis=0) for f, ms in fams.items()}
    d = fam["Transformer"] - fam["CNN"]
    est, lo, hi = bootstrap(lambda i: np.nanmean(d[i], axis=1), len(d), n_boot=n_boot, level=level, seed=seed)
    note = ("ω = 0 for any piecewise-linear network (ReLU with BatchNorm), so this row can only hold or be "
            "inconclusive against such CNNs.")
    if variants:

        vw = {m: float(np.nanmean(_mean_omega(r))) for m, r in variants.items()}
        note += " Component-swap variants: " + ", ".join(
            f"{m} ({models.spec(m).swap_label}) {w:.3g}" for m, w in vw.items()) + "."
        tr_low = min(float(np.nanmean(per[m])) for m in fams["Transformer"])
        bent = [m for m, w in vw.items() if _family_of([m], None)[m] == "CNN" and w >= 0.5 * tr_low]
        if bent:
            note += (f" {', '.join(bent)}: a CNN with one component swapped bends at least half as fast as the slower "
                     "Transformer — ω follows the components, not the family.")
    return CLAIMS["curvature (ω)"].judge(est, lo, hi, len(d), note=note, cnn=float(np.nanmean(fam["CNN"])),
                                         transformer=float(np.nanmean(fam["Transformer"])))


def flatness_gap(flat: pd.DataFrame, families: dict | None = None, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Mean mesh flatness ρ (0 = flat) of the Transformers minus the CNNs', paired over images.

    ``flat``: :func:`curvlib.measure.views.mesh_flatness` rows (``model``, ``image``, ``rho``) of one plane,
    every model on the same images. The paper's Figure 1 expects the Transformers' meshes the more
    curved: "holds" above 0."""
    need = {"model", "image", "rho"} - set(flat.columns)
    if need:
        raise ValueError(f"not a mesh_flatness frame: no column(s) {', '.join(sorted(need))}")
    wide = flat.pivot(index="image", columns="model", values="rho")
    if wide.isna().any().any():
        raise ValueError("every model needs a ρ on every image for a paired comparison")
    families = _family_of(list(wide.columns), families)
    fams = _families(list(wide.columns), families)
    d = (wide[fams["Transformer"]].mean(1) - wide[fams["CNN"]].mean(1)).to_numpy(float)
    est, lo, hi = bootstrap(lambda i: d[i].mean(1), len(d), n_boot=n_boot, level=level, seed=seed)
    return {"estimate": est, "lo": lo, "hi": hi, "verdict": verdict(lo, hi, 0.0, ">"), "n": len(d),
            "cnn": float(wide[fams["CNN"]].to_numpy().mean()),
            "transformer": float(wide[fams["Transformer"]].to_numpy().mean())}
