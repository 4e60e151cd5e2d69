"""Curvature claims (θ and ω per family, mesh flatness), the curvature chapter's summary tables and
its statements in words (``*_markdown``: the verdicts come from the :data:`~.records.CLAIMS` records)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import models
from ..constants import AWAY
from ..models import family
from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import family_map, family_ratio, split_families


def _mean_deg(th: torch.Tensor, keep=None) -> float:
    t = np.degrees(torch.as_tensor(th).double().numpy())
    t = t[..., keep] if keep is not None else t
    return float(np.nanmean(t)) if np.isfinite(t).any() else float("nan")


def _ruler(protocol: str, saturation: bool) -> str:
    return protocol + (", saturation-aware" if saturation else "")


def ruler_table(results: dict) -> pd.DataFrame:
    """Mean θ (degrees) of features and of the input path itself for every ruler.

    ``results`` maps (model, kind, protocol, saturation) → :func:`theta_experiment` result. One row per
    (model, kind, ruler): ``ruler`` (readable), ``theta`` (features), ``input_theta`` (the clipped input
    points: 0 for a straight input path); symmetric grids also get a row restricted to |ε| > AWAY."""
    rows = []
    for (model, kind, protocol, saturation), r in results.items():
        label = _ruler(protocol, saturation)
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
    r = family_ratio(thetas, family_map(thetas, families), **kw)
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
    families = family_map(results, families)
    fams = split_families(list(results), families)
    per = {m: _mean_omega(r) for m, r in results.items()}
    sizes = {len(v) for v in per.values()}
    if len(sizes) != 1:
        raise ValueError(f"every ω must be on the same images, got image counts {sorted(sizes)}")
    fam = {f: np.mean([per[m] for m in ms], axis=0) for f, ms in fams.items()}
    d = fam["Transformer"] - fam["CNN"]
    est, lo, hi = bootstrap(lambda i: np.nanmean(d[i], axis=1), len(d), n_boot=n_boot, level=level, seed=seed)
    note = ("ω = 0 for any piecewise-linear network (ReLU with BatchNorm), so this row can only hold or be "
            "inconclusive against such CNNs.")
    flat = [m for m in fams["CNN"] if np.nanmax(np.abs(per[m])) == 0]
    design = ("every CNN's ω is exactly 0 on every image (" + ", ".join(flat) + ": piecewise-linear), so the "
              "difference cannot fall below 0 and the rule cannot say \"opposite\"."
              if flat and len(flat) == len(fams["CNN"]) else "")
    if variants:

        vw = {m: float(np.nanmean(_mean_omega(r))) for m, r in variants.items()}
        note += " Component-swap variants: " + ", ".join(
            f"{m} ({models.spec(m).swap_label}) {w:.3g}" for m, w in vw.items()) + "."
        tr_low = min(float(np.nanmean(per[m])) for m in fams["Transformer"])
        bent = [m for m, w in vw.items() if family_map([m], None)[m] == "CNN" and w >= 0.5 * tr_low]
        if bent:
            note += (f" {', '.join(bent)}: a CNN with one component swapped bends at least half as fast as the slower "
                     "Transformer — ω follows the components, not the family.")
    return CLAIMS["curvature (ω)"].judge(est, lo, hi, len(d), note=note, design=design,
                                         cnn=float(np.nanmean(fam["CNN"])),
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
    families = family_map(list(wide.columns), families)
    fams = split_families(list(wide.columns), families)
    d = (wide[fams["Transformer"]].mean(axis=1) - wide[fams["CNN"]].mean(axis=1)).to_numpy(float)
    est, lo, hi = bootstrap(lambda i: d[i].mean(1), len(d), n_boot=n_boot, level=level, seed=seed)
    return {"estimate": est, "lo": lo, "hi": hi, "verdict": verdict(lo, hi, 0.0, ">"), "n": len(d),
            "cnn": float(wide[fams["CNN"]].to_numpy().mean()),
            "transformer": float(wide[fams["Transformer"]].to_numpy().mean())}


def ruler_pivot(rulers: pd.DataFrame) -> pd.DataFrame:
    """A :func:`ruler_table` as the page shows it: mean θ (degrees) per model (rows ``model``, ``family``)
    and (kind, ruler) column, with a last row ``input path``: the input path's own θ averaged over the models."""
    r = rulers.assign(family=rulers.model.map(family))
    inputs = r.groupby(["kind", "ruler"]).input_theta.mean().rename("input path").to_frame().T
    table = r.pivot(index=["model", "family"], columns=["kind", "ruler"], values="theta")
    return pd.concat([table, inputs.set_axis(pd.MultiIndex.from_tuples([("input path", "")]))])


