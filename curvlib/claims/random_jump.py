"""The random-jump claim: ε* after a small random step against the direct one, with the two controls;
the chapter's jump-size sweep, its example images and its verdict sentences.

Compute functions return tidy frames or tensors (drawn by :mod:`curvlib.plots.random_jump`); the
``*_markdown`` functions word the chapter's findings, so the chapter words no verdict itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..constants import EPS_R
from ..measure.random_jump import median_ratio
from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import family_map, pooled_median, same_images, split_families

#: The ratios of :func:`jump_ratios`: name → (numerator, denominator) columns of a jump frame. The
#: controls compare second legs with one ingredient of the jump route in common: the start x_r
#: (``vs start point only``) or the direction FGSM(x_r) (``vs direction only``); ``direction only vs
#: direct`` asks whether FGSM(x_r) is simply a better direction from x itself.
JUMP_RATIOS = {"total": ("total_jump", "total_direct"), "eps": ("eps_jump", "eps_direct"),
               "vs start point only": ("eps_jump", "eps_ctrl_point"),
               "vs direction only": ("eps_jump", "eps_ctrl_direction"),
               "direction only vs direct": ("eps_ctrl_direction", "eps_direct")}


def jump_ratios(jumps: dict[str, pd.DataFrame], groups: dict[str, list[str]] | None = None, n_boot: int = 1000,
                level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Median paired ratios of :data:`JUMP_RATIOS` per group of models (default: each model alone),
    pooled over the group's models, each with an interval paired over test images. One tidy row per
    group and ratio: ``group``, ``ratio``, ``median``, ``lo``, ``hi``, ``n_pairs``, ``verdict`` (below 1
    = the numerator's route is the shorter)."""
    n = len(same_images(jumps))
    groups = groups or {m: [m] for m in jumps}
    unknown = sorted({m for ms in groups.values() for m in ms} - set(jumps))
    if unknown:
        raise ValueError(f"groups name models without a jump frame: {', '.join(unknown)}")
    rows = []
    for g, ms in groups.items():
        for name, (a, b) in JUMP_RATIOS.items():
            vals = [(jumps[m][a] / jumps[m][b]).to_numpy(float) for m in ms]
            est, lo, hi = bootstrap(pooled_median(vals), n, n_boot=n_boot, level=level, seed=seed)
            rows.append({"group": g, "ratio": name, "median": est, "lo": lo, "hi": hi,
                         "n_pairs": int(sum(np.isfinite(v).sum() for v in vals)), "verdict": verdict(lo, hi, 1.0, "<")})
    return pd.DataFrame(rows)


