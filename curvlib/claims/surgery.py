"""What linearising each kind of component removes: shares of ω, ratios of ε*, turning before the boundary;
the surgery chapter's runs (every model × surgery that applies, computed once) and its paragraphs."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from .. import models, runner
from ..config import require
from ..constants import BANDS
from ..experiments.surgery import SURGERIES, path_experiment, travel_experiment
from ..stats import bootstrap, verdict
from .ablations import parent_replicates, parent_weights
from .boundary import band_label, distance, distance_ratio, in_band
from .records import CLAIMS
from .resample import family_map, pooled_median, same_images, spearman, split_families


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
    same_images({"none": o, surgery: s})
    return distance_ratio(distance(s), distance(o)), o["confidence"].to_numpy(float)


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
    families = family_map(names, families)
    combos = sorted({(s, k) for _, s, k in frames if s != "none"}, key=lambda sk: (SURGERIES.index(sk[0]), sk[1]))
    bands = [("all", None, None)] + [(band_label(a, b), a, b) for a, b in zip(edges[:-1], edges[1:])]
    rows = []
    for fam in dict.fromkeys(families[m] for m in names):
        for surgery, kind in combos:
            ms = [m for m in names if families[m] == fam and (m, surgery, kind) in frames]
            if not ms:
                continue
            pairs = [_paired_ratios(frames, m, surgery, kind) for m in ms]
            n = len(pairs[0][0])
            for label, a, b in bands:
                vals = [np.where(np.ones_like(c, bool) if a is None else in_band(c, a, b), r, np.nan)
                        for r, c in pairs]
                est, lo, hi = bootstrap(pooled_median(vals), n, n_boot=n_boot, level=level, seed=seed)
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

    same_images({"num": num, "den": den})
    r = distance_ratio(distance(num), distance(den))
    est, lo, hi = bootstrap(pooled_median([r]), len(r), n_boot=n_boot, level=level, seed=seed)
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
    families = family_map(names, families)
    fams = split_families(names, families)
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
        stat[fam] = pooled_median([pairs[m][0] for m in ms if m in pairs])
        stat[fam + " low"] = pooled_median([np.where(in_band(pairs[m][1], 0.0, LOW_CONFIDENCE), pairs[m][0], np.nan)
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
    paths = {(m, s): path_experiment(m, profile, surgery=s) for m in names if models.family(m) == "Transformer"
             for s in ("none", "attention")}
    frames = {(m, s, "fgsm"): travel_experiment(m, profile, surgery=s, kind="fgsm")
              for m in names for s in ("none", "all")}
    return claim_rows(paths, frames, n_boot=n_boot, seed=seed)


# ---------------------------------------------------------------------------------------------
# The chapter's runs and paragraphs


def _params(profile) -> tuple[dict, dict]:
    return runner.params_for("surgery_path", profile), runner.params_for("surgery_travel", profile)


def setup_line(profile) -> str:
    """One line: the profile, and the images and ε grids of the ω/θ and ε* experiments."""
    path, trav = _params(profile)
    return (f"profile: {profile.name}; ω and θ on {path['n_images']} images (ω at {path['omega_steps'] + 1} points of "
            f"ε ∈ [0, {path['omega_range']:g}], θ on the one-way ruler, {path['n_steps']} steps to "
            f"{path['eps_range']:g}); ε* on {trav['n']} images per model, surgery and direction")


def _share_line(m: str, g: pd.DataFrame) -> str:
    top = g.loc[g.share.idxmax()]
    parts = ", ".join(f"{r.surgery} {r.share:.0%} [{r.lo:.0%}, {r.hi:.0%}]" for r in g.itertuples())
    neg = g[g.hi < 0]
    return (f"- **{m}** (ω = {g.omega_none.iloc[0]:.3g} rad per unit ε): linearising {parts}; the largest share is "
            f"{top.surgery}'s. The single kinds' shares add up to {g.share.sum():.0%}"
            + ("." if len(g) < 2 else ": the kinds' bends are vectors (each kind's part of the path's acceleration "
               "normal to its direction) that partly reinforce and partly cancel, so the shares need not add up to "
               "the whole.")
            + ("" if neg.empty else f" Linearising {', '.join(neg.surgery)} makes the path bend *faster*: that "
               "kind's bend opposes the others'."))


def shares_markdown(shares: pd.DataFrame, names) -> str:
    """Markdown list from :func:`omega_shares`: per model in ``names`` the share of ω each single kind removes
    (with intervals) and their sum; then what is left with everything linearised (ω and the finite-step θ)."""
    lines = [_share_line(m, shares[(shares.model == m) & (shares.surgery != "all")]) for m in names]
    rows = shares[shares.surgery == "all"]
    theta = ", ".join(f"{r.model} {r.theta:.2f}° (original {r.theta_none:.2f}°)" for r in rows.itertuples())
    return "\n".join(lines) + (
        f"\n- With every non-linear module linearised ω is 0 to rounding (share {rows.share.min():.4%} or more). "
        f"The finite-step θ is not quite 0 — {theta} — because the input path itself turns where clipping to "
        "[0, 1] bites: θ of an affine image of a kinked path is not zero.")


def ratios_markdown(ratios: pd.DataFrame, families=("Transformer", "CNN"), kinds=("fgsm", "random"),
                    surgeries=("attention", "norm", "activation", "all"), band: str = "all") -> str:
    """Markdown list from :func:`eps_ratios`: per family, direction kind and surgery present, the median ratio with
    its interval and pair count, and whether the travel is shorter, longer or not measurably different."""
    rows = {(r.family, r.kind, r.surgery): r for r in ratios[ratios.band == band].itertuples()}
    return "\n".join(f"- {fam}s, {s} linearised, {kind}: median ratio {r.median:.3f} [{r.lo:.3f}, {r.hi:.3f}] "
                     f"({r.n_pairs} pairs) — {CLAIMS['surgery (distance)'].reads_as(r.verdict)}."
                     for fam in families for kind in kinds for s in surgeries if (r := rows.get((fam, kind, s))))


def _sign(lo: float, hi: float) -> str:
    return "positive" if lo > 0 else "negative" if hi < 0 else "not distinguishable from 0"


def turning_markdown(tt: pd.DataFrame) -> str:
    """Markdown list from :func:`turning_table`: per model the median turning and the three rank correlations
    with their intervals and signs."""
    return "\n".join(
        f"- **{r.model}**: median turning {r.turning_median:.3g} rad before the boundary; Spearman ρ with ε* "
        f"{r.rho_eps:+.2f} [{r.lo_eps:+.2f}, {r.hi_eps:+.2f}] ({_sign(r.lo_eps, r.hi_eps)}), of the mean rate with ε* "
        f"{r.rho_rate:+.2f} [{r.lo_rate:+.2f}, {r.hi_rate:+.2f}] ({_sign(r.lo_rate, r.hi_rate)}), with the confidence "
        f"{r.rho_conf:+.2f} [{r.lo_conf:+.2f}, {r.hi_conf:+.2f}] ({_sign(r.lo_conf, r.hi_conf)}); {r.n} images."
        for r in tt.itertuples())


def swap_intervention(variant: str, frames: dict, shares: pd.DataFrame, profile) -> dict:
    """A component swap read as an intervention: ``variant``'s mean ω (rad per unit ε) against its parent's and
    the share "all" removes (from ``shares``, :func:`omega_shares`); median paired ε* ratios along FGSM
    (:func:`paired_ratio`) of the variant over its parent (``swap``), of the parent retrained with other seeds over
    the parent (``seeds``: seed → ratio), and of the variant with "all" linearised over the variant (``undo``).
    ``frames``: :func:`~curvlib.experiments.surgery.travel_results` holding the variant's "none" and "all"."""
    parent, pw = parent_weights(variant, profile)
    base = travel_experiment(parent, profile, surgery="none", kind="fgsm", checkpoint=pw)
    swap = paired_ratio(frames[(variant, "none", "fgsm")], base)
    seeds = {s: paired_ratio(travel_experiment(parent, profile, surgery="none", kind="fgsm", checkpoint=w), base)
             for s, w in parent_replicates(parent, profile.seed_dir, pw.stem)}
    undo = paired_ratio(frames[(variant, "all", "fgsm")], frames[(variant, "none", "fgsm")])
    w = shares[(shares.model == variant) & (shares.surgery == "all")].iloc[0]
    omega_parent = float(np.nanmean(path_experiment(parent, profile, surgery="none", checkpoint=pw)["omega"].numpy()))
    return {"variant": variant, "parent": parent, "omega_parent": omega_parent, "omega": float(w.omega_none),
            "share": float(w.share), "swap": swap, "seeds": seeds, "undo": undo}


