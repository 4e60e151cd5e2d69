"""The paper's claims, judged on our measurements: one verdict function per claim, and the ledger.

Every function here takes results the chapters compute (cached experiment outputs) and returns
data: a tidy row with the claim, the paper's statement, what we estimate, its 95 % bootstrap
interval (:func:`curvlib.stats.bootstrap`, resampling test images, *paired* wherever the models
were measured on the same images), the verdict (holds / opposite / inconclusive, or "no data")
and the rule that produced it. :func:`ledger` gathers one row per claim for a profile.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .stats import bootstrap, verdict

FAMILIES = ("CNN", "Transformer")


def _families(names, families: dict) -> dict[str, list[str]]:
    fams = {f: [m for m in names if families[m] == f] for f in FAMILIES}
    if not fams["CNN"] or not fams["Transformer"]:
        got = ", ".join(f"{m} ({families.get(m, '?')})" for m in names) or "no models"
        raise ValueError(f"a family comparison needs models of both families (CNN and Transformer), got {got}")
    return fams


def family_ratio(thetas: dict, families: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean θ of the Transformers over mean θ of the CNNs, with a bootstrap interval over images
    (paired: every model's θ [M, N, S] is on the same N images, resampled together).

    ``thetas``: model → θ tensor [M, N, S] (radians; NaN ignored); ``families``: model → "CNN" or
    "Transformer" (both needed). ``verdict``: "holds" (the paper's ordering: interval above 1),
    "opposite" (interval below 1) or "inconclusive"."""
    fams = _families(list(thetas), families)
    n_images = {torch.as_tensor(t).shape[1] for t in thetas.values()}
    if len(n_images) != 1:
        raise ValueError(f"every θ must be on the same images, got image counts {sorted(n_images)}")
    n = next(iter(n_images))
    # per model and image: (sum of finite θ, count) over directions and steps
    sums, counts = {}, {}
    for m, t in thetas.items():
        a = np.degrees(torch.as_tensor(t).double().numpy()).swapaxes(0, 1).reshape(n, -1)
        ok = np.isfinite(a)
        sums[m], counts[m] = np.where(ok, a, 0).sum(1), ok.sum(1)

    def ratio(idx):
        fam_mean = {f: np.mean([sums[m][idx].sum(-1) / np.maximum(counts[m][idx].sum(-1), 1) for m in ms], axis=0)
                    for f, ms in fams.items()}
        return fam_mean["Transformer"] / fam_mean["CNN"]

    est, lo, hi = bootstrap(ratio, n, n_boot=n_boot, level=level, seed=seed)
    return {"ratio": est, "lo": lo, "hi": hi, "verdict": verdict(lo, hi, 1.0, ">"), "n_images": n}


# ---------------------------------------------------------------------------------------------
# helpers: paired per-image values of several models

def _same_images(frames: dict[str, pd.DataFrame]) -> np.ndarray:
    """The common ``index`` column of per-image frames (error if the models saw other images)."""
    if not frames:
        raise ValueError("no results to judge: the frames are empty")
    ref = None
    for name, df in frames.items():
        idx = df["index"].to_numpy()
        if ref is None:
            ref = idx
        elif len(idx) != len(ref) or not np.array_equal(idx, ref):
            raise ValueError(f"{name!r} was measured on other images than {next(iter(frames))!r}: a paired "
                             "comparison needs the same test images, in the same order")
    return ref


def _pooled_median(values: list[np.ndarray]):
    """stat(idx) → median of the resampled images' values pooled over several models (NaN = left out,
    +inf kept: a censored distance counts as larger than any measured one)."""
    stacked = np.stack(values, axis=1)  # [n, models]

    def stat(idx):
        v = stacked[idx].reshape(len(idx), -1)
        out = np.full(len(idx), np.nan)
        have = (~np.isnan(v)).any(1)
        out[have] = np.nanmedian(v[have], axis=1)
        return out

    return stat