def random_jump_claim(jumps: dict[str, pd.DataFrame], families: dict | None = None, **kw) -> dict:
    """The Transformers' median total perturbation after jump + FGSM over that of FGSM alone.

    "holds" when that interval lies below 1 *and* the jump route's ε* is shorter than both controls'
    (travel from x_r along FGSM(x); from x along FGSM(x_r)) — otherwise a generic effect of the random
    step or of a better direction could explain it; "opposite" when the total is significantly larger
    (above 1); "inconclusive" otherwise. The note says how often the jump alone already exceeds the
    direct route's total (the ratio is then above 1 whatever the second leg), and how the CNNs fare."""
    families = family_map(jumps, families)
    fams = split_families(list(jumps), families)
    t = jump_ratios(jumps, fams, **kw).set_index(["group", "ratio"])
    tr = t.loc["Transformer"]
    total, ctrl = tr.loc["total"], [tr.loc["vs start point only"], tr.loc["vs direction only"]]
    cnn_eps, tr_eps = t.loc[("CNN", "eps"), "median"], tr.loc["eps", "median"]
    note = (f"Second leg alone (ε* after the jump / ε* from x): Transformers {tr_eps:.2f}, CNNs {cnn_eps:.2f}"
            + (" — the CNNs, the flat family in the paper, gain more from the jump" if cnn_eps < tr_eps else "")
            + f"; against the controls (Transformers) {ctrl[0]['median']:.2f} (same start) and "
            f"{ctrl[1]['median']:.2f} (same direction).")
    design = ""
    if "psnr_jump_only" in next(iter(jumps.values())).columns:
        both = []
        for m in fams["Transformer"]:
            df = jumps[m]
            jump_rms = 10 ** (-df.psnr_jump_only.to_numpy(float) / 20)  # PSNR = −20 log10(rms) for range 1
            ok = np.isfinite(df.total_direct.to_numpy(float)) & np.isfinite(df.total_jump.to_numpy(float))
            both.append((df.total_direct.to_numpy(float) < jump_rms)[ok])
        share = float(np.concatenate(both).mean()) if sum(len(b) for b in both) else float("nan")
        note += (f" On {share:.0%} of the Transformers' pairs the jump alone (after clipping) is larger than the whole "
                 "direct route, so the total-perturbation test favours the direct route before the second leg is "
                 "counted; the second-leg and control ratios are the ones that speak to the geometry.")
        if share > 0.5:
            design = (f"the jump alone is larger than the whole direct route on {share:.0%} of the Transformers' "
                      "pairs, so the total ratio's side is fixed by the jump size ε_r before the second leg is "
                      "measured.")
    return CLAIMS["random jump"].judge(total["median"], total.lo, total.hi, int(total.n_pairs),
                                       controls=tuple(c.verdict for c in ctrl), note=note, design=design,
                                       eps_ratio=tr.loc["eps", "median"], ctrl_point=ctrl[0]["median"],
                                       ctrl_point_verdict=ctrl[0].verdict, ctrl_direction=ctrl[1]["median"],
                                       ctrl_direction_verdict=ctrl[1].verdict)


def family_jump_ratios(jumps: dict[str, pd.DataFrame], families: dict | None = None, **kw) -> pd.DataFrame:
    """:func:`jump_ratios` with one group per family ("CNN", "Transformer"; both needed), pooling the
    family's models' paired images. ``kw`` goes to :func:`jump_ratios` (``n_boot``, ``level``, ``seed``)."""
    return jump_ratios(jumps, split_families(list(jumps), family_map(jumps, families)), **kw)


def direction_only_ratios(jumps: dict[str, pd.DataFrame]) -> dict[str, float]:
    """Per model, the median over images of the direction-only control's total perturbation (from x along
    FGSM(x_r)) over the direct route's (images where either did not cross are ignored): below 1 = the
    jumped point's FGSM direction reaches the boundary from x itself with less perturbation."""
    return {name: float(np.nanmedian(df.total_ctrl_direction / df.total_direct)) for name, df in jumps.items()}