def ruler_baseline_markdown(rulers: pd.DataFrame) -> str:
    """Which one-way input path is the straighter, by the mean θ (degrees) of a :func:`ruler_table`."""
    sat, plain = (rulers[rulers.ruler == r].input_theta.mean() for r in (_ruler("oneway", True), "oneway"))
    return (f"The saturation-aware input path turns {sat:.2f}° per step on average, the plain one-way path "
            f"{plain:.2f}°: the saturation-aware ruler is {'the straighter' if sat < plain else 'not the straighter'} "
            "one on these images.")


def ruler_ratios(results: dict, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """:func:`family_ratio` (Transformers' mean θ over the CNNs', paired over images) for every kind and
    ruler of ``results`` ((model, kind, protocol, saturation) → :func:`theta_experiment` result), in the
    order of the keys; a symmetric ruler also gets a row restricted to |ε| > AWAY (the kink at the image
    left out). Columns kind, ruler, ratio, lo, hi, verdict, n_images."""
    names = list(dict.fromkeys(k[0] for k in results))
    fams = {m: family(m) for m in names}
    rows = []
    for kind in dict.fromkeys(k[1] for k in results):
        for protocol, sat in dict.fromkeys(k[2:] for k in results):
            th = {m: results[(m, kind, protocol, sat)]["theta"] for m in names}
            label = _ruler(protocol, sat)
            if protocol == "symmetric":
                away = (results[(names[0], kind, protocol, sat)]["eps"][1:-1].abs() > AWAY).numpy()
                rows.append({"kind": kind, "ruler": f"{label}, |ε| > {AWAY:g}",
                             **family_ratio({m: t[..., away] for m, t in th.items()}, fams, n_boot=n_boot, seed=seed)})
            rows.append({"kind": kind, "ruler": label, **family_ratio(th, fams, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)


def step_ends_table(steps: pd.DataFrame) -> pd.DataFrame:
    """Per model of a :func:`step_table` (in its order): mean and median θ (degrees) at the smallest and
    the largest step Δ, and the slope of log θ on log Δ (:func:`step_exponent`)."""
    ends = steps[steps.delta.isin([steps.delta.min(), steps.delta.max()])]
    table = ends.pivot(index="model", columns="delta", values=["mean", "median"]).loc[list(dict.fromkeys(steps.model))]
    table.columns = [f"{stat} θ (°), Δ = {d:g}" for stat, d in table.columns]
    table["slope of log θ on log Δ"] = step_exponent(steps)
    return table


def omega_table(fgsm: dict, random: dict) -> pd.DataFrame:
    """:func:`curvature_table` of the FGSM paths (index ``model``) with ``family``, ``swap`` (the
    component a variant swaps, "—" for none), the random paths' ``omega_median (random)`` and
    ``kinks_per_eps (random)`` (NaN for models without random paths), and ``top_block`` set to
    "— (no smooth bending)" where no block bends. ``fgsm``, ``random``: model → curvature result."""
    table = curvature_table(fgsm).set_index("model")
    rand = curvature_table(random).set_index("model")
    table["omega_median (random)"] = rand.omega_median
    table["kinks_per_eps (random)"] = rand.kinks_per_eps
    table.loc[table.top_block_omega <= 0, "top_block"] = "— (no smooth bending)"
    table.insert(0, "family", [family(m) for m in table.index])
    table.insert(1, "swap", [models.spec(m).swap_label or "—" for m in table.index])
    return table.drop(columns=["omega_mean"])


def no_line_markdown(table: pd.DataFrame) -> str:
    """A note naming the models of an :func:`omega_table` whose ω is 0 (no line on a log axis); "" if none."""
    none = [m for m in table.index if table.loc[m, "omega_median"] <= 0]
    return (f"No line for {', '.join(none)}: their ω is 0 at every block (piecewise-linear networks), which a log "
            "axis cannot show.") if none else ""


def theta_ratio_markdown(ratios: pd.DataFrame) -> list[str]:
    """One Markdown bullet per row of :func:`ruler_ratios`, its verdict judged by ``CLAIMS["curvature (θ)"]``."""
    lines = []
    for r in ratios.itertuples():
        row = CLAIMS["curvature (θ)"].judge(r.ratio, r.lo, r.hi, r.n_images)
        lines.append(f"- **θ, {r.kind}, {r.ruler}**: Transformers' mean θ / CNNs' = {r.ratio:.2f} "
                     f"[{r.lo:.2f}, {r.hi:.2f}] — {CLAIMS['curvature (θ)'].reads_as(row['verdict'])}.")
    return lines


def _family_mean(series: pd.Series, names) -> dict[str, float]:
    return {f: series[[m for m in names if family(m) == f]].mean() for f in ("CNN", "Transformer")}


def omega_markdown(table: pd.DataFrame, fgsm: dict, random: dict, n_boot: int = 1000, seed: int = 0) -> list[str]:
    """Markdown bullets on the step-free bending ω of an :func:`omega_table`: the family medians (and
    the CNN component swaps of its extra rows), and :func:`omega_gap` of each direction kind (``fgsm``,
    ``random``: model → curvature result of the chapter's models), read against its caveat."""
    names = list(random)
    w = _family_mean(table.omega_median, names)
    flat = w["CNN"] <= 1e-6 * w["Transformer"]
    swapped = table.loc[[v for v in table.index if v not in names and family(v) == "CNN"], "omega_median"]
    lines = [
        f"- **Step-free bending ω (FGSM):** median ω CNNs {w['CNN']:.3g}, Transformers {w['Transformer']:.3g} rad per "
        "unit ε — " + ("the CNNs' paths do not bend smoothly at all; ω is 0 by construction for a piecewise-linear "
                       "network (ReLU with BatchNorm)." if flat else
                       f"the Transformers bend {w['Transformer'] / w['CNN']:.2g}× as fast as the CNNs.")
        + (f" Swapping GELU or LayerNorm into the ResNet gives ω {swapped.min():.3g}–{swapped.max():.3g}: ω follows "
           "the activation and the normalisation, not the family." if len(swapped) else "")]
    for kind, res in (("fgsm", fgsm), ("random", random)):
        og = omega_gap({m: res[m] for m in names}, n_boot=n_boot, seed=seed)
        lines.append(f"- **ω, Transformers − CNNs ({kind}, paired over {og['n']} images):** {og['estimate']:.3g} "
                     f"[{og['lo']:.3g}, {og['hi']:.3g}] rad per unit ε — the paper's ordering **{og['verdict']}** "
                     "by this ruler" + (" — but not as a test: the CNNs' ω is 0 by construction (piecewise-linear "
                                        "networks), so any smooth network would beat them here." if flat else "."))
    return lines


def step_markdown(table: pd.DataFrame, steps: pd.DataFrame, names, parents: dict | None = None) -> list[str]:
    """Markdown bullets on the activation switches (kinks per ε of an :func:`omega_table`), the step
    exponent of a :func:`step_table` per family (``names``: the chapter's models), and what each
    component-swap variant (the table's other rows) changes at the smallest step — against its parent
    trained as long as the variant where ``parents`` (:func:`curvlib.claims.ablations.own_length_parents`)
    gives it, else against the shipped parent."""
    k, expo = _family_mean(table.kinks_per_eps, names), step_exponent(steps)
    e = _family_mean(expo, names)
    lines = [f"- **Switches:** {k['CNN']:.3g} activation sign changes per unit ε on the CNNs' paths (mean of the "
             f"two models), {k['Transformer']:.3g} on the Transformers' — kinks for ReLUs, smooth sign changes for "
             "GELUs.",
             f"- **Step dependence:** the slope of log θ on log Δ is {e['CNN']:.2f} for the CNNs and "
             f"{e['Transformer']:.2f} for the Transformers (1 = smooth bending: θ shrinks with the step; below 1 "
             "= kinks: θ/Δ grows as Δ shrinks, so a finite-step θ says more about the step than about the path).",
             step_order_markdown(steps, names)]
    delta = steps.delta.min()
    small = steps[steps.delta == delta].set_index("model")
    for variant in (v for v in table.index if v not in names):
        sp = models.spec(variant)
        if parents and variant in parents:
            p = parents[variant]
            ps = step_table({p["label"]: p["sweep"]})
            label, a = p["label"], float(ps[ps.delta == delta]["mean"].iloc[0])
            e_parent, w_parent = float(step_exponent(ps).iloc[0]), p["omega_median"]
        else:
            label, a = sp.parent, small.loc[sp.parent, "mean"]
            e_parent, w_parent = expo[sp.parent], table.loc[sp.parent, "omega_median"]
        b = small.loc[variant, "mean"]
        lines.append(f"- **{label} → {variant}** ({sp.swap_label}): mean θ at Δ = {delta:g} "
                     f"{a:.3f}° → {b:.3f}° ({b / a:.2f}×), slope {e_parent:.2f} → {expo[variant]:.2f}, "
                     f"median ω {w_parent:.3g} → {table.loc[variant, 'omega_median']:.3g}.")
    return lines


def step_order(steps: pd.DataFrame, names) -> pd.DataFrame:
    """Per step Δ of a :func:`step_table`: the families' mean θ (degrees; mean of their models among
    ``names``) and which family turns more there (``larger``)."""
    if not set(names) & set(steps.model):
        raise ValueError(f"none of the models {list(names)} is in the step table")
    rows = []
    for d, g in steps[steps.model.isin(list(names))].groupby("delta"):
        fm = _family_mean(g.set_index("model")["mean"], list(g.model))
        rows.append({"delta": d, "CNN": fm["CNN"], "Transformer": fm["Transformer"],
                     "larger": "Transformer" if fm["Transformer"] > fm["CNN"] else "CNN"})
    return pd.DataFrame(rows)


def step_order_markdown(steps: pd.DataFrame, names) -> str:
    """One bullet: at which steps Δ of a :func:`step_table` each family has the larger mean θ."""
    o = step_order(steps, names)
    by = {f: ", ".join(f"{d:g}" for d in o.delta[o.larger == f]) or "none" for f in ("Transformer", "CNN")}
    flips = int((o.larger != o.larger.shift()).iloc[1:].sum())
    return (f"- **Order by step:** the Transformers' mean θ is the larger at Δ = {by['Transformer']}; the CNNs' at "
            f"Δ = {by['CNN']} ({'the order flips ' + str(flips) + '×' if flips else 'the order never flips'} "
            "over the sweep).")


def before_boundary_table(thetas: dict, curv: dict, travels: dict) -> pd.DataFrame:
    """θ and ω along the FGSM paths over the whole grid and only before each path's boundary: per model,
    ``thetas`` (model → one-way :func:`theta_experiment` result, FGSM, θ [1, N, S−2]), ``curv`` (model →
    :func:`curvature_experiment` result on the same grid, ω [1, N, S]) and ``travels`` (model → FGSM travel
    frame of those N images, e.g. ``travel_experiment(…, n=profile.n_theta_images)``; ε* = ∞ where the path
    never crossed). A θ counts as before
    the boundary when all three of its points lie below ε*, an ω when its point does. Columns: mean θ
    (degrees) and mean ω, all and before, and the share of θ steps before the boundary."""
    rows = []
    for m, th in thetas.items():
        t = th["theta"].double().numpy()[0]  # [N, S−2]
        e = th["eps"].double().numpy()
        w = curv[m]["omega"].double().numpy()[0]  # [N, S]
        tr = travels[m]
        if w.shape[0] != t.shape[0] or len(tr) != t.shape[0] or len(curv[m]["eps"]) != w.shape[1] \
                or len(e) != t.shape[1] + 2:
            raise ValueError(f"{m}: θ {tuple(t.shape)}, ω {tuple(w.shape)} and {len(tr)} travel rows must be the "
                             "same images on the same grid")
        star = np.where(tr.status.to_numpy() == "crossed", tr.eps.to_numpy(float), np.inf)[:, None]
        keep_t, keep_w = e[None, 2:] < star, curv[m]["eps"].double().numpy()[None] < star
        rows.append({"model": m, "θ all (°)": float(np.degrees(np.nanmean(t))),
                     "θ before ε* (°)": float(np.degrees(np.nanmean(np.where(keep_t, t, np.nan)))),
                     "ω all": float(np.nanmean(w)), "ω before ε*": float(np.nanmean(np.where(keep_w, w, np.nan))),
                     "share of θ steps before ε*": float(keep_t.mean())})
    return pd.DataFrame(rows).set_index("model")


def before_boundary_markdown(table: pd.DataFrame) -> str:
    """One bullet: the families' mean θ over the whole grid and before ε* (and their ratio each way)."""
    names = list(table.index)
    a, b = _family_mean(table["θ all (°)"], names), _family_mean(table["θ before ε* (°)"], names)
    return (f"- **Before the boundary:** over the whole grid the families' mean θ is {a['Transformer']:.3g}° "
            f"(Transformers) and {a['CNN']:.3g}° (CNNs), ratio {a['Transformer'] / a['CNN']:.2f}; on the steps "
            f"before each path's own ε* it is {b['Transformer']:.3g}° and {b['CNN']:.3g}°, ratio "
            f"{b['Transformer'] / b['CNN']:.2f} — the paper's Figure 5 reads the paths before they cross.")


def curvature_markdown(ratios: pd.DataFrame, table: pd.DataFrame, steps: pd.DataFrame, fgsm: dict, random: dict,
                       n_boot: int = 1000, seed: int = 0, parents: dict | None = None) -> str:
    """The curvature chapter's statements on the paper's claim, one bullet each:
    :func:`theta_ratio_markdown`, :func:`omega_markdown`, :func:`step_markdown` (the chapter's models
    are those of ``random``)."""
    return "\n".join(theta_ratio_markdown(ratios) + omega_markdown(table, fgsm, random, n_boot, seed)
                     + step_markdown(table, steps, list(random), parents))


def theta_tally(ratios: pd.DataFrame, profile) -> str:
    """One line for the chapter's end: how many (direction, ruler) rows of :func:`ruler_ratios` hold,
    are reversed or undecided on ``profile``."""
    counts = ratios.verdict.value_counts()
    return (f"On this profile ({profile.name}, {profile.n_theta_images} images), the paper's ordering by θ "
            f"(Transformers turn more) holds for {counts.get('holds', 0)} of the {len(ratios)} (direction, ruler) "
            f"pairs measured above, is reversed for {counts.get('opposite', 0)} and is not decided for "
            f"{counts.get('inconclusive', 0)}.")