def _ranks(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank) of the values v[idx] within each row of idx [B, n]."""
    groups, g = np.unique(v, return_inverse=True)  # dense rank of every unit (inf sorts last)
    b, n = idx.shape
    gi = g[idx]  # [B, n] group of each drawn unit
    counts = np.bincount((gi + len(groups) * np.arange(b)[:, None]).ravel(),
                         minlength=b * len(groups)).reshape(b, len(groups))
    below = np.cumsum(counts, axis=1) - counts
    avg = below + (counts + 1) / 2
    return np.take_along_axis(avg, gi, axis=1)


def spearman(x: np.ndarray, y: np.ndarray):
    """stat(idx) → Spearman rank correlation of x and y over the resampled units (ties: average ranks;
    ±inf allowed, e.g. a censored distance; NaN is not: leave such units out first)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D and of equal length, got shapes {x.shape} and {y.shape}")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("x or y contains NaN: leave those units out before ranking")

    def stat(idx):
        rx, ry = _ranks(x, idx), _ranks(y, idx)
        rx, ry = rx - rx.mean(1, keepdims=True), ry - ry.mean(1, keepdims=True)
        den = np.sqrt((rx ** 2).sum(1) * (ry ** 2).sum(1))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (rx * ry).sum(1) / den, np.nan)

    return stat


# ---------------------------------------------------------------------------------------------
# the claims

#: One entry per claim of the paper, in ledger order: (the paper's statement, chapter with the evidence).
CLAIMS = {
    "calibration (CNNs)": ("CNNs are overconfident: sECE < 0 (Figure 2)", "calibration"),
    "calibration (Transformers)": ("Transformers are not overconfident: sECE ≥ 0 (Figure 2)", "calibration"),
    "calibration (gap)": ("CNNs are more overconfident than Transformers (Figure 2)", "calibration"),
    "boundary (low confidence)": ("At low confidence, Transformers' inputs lie farther from the boundary along "
                                  "FGSM than CNNs' (Figure 3)", "boundary"),
    "boundary (confidence ↔ distance)": ("For CNNs confidence predicts the distance to the boundary; for "
                                         "Transformers much less (Figure 3)", "boundary"),
    "curvature (θ)": ("Transformers' representation paths turn, CNNs' stay almost straight (Figure 5)", "curvature"),
    "curvature (ω)": ("Transformers' paths bend, CNNs' do not (Figure 5), measured as a step-free bending rate along "
                      "FGSM", "curvature"),
    "attention": ("Attention is not additive (eq. 8–13), and that is what bends the Transformers' paths — tested "
                  "as: attention bends an FGSM segment more than the CNNs' ReLUs do", "attention"),
    "surgery (what bends)": ("Attention is what bends the Transformers' paths (eq. 8–13) — tested causally: "
                             "linearising attention at the image removes most of their bending ω", "surgery"),
    "surgery (distance)": ("The curve causes the long travel: taking the Transformers' bend out (every non-linear "
                           "component linearised at the image) brings their boundary closer along FGSM", "surgery"),
    "surgery (low confidence)": ("… most at low confidence, where the paper finds the Transformers' travel longest "
                                 "(Figure 3)", "surgery"),
    "surgery (control)": ("The same surgery matters less for the CNNs, whose paths barely bend", "surgery"),
    "random jump": ("After a small random jump, FGSM reaches the boundary with far less total perturbation: the "
                    "boundary was near all along (Figure 10)", "random_jump"),
}
ROW = ("claim", "paper", "measure", "estimate", "lo", "hi", "verdict", "rule", "chapter", "n", "note")


def _row(claim: str, measure: str, est: float, lo: float, hi: float, v: str, rule: str, n: int, note: str = "",
         **extra) -> dict:
    paper, chapter = CLAIMS[claim]
    return {"claim": claim, "paper": paper, "measure": measure, "estimate": est, "lo": lo, "hi": hi, "verdict": v,
            "rule": rule, "chapter": chapter, "n": n, "note": note, **extra}


def _family_of(names, families):
    if families is None:
        from . import models

        families = {m: models.family(m) for m in names}
    return families