def route_summary(jumps: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per model: medians over images of the total perturbation ‖x_final − x‖₂/√D (pixel units)
    and of the PSNR (dB) of the direct and the jump route and of the jump alone, and how many images the
    jump alone misclassified (those classified correctly at x)."""
    return pd.DataFrame({name: {
        "median total, direct": df.total_direct.median(), "median total, jump route": df.total_jump.median(),
        "PSNR direct (dB)": df.psnr_direct.median(), "PSNR jump route (dB)": df.psnr_jump.median(),
        "PSNR of the jump alone (dB)": df.psnr_jump_only.median(),
        "jump flipped the label": int((~df.jump_correct & (df.status_direct != "misclassified_at_start")).sum()),
    } for name, df in jumps.items()}).T


def jump_sweep(frames: dict[str, dict[float, pd.DataFrame]], n_boot: int = 300, seed: int = 0) -> pd.DataFrame:
    """Median paired ratios, jump route over direct, per model and jump size: ``frames`` is model →
    {ε_r: :func:`~curvlib.measure.random_jump.jump_travel` frame}. One tidy row per model, ε_r and ratio
    (``ratio of``: "ε*" for the second leg, "total" for the total perturbation) with ``median ratio``,
    its bootstrap interval ``lo``, ``hi`` over the pairs, and the median ``PSNR jump only (dB)``."""
    rows = []
    for name, by_size in frames.items():
        for e, df in by_size.items():
            for what, num, den in (("ε*", "eps_jump", "eps_direct"), ("total", "total_jump", "total_direct")):
                r = median_ratio(df, num, den, n_boot=n_boot, seed=seed)
                rows.append({"model": name, "eps_r": e, "ratio of": what, "median ratio": r["median_ratio"],
                             "lo": r["lo"], "hi": r["hi"],
                             "PSNR jump only (dB)": float(np.median(df.psnr_jump_only))})
    return pd.DataFrame(rows)


def toy_markdown(row) -> str:
    """What the two-pixel toy shows, from the :func:`jump_travel` row of a jump to the right of its kink."""
    return (f"Jumps to the right of the kink end at a total perturbation of {row.total_jump:.3f} per pixel "
            f"instead of {row.total_direct:.3f}. The boundary was near all along: travelling from $x$ itself along "
            f"the jumped point's FGSM direction (the direction-only control) gets there with "
            f"{row.total_ctrl_direction:.3f}. "
            "Jumps to the left land on the same flat side as $x$ and gain nothing. FGSM at $x$ did not point at the "
            "near boundary because the gradient is local: one kink away, the picture is different.")


def direction_only_markdown(ratios: dict[str, float], profile_name: str) -> str:
    """The direction-only control of :func:`direction_only_ratios` on the profile's models, against the toy."""
    v = ratios.values()
    return ("On the toy, the direction-only control matches the jump route: the boundary was near *from x*. On the "
            f"profile's models ({profile_name}), travelling from $x$ along the jumped point's FGSM direction needs a "
            "median " + ", ".join(f"{m} {r:.2f}×" for m, r in ratios.items())
            + " the direct route's total perturbation — "
            + ("shorter for every model, as on the toy." if max(v) < 1 else
               "longer for every model: here FGSM at x already points at the nearest boundary it can see." if
               min(v) > 1 else "shorter for some models and longer for others.")
            + " The sections below measure this with intervals.")


def claim_markdown(by_family: pd.DataFrame, claim: dict, eps_r: float = EPS_R) -> str:
    """Per family, the median ratios of :func:`family_jump_ratios` (``by_family``) with their intervals,
    and the verdict of :func:`random_jump_claim` (``claim``, a ledger row) with its rule."""
    t = by_family.set_index(["group", "ratio"])

    def ci(f, what):
        r = t.loc[(f, what)]
        return f"{r['median']:.3f} [{r.lo:.3f}, {r.hi:.3f}]"

    return (f"At ε_r = {eps_r}, pooled over each family's paired images (median ratio, jump route / direct, "
            "95 % CI):\n\n"
            + "\n".join(f"- **{f}s**: total perturbation {ci(f, 'total')}; ε* of the second leg {ci(f, 'eps')}; "
                        f"against the start-point-only control {ci(f, 'vs start point only')}, against the "
                        f"direction-only control {ci(f, 'vs direction only')}." for f in t.index.unique("group"))
            + f"\n\nVerdict on the paper's claim for the Transformers: **{claim['verdict']}** (rule: {claim['rule']}).")


def summary_markdown(claim: dict, profile_name: str) -> str:
    """The chapter's closing sentence: the verdict of :func:`random_jump_claim` on the profile."""
    return (f"On this profile ({profile_name}), the verdict on the paper's claim for the Transformers is "
            f"**{claim['verdict']}**.")


def relative_sweep(frames: dict[str, dict[float, pd.DataFrame]], families: dict | None = None, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """The jump sized to each image: ``frames`` is model → {fraction: :func:`~curvlib.experiments.random_jump.
    relative_jump_experiment` frame} (ε_r = fraction × the image's own direct ε*). Per family and fraction, the
    :func:`jump_ratios` ``total`` (jump route over direct, all perturbation counted) and ``eps`` (second leg
    only), pooled over the family's models; a model's frame holds only the images it crossed, so images are
    aligned by ``index`` (absent = left out) and resampled together. Tidy: ``family``, ``fraction``,
    ``ratio``, ``median``, ``lo``, ``hi``, ``n_pairs``, ``verdict`` (below 1: the jump route is shorter)."""
    if not frames or not all(frames.values()):
        raise ValueError("relative_sweep needs, for every model, its frames by jump fraction")
    fams = split_families(list(frames), family_map(list(frames), families))
    out = []
    for f in sorted({f for by in frames.values() for f in by}):
        per = {m: by[f] for m, by in frames.items()}
        idx = sorted(set().union(*(set(df["index"].tolist()) for df in per.values())))
        aligned = {m: df.set_index("index").reindex(idx).reset_index() for m, df in per.items()}
        t = jump_ratios(aligned, fams, n_boot=n_boot, seed=seed)
        out.append(t[t.ratio.isin(["total", "eps"])].assign(fraction=f))
    return pd.concat(out, ignore_index=True).rename(columns={"group": "family"})


def relative_markdown(table: pd.DataFrame) -> str:
    """One Markdown bullet per family of a :func:`relative_sweep`: the total ratio at every fraction."""
    lines = []
    for fam, g in table[table.ratio == "total"].groupby("family", sort=False):
        parts = "; ".join(f"{r.fraction:g}·ε*: {r.median:.2f} [{r.lo:.2f}, {r.hi:.2f}] ({r.verdict})"
                          for r in g.sort_values("fraction").itertuples())
        lines.append(f"- **{fam}s**, total perturbation, jump route / direct, by jump size: {parts}.")
    return "\n".join(lines)


def _bend_ratio(r: dict, what: str) -> np.ndarray:
    """Per image, the mean bend along the path from x_r over that from x (``what``: "omega" or "theta");
    NaN where the path from x does not bend at all."""
    a = np.nanmean(r[f"{what}_r"].double().numpy(), axis=1)
    b = np.nanmean(r[f"{what}_x"].double().numpy(), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


def straighter_table(paths: dict[str, dict]) -> pd.DataFrame:
    """Per model (``paths``: model → :func:`~curvlib.experiments.random_jump.jump_path_experiment` result):
    the median over images of the mean ω and θ (degrees) along FGSM from x and from x_r."""
    def med(r, key, degrees=False):
        v = float(np.median(np.nanmean(r[key].double().numpy(), axis=1)))
        return float(np.degrees(v)) if degrees else v

    return pd.DataFrame({m: {"ω from x": med(r, "omega_x"), "ω from x_r": med(r, "omega_r"),
                             "θ from x (°)": med(r, "theta_x", True), "θ from x_r (°)": med(r, "theta_r", True)}
                         for m, r in paths.items()}).T


def straighter_claim(paths: dict[str, dict], families: dict | None = None, n_boot: int = 1000, seed: int = 0) -> dict:
    """The paper's third random-jump claim — the path from the jumped point is straighter — as the
    Transformers' pooled median of the per-image ratio ω(x_r) / ω(x) (step-free bending along FGSM,
    mean over the ω grid), paired over images; the note adds θ (the paper's finite-step ruler) for both
    families. A family whose path from x never bends (ω = 0: piecewise-linear CNNs) has no ratio."""
    idx = {m: r["index"].numpy() for m, r in paths.items()}
    first = next(iter(idx.values()))
    if any(len(i) != len(first) or not np.array_equal(i, first) for i in idx.values()):
        raise ValueError("every model's paths must be on the same images, in the same order")
    fams = split_families(list(paths), family_map(list(paths), families))
    kw = {"n_boot": n_boot, "seed": seed}
    om = [_bend_ratio(paths[m], "omega") for m in fams["Transformer"]]
    est, lo, hi = bootstrap(pooled_median(om), len(first), **kw)
    sens = []
    for fam in ("Transformer", "CNN"):
        th = [_bend_ratio(paths[m], "theta") for m in fams[fam]]
        e, a, b = bootstrap(pooled_median(th), len(first), **kw)
        sens.append(f"{fam}s {e:.2f} [{a:.2f}, {b:.2f}] {verdict(a, b, 1.0, '<')}")
    note = "θ (one-way ruler) from x_r over θ from x, median per family: " + "; ".join(sens) + "."
    return CLAIMS["random jump (straighter)"].judge(est, lo, hi, int(sum(np.isfinite(v).sum() for v in om)),
                                                    note=note)