def swap_markdown(swap: dict) -> str:
    """Markdown list from :func:`swap_intervention`: ω before and after the swap, and the three ε* ratios."""
    v, p, r, u = swap["variant"], swap["parent"], swap["swap"], swap["undo"]
    seeds = "; ".join(f"the parent retrained with seed {s}: {q['median']:.3f} [{q['lo']:.3f}, {q['hi']:.3f}]"
                      for s, q in swap["seeds"].items()) or "no seed replicate of the parent is shipped"
    return (f"- ω: {p} {swap['omega_parent']:.3g} → {v} {swap['omega']:.3g} rad per unit ε (the swap adds a smooth "
            f"bend; linearising the GELUs takes {swap['share']:.0%} of it out again).\n"
            f"- ε* along FGSM, median paired ratio {v} / {p}: {r['median']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}]; "
            f"{seeds}.\n"
            f"- Taking {v}'s bend out again (all linearised): ε* ratio {u['median']:.3f} [{u['lo']:.3f}, "
            f"{u['hi']:.3f}]." + _recipe_markdown(swap["seeds"]))


def _recipe_markdown(seeds: dict) -> str:
    """A bullet on what the parent's seed replicates measure (empty with fewer than two): they follow the seed
    recipe, the shipped parent does not, so a common offset of their ratios from 1 is the recipe's and their
    spread the seeds'."""
    if len(seeds) < 2:
        return ""
    m = [q["median"] for q in seeds.values()]
    lo, hi = min(m), max(m)
    side = " — all below 1" if hi < 1 else " — all above 1" if lo > 1 else ""
    offset = "; their common offset from 1 is the recipe's, " if side else "; "
    return (f"\n- The parent's replicates follow the seed recipe (part of the training set held out, the epoch "
            f"chosen on it), the shipped parent does not: their ratios to it run from {lo:.3f} to {hi:.3f}{side}"
            f"{offset}their spread (a factor {hi / lo:.3f}) is the seeds'.")


def page_cost(elapsed: float, frames: dict, paths: dict, profile) -> str:
    """Markdown: how long the page's measurements took (``elapsed``, seconds) and how many settings they cover
    (distinct ε* runs of :func:`~curvlib.experiments.surgery.travel_results`, ω/θ entries of
    :func:`~curvlib.experiments.surgery.path_results`)."""
    path, trav = _params(profile)
    runs = {id(v) for v in frames.values()}  # a surgery that repeats another shares its frame
    return (f"(This page's measurements took {elapsed:.0f} s to compute or read here: ε* for {len(runs)} model × "
            f"surgery × direction settings on {trav['n']} images, ω and θ for {len(paths)} model × surgery settings "
            f"on {path['n_images']} images.)")


def verdict_sentences(rows, profile=None, fmt: str = ".3g") -> str:
    """The verdict sentences (:meth:`curvlib.claims.records.Claim.sentence`) of ledger rows, the profile named in
    the first; numbers to ``fmt`` (the ledger table's precision)."""
    rows = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    return " ".join(replace(CLAIMS[r["claim"]], fmt=fmt).sentence(r, profile if i == 0 else None)
                    for i, r in enumerate(rows))