def _sece_terms(preds: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Per model and image: correct − confidence (its mean is the model's sECE, for any binning)."""
    _same_images(preds)
    return {m: df["correct"].to_numpy(float) - df["confidence"].to_numpy(float) for m, df in preds.items()}


#: How each family's own sECE is read: (the side the paper predicts, the rule in words).
SECE_RULE = {"CNN": ("<", "holds if the interval lies below 0 (overconfident)"),
             "Transformer": (">", "holds if the interval lies above 0 (underconfident), opposite if below 0 "
                                  "(overconfident); an interval containing 0 cannot tell calibrated from slightly "
                                  "over- or underconfident: inconclusive")}


def calibration_family(preds: dict[str, pd.DataFrame], family: str, families: dict | None = None,
                       n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean sECE of one family's models, with an interval over test images (paired across its models)."""
    if family not in SECE_RULE:
        raise ValueError(f"family must be one of {', '.join(SECE_RULE)}, got {family!r}")
    families = _family_of(preds, families)
    fams = _families(list(preds), families)
    u = _sece_terms(preds)
    f = np.mean([u[m] for m in fams[family]], axis=0)
    est, lo, hi = bootstrap(lambda i: f[i].mean(1), len(f), n_boot=n_boot, level=level, seed=seed)
    side, rule = SECE_RULE[family]
    return _row(f"calibration ({family}s)", f"mean sECE of the {family}s ({', '.join(fams[family])})", est, lo, hi,
                verdict(lo, hi, 0.0, side), rule, n=len(f))


def calibration_gap(preds: dict[str, pd.DataFrame], families: dict | None = None, n_boot: int = 1000,
                    level: float = 0.95, seed: int = 0) -> dict:
    """sECE(CNNs) − sECE(Transformers), family means, with an interval paired over test images.

    For any binning sECE = accuracy − mean confidence = mean over images of (correct − confidence),
    so the gap is the mean of one number per image and is resampled as such. ``preds``: model →
    predictions frame (``index``, ``confidence``, ``correct``) on the same images. The paper expects
    the gap below 0 (CNNs the more overconfident)."""
    families = _family_of(preds, families)
    fams = _families(list(preds), families)
    u = _sece_terms(preds)
    fam_u = {f: np.mean([u[m] for m in ms], axis=0) for f, ms in fams.items()}
    d = fam_u["CNN"] - fam_u["Transformer"]
    est, lo, hi = bootstrap(lambda i: d[i].mean(1), len(d), n_boot=n_boot, level=level, seed=seed)
    return _row("calibration (gap)", "sECE(CNNs) − sECE(Transformers), family means", est, lo, hi,
                verdict(lo, hi, 0.0, "<"),
                "holds if the interval lies below 0 (CNNs more overconfident); paired over test images", n=len(d),
                cnn=float(fam_u["CNN"].mean()), transformer=float(fam_u["Transformer"].mean()))


def calibration_by_model(report: pd.DataFrame, families: dict | None = None) -> pd.DataFrame:
    """Per model of a :func:`curvlib.calibration.calibration_report`: the paper's claim for its family,
    sECE with its interval, and the verdict by the family's rule (:data:`SECE_RULE`)."""
    families = _family_of(report.index, families)
    rows = []
    for name, r in report.iterrows():
        fam = families[name]
        if fam not in SECE_RULE:
            raise ValueError(f"{name!r}: no paper claim for family {fam!r}")
        v = verdict(r.sece_lo, r.sece_hi, 0.0, SECE_RULE[fam][0])
        rows.append({"model": name, "family": fam, "paper": CLAIMS[f"calibration ({fam}s)"][0], "sece": r.sece,
                     "lo": r.sece_lo, "hi": r.sece_hi, "verdict": v})
    return pd.DataFrame(rows).set_index("model")


#: Confidence bands (lo, hi] of the boundary comparisons.
BANDS = (0.0, 0.5, 0.7, 0.9, 0.99, 1.0)


def distance(df: pd.DataFrame) -> np.ndarray:
    """ε* per image of a travel frame: the crossing where crossed, +inf where it never crossed within
    eps_max (censored: farther than any measured one), NaN where misclassified at the start."""
    st = df["status"].astype(str).to_numpy()
    return np.where(st == "crossed", df["eps"].to_numpy(float), np.where(st == "never", np.inf, np.nan))


def _in_band(conf: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return ((conf > lo) | ((lo == 0) & (conf >= 0))) & (conf <= hi)


def _band_label(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]" if lo == 0 else f"({lo:g}, {hi:g}]"


def _band_medians(frames, fams, lo_e, hi_e):
    """(stats, counts, stacked): per family, the pooled-median statistic of one band, its image count
    and the band's values [n, models] (NaN outside the band or misclassified at the start)."""
    masked = {}
    for m, df in frames.items():
        masked[m] = np.where(_in_band(df["confidence"].to_numpy(float), lo_e, hi_e), distance(df), np.nan)
    stats = {f: _pooled_median([masked[m] for m in ms]) for f, ms in fams.items()}
    counts = {f: int(sum((~np.isnan(masked[m])).sum() for m in ms)) for f, ms in fams.items()}
    stacked = {f: np.stack([masked[m] for m in ms], 1) for f, ms in fams.items()}
    return stats, counts, stacked


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where defined; inf / inf (both beyond eps_max) is 1 (no difference seen), x / 0 NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = a / b
    return np.where(np.isinf(a) & np.isinf(b), 1.0, np.where(b == 0, np.nan, r))


def boundary_bands(frames: dict[str, pd.DataFrame], families: dict | None = None, edges=BANDS,
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per confidence band: how many images of each family fall in it, the family's median ε*
    (pooled over its models; never-crossed images count as +∞), and the ratio Transformers / CNNs
    with an interval paired over test images. ``frames``: model → travel frame on the same images."""
    families = _family_of(frames, families)
    fams = _families(list(frames), families)
    n = len(_same_images(frames))
    rows = []
    for lo_e, hi_e in zip(edges[:-1], edges[1:]):
        stats, counts, _ = _band_medians(frames, fams, lo_e, hi_e)
        est, lo, hi = bootstrap(lambda i: _ratio(stats["Transformer"](i), stats["CNN"](i)), n, n_boot=n_boot,
                                level=level, seed=seed)
        full = np.arange(n)[None]
        rows.append({"band": _band_label(lo_e, hi_e), "n CNN": counts["CNN"], "n Transformer": counts["Transformer"],
                     "median CNN": float(stats["CNN"](full)[0]),
                     "median Transformer": float(stats["Transformer"](full)[0]),
                     "ratio": est, "lo": lo, "hi": hi, "verdict": verdict(lo, hi, 1.0, ">")})
    return pd.DataFrame(rows)


def boundary_claim(frames: dict[str, pd.DataFrame], families: dict | None = None, threshold: float = 0.9,
                   edges=BANDS, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Transformers' over CNNs' median ε* at confidence ≤ ``threshold``, compared *within* bands.

    Each band of ``edges`` up to ``threshold`` gives log(median_T / median_C); the bands are combined
    in a weighted geometric mean with weights n_C·n_T / (n_C + n_T) (the band's image counts per
    family: a band where one family has few images weighs little, as in a Mantel–Haenszel estimate),
    so a family with more low-confidence images does not pull the comparison. Interval paired over
    test images; "holds" above 1."""
    families = _family_of(frames, families)
    fams = _families(list(frames), families)
    n = len(_same_images(frames))
    bands = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b <= threshold + 1e-12]
    if not bands:
        raise ValueError(f"no confidence band ends at or below threshold {threshold}: edges {edges}")
    parts = [_band_medians(frames, fams, a, b) for a, b in bands]

    def stat(idx):
        num, den = np.zeros(len(idx)), np.zeros(len(idx))
        for stats, _, stacked in parts:
            with np.errstate(divide="ignore", invalid="ignore"):
                lr = np.log(_ratio(stats["Transformer"](idx), stats["CNN"](idx)))
            k = {f: (~np.isnan(v[idx])).reshape(len(idx), -1).sum(1).astype(float) for f, v in stacked.items()}
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.nan_to_num(k["CNN"] * k["Transformer"] / (k["CNN"] + k["Transformer"]))
            ok = ~np.isnan(lr) & (w > 0)
            num += np.where(ok, w * np.where(ok, lr, 0), 0)
            den += np.where(ok, w, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, np.exp(num / den), np.nan)

    est, lo, hi = bootstrap(stat, n, n_boot=n_boot, level=level, seed=seed)
    labels = ", ".join(_band_label(a, b) for a, b in bands)
    counts = {f: sum(p[1][f] for p in parts) for f in FAMILIES}
    rest = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > threshold + 1e-12]
    return _row("boundary (low confidence)", f"median ε* Transformers / CNNs at confidence ≤ {threshold:g}, "
                "within bands", est, lo, hi, verdict(lo, hi, 1.0, ">"),
                f"holds if the interval lies above 1; ratios of medians within the bands {labels}, combined with "
                "weights n_C·n_T/(n_C+n_T); never crossed = +∞; paired over test images",
                n=counts["CNN"] + counts["Transformer"], n_cnn=counts["CNN"], n_transformer=counts["Transformer"],
                note=(f"{counts['CNN']} CNN and {counts['Transformer']} Transformer images at confidence ≤ "
                      f"{threshold:g}; the bands above it ({', '.join(_band_label(a, b) for a, b in rest)}) are "
                      "in the chapter's table, not in this row."))


def rank_correlation(frames: dict[str, pd.DataFrame], families: dict | None = None, n_boot: int = 1000,
                     level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per model: Spearman ρ between confidence and ε* (never crossed = +∞; images misclassified at
    the start left out) with its bootstrap interval, and a final row ``CNN − Transformer``: the
    difference of the families' mean ρ on the images every model classified correctly (paired).
    The paper expects ρ > 0 for the CNNs (confidence predicts distance) and a weaker one for the
    Transformers, i.e. a difference above 0. (ρ also depends on each family's spread of confidences:
    a family whose confidences crowd near 1 has a narrower range to rank.)"""
    families = _family_of(frames, families)
    fams = _families(list(frames), families)
    _same_images(frames)
    dist = {m: distance(df) for m, df in frames.items()}
    conf = {m: df["confidence"].to_numpy(float) for m, df in frames.items()}
    rows = []
    for m in frames:
        ok = ~np.isnan(dist[m])
        est, lo, hi = bootstrap(spearman(conf[m][ok], dist[m][ok]), int(ok.sum()), n_boot=n_boot, level=level,
                                seed=seed)
        rows.append({"model": m, "family": families[m], "rho": est, "lo": lo, "hi": hi, "n": int(ok.sum()),
                     "verdict": verdict(lo, hi, 0.0, ">") if families[m] == "CNN" else "—"})
    common = np.all([~np.isnan(dist[m]) for m in frames], axis=0)
    rho = {m: spearman(conf[m][common], dist[m][common]) for m in frames}

    def gap(idx):
        return (np.mean([rho[m](idx) for m in fams["CNN"]], axis=0)
                - np.mean([rho[m](idx) for m in fams["Transformer"]], axis=0))

    est, lo, hi = bootstrap(gap, int(common.sum()), n_boot=n_boot, level=level, seed=seed)
    rows.append({"model": "CNN − Transformer", "family": "—", "rho": est, "lo": lo, "hi": hi,
                 "n": int(common.sum()), "verdict": verdict(lo, hi, 0.0, ">")})
    return pd.DataFrame(rows).set_index("model")


def rank_correlation_claim(frames: dict[str, pd.DataFrame], families: dict | None = None, **kw) -> dict:
    """The ledger row of :func:`rank_correlation`'s family difference."""
    t = rank_correlation(frames, families, **kw)
    g = t.loc["CNN − Transformer"]
    per = ", ".join(f"{m} {r.rho:+.2f}" for m, r in t.drop(index="CNN − Transformer").iterrows())
    return _row("boundary (confidence ↔ distance)", "Spearman ρ(confidence, ε*), CNNs' mean − Transformers' mean",
                g.rho, g.lo, g.hi, g.verdict,
                "holds if the interval lies above 0; on the images every model classifies correctly; paired",
                n=int(g.n), note=f"ρ per model, each on the images that model classifies correctly: {per}; the "
                "estimate compares the families on the images all four classify correctly, so it need not equal the "
                "difference of these.")


def curvature_theta_claim(thetas: dict, families: dict | None = None, ruler: str = "", **kw) -> dict:
    """The ledger row of :func:`family_ratio` (θ in radians [M, N, S] per model)."""
    r = family_ratio(thetas, _family_of(thetas, families), **kw)
    return _row("curvature (θ)", f"mean θ Transformers / CNNs{', ' + ruler if ruler else ''}", r["ratio"], r["lo"],
                r["hi"], r["verdict"], "holds if the interval lies above 1; paired over images", n=r["n_images"],
                note="θ at a finite step counts activation kinks as turns; the chapter compares rulers and steps.")


def _mean_omega(r) -> np.ndarray:
    """Mean ω per image [N] of a curvature result (``omega`` [M, N, S]; NaN where undefined)."""
    w = torch.as_tensor(r["omega"]).double().numpy()
    a = w.swapaxes(0, 1).reshape(w.shape[1], -1)
    return np.array([np.nanmean(row) if np.isfinite(row).any() else np.nan for row in a])


def omega_gap(results: dict, families: dict | None = None, variants: dict | None = None, n_boot: int = 1000,
              level: float = 0.95, seed: int = 0) -> dict:
    """Mean step-free bending rate ω (rad per unit ε) of the Transformers minus the CNNs', with an
    interval paired over images. ``results``: model → :func:`curvlib.trajectory.curvature_experiment`
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
        from . import models

        vw = {m: float(np.nanmean(_mean_omega(r))) for m, r in variants.items()}
        note += " Component-swap variants: " + ", ".join(
            f"{m} ({models.spec(m).swap_label}) {w:.3g}" for m, w in vw.items()) + "."
        tr_low = min(float(np.nanmean(per[m])) for m in fams["Transformer"])
        bent = [m for m, w in vw.items() if _family_of([m], None)[m] == "CNN" and w >= 0.5 * tr_low]
        if bent:
            note += (f" {', '.join(bent)}: a CNN with one component swapped bends at least half as fast as the slower "
                     "Transformer — ω follows the components, not the family.")
    return _row("curvature (ω)", "mean ω Transformers − CNNs (rad per unit ε, FGSM)", est, lo, hi,
                verdict(lo, hi, 0.0, ">"), "holds if the interval lies above 0; paired over images", n=len(d),
                note=note, cnn=float(np.nanmean(fam["CNN"])), transformer=float(np.nanmean(fam["Transformer"])))


def flatness_gap(flat: pd.DataFrame, families: dict | None = None, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Mean mesh flatness ρ (0 = flat) of the Transformers minus the CNNs', paired over images.

    ``flat``: :func:`curvlib.widgets.mesh_flatness` rows (``model``, ``image``, ``rho``) of one plane,
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


def attention_claim(long: pd.DataFrame, families: dict | None = None, cnn_component: str = "relu",
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Bend of the Transformers' attention modules over the bend of the CNNs' activations.

    ``long``: per-sample rows of :func:`curvlib.attention.attention_experiment` (``per_sample=True``:
    ``model``, ``component``, ``layer``, ``sample`` = test image, ``bend``; Swin: one row per window).
    The statistic follows the chapter: per layer the median bend over the images (and windows), per
    model the median over its layers of the component, per family the median over its models, then
    Transformers' attention / CNNs' ``cnn_component``. The interval resamples test images, the same
    resample for every model (they saw the same images). The paper's explanation needs attention to
    bend more: "holds" above 1. Bends are relative to each layer's own input change, which differs
    between architectures for the same input step."""
    need = {"model", "component", "layer", "sample", "bend"} - set(long.columns)
    if need:
        raise ValueError(f"not a per-sample attention frame: no column(s) {', '.join(sorted(need))}")
    names = list(dict.fromkeys(long.model))
    families = _family_of(names, families)
    fams = _families(names, families)
    want = {"Transformer": "attention", "CNN": cnn_component}
    images = np.sort(long["sample"].unique())
    pos = {s: i for i, s in enumerate(images)}
    layers = {}  # model → list of [n_images, rows per image] bend matrices, one per layer
    for m in names:
        sel = long[(long.model == m) & (long.component == want[families[m]])]
        if sel.empty:
            raise ValueError(f"{m!r} has no {want[families[m]]!r} layer to compare")
        mats = []
        for _, g in sel.groupby("layer", sort=False):
            k = g.groupby("sample").size()
            if k.nunique() != 1 or len(k) != len(images):
                raise ValueError(f"{m!r}: every image needs the same number of rows per layer")
            order = np.argsort([pos[s] for s in g["sample"].to_numpy()], kind="stable")
            mats.append(g.bend.to_numpy(float)[order].reshape(len(images), -1))
        layers[m] = mats

    def stat(idx):
        med = {m: np.median([np.median(a[idx].reshape(len(idx), -1), axis=1) for a in mats], axis=0)
               for m, mats in layers.items()}
        fam = {f: np.median([med[m] for m in ms], axis=0) for f, ms in fams.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(fam["CNN"] > 0, fam["Transformer"] / fam["CNN"], np.nan)

    est, lo, hi = bootstrap(stat, len(images), n_boot=n_boot, level=level, seed=seed)
    return _row("attention", f"bend of attention (Transformers) / bend of {cnn_component} layers (CNNs), FGSM segment",
                est, lo, hi, verdict(lo, hi, 1.0, ">"),
                "holds if the interval lies above 1; paired over test images", n=len(images),
                note="Attention's non-additivity itself is exact algebra (the chapter checks eq. 8–13 to rounding); "
                     "what is tested here is whether it bends a path more than the CNNs' activations do.")


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
    n = len(_same_images(jumps))
    groups = groups or {m: [m] for m in jumps}
    unknown = sorted({m for ms in groups.values() for m in ms} - set(jumps))
    if unknown:
        raise ValueError(f"groups name models without a jump frame: {', '.join(unknown)}")
    rows = []
    for g, ms in groups.items():
        for name, (a, b) in JUMP_RATIOS.items():
            vals = [(jumps[m][a] / jumps[m][b]).to_numpy(float) for m in ms]
            est, lo, hi = bootstrap(_pooled_median(vals), n, n_boot=n_boot, level=level, seed=seed)
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
    families = _family_of(jumps, families)
    fams = _families(list(jumps), families)
    t = jump_ratios(jumps, fams, **kw).set_index(["group", "ratio"])
    tr = t.loc["Transformer"]
    total, ctrl = tr.loc["total"], [tr.loc["vs start point only"], tr.loc["vs direction only"]]
    if total.verdict == "holds" and all(c.verdict == "holds" for c in ctrl):
        v = "holds"
    elif total.verdict in ("opposite", "no data"):
        v = total.verdict
    else:
        v = "inconclusive"
    cnn_eps, tr_eps = t.loc[("CNN", "eps"), "median"], tr.loc["eps", "median"]
    note = (f"Second leg alone (ε* after the jump / ε* from x): Transformers {tr_eps:.2f}, CNNs {cnn_eps:.2f}"
            + (" — the CNNs, the flat family in the paper, gain more from the jump" if cnn_eps < tr_eps else "")
            + f"; against the controls (Transformers) {ctrl[0]['median']:.2f} (same start) and "
            f"{ctrl[1]['median']:.2f} (same direction).")
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
    return _row("random jump", "median total perturbation, jump + FGSM / FGSM alone (Transformers)", total["median"],
                total.lo, total.hi, v,
                "holds if the interval lies below 1 and the jump route's second leg also beats both controls (x_r "
                "along FGSM(x), x along FGSM(x_r)); opposite if above 1; paired over test images",
                n=int(total.n_pairs), note=note, eps_ratio=tr.loc["eps", "median"], ctrl_point=ctrl[0]["median"],
                ctrl_point_verdict=ctrl[0].verdict, ctrl_direction=ctrl[1]["median"],
                ctrl_direction_verdict=ctrl[1].verdict)


# ---------------------------------------------------------------------------------------------
# the ledger

#: Jump size of the random-jump claim (the paper's ε_r).
EPS_R = 0.05


def ledger(profile, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per claim (:data:`CLAIMS`) for the profile's models, from the chapters' cached
    experiments (computed on a miss): calibration on the profile's test images, FGSM travel,
    θ along random directions (one-way travel, the curvature chapter's first ruler), ω along FGSM
    (with the profile's component-swap variants, if any, in the note), per-component bends along
    FGSM, the surgery rows (:func:`curvlib.surgery.ledger_rows`) and the random jump at ε_r = :data:`EPS_R`."""
    from . import models, surgery
    from .attention import attention_experiment
    from .calibration import predictions
    from .config import require
    from .random_jump import jump_experiment
    from .trajectory import curvature_experiment, theta_experiment
    from .travel import travel_experiment

    profile = require(profile)
    names = list(profile.models)
    fam = {m: models.family(m) for m in names}
    kw = {"n_boot": n_boot, "seed": seed}
    preds = {m: predictions(m, profile) for m in names}
    travels = {m: travel_experiment(m, "fgsm", profile) for m in names}
    variants = list(models.variants()) if profile.dataset == "fashion-mnist" else []
    rows = [
        calibration_family(preds, "CNN", fam, **kw),
        calibration_family(preds, "Transformer", fam, **kw),
        calibration_gap(preds, fam, **kw),
        boundary_claim(travels, fam, **kw),
        rank_correlation_claim(travels, fam, **kw),
        curvature_theta_claim({m: theta_experiment(m, "random", profile)["theta"] for m in names}, fam,
                              ruler="random directions, one-way travel", **kw),
        omega_gap({m: curvature_experiment(m, "fgsm", profile) for m in names}, fam,
                  variants={v: curvature_experiment(v, "fgsm", profile) for v in variants}, **kw),
        attention_claim(pd.concat([attention_experiment(m, profile, per_sample=True) for m in names],
                                  ignore_index=True), fam, **kw),
        *surgery.ledger_rows(profile, **kw),
        random_jump_claim({m: jump_experiment(m, EPS_R, profile) for m in names}, fam, **kw),
    ]
    return pd.DataFrame(rows)


def _num(v: float) -> str:
    if not np.isfinite(v):
        return "∞" if v == np.inf else "–"
    return f"{v:.3g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.2e}"


def ledger_markdown(table: pd.DataFrame) -> str:
    """Markdown for a :func:`ledger` (or any frame with its :data:`ROW` columns): a compact table —
    claim linked to its chapter, verdict, estimate with its interval, sample size, what is measured —
    then, claim by claim, the paper's statement, the rule that gave the verdict and the note."""
    missing = set(ROW) - set(table.columns)
    if missing:
        raise ValueError(f"not a ledger: no column(s) {', '.join(sorted(missing))}")
    lines = ["| claim | verdict | estimate [95 % CI] | n | we measure |", "|---|---|---|---|---|"]
    details = ["", "What each row tests:", ""]
    for k, r in enumerate(table.itertuples(), 1):
        lines.append(f"| {k}. [{r.claim}]({r.chapter}.md) | **{r.verdict}** | {_num(r.estimate)} "
                     f"[{_num(r.lo)}, {_num(r.hi)}] | {r.n:,} | {r.measure} |")
        note = f" *Note:* {r.note}" if isinstance(r.note, str) and r.note else ""
        details.append(f"{k}. **{r.claim}** — *the paper:* {r.paper}. *Rule:* {r.rule}.{note}")
    return "\n".join(lines + details)
