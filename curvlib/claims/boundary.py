"""Boundary claims: ε* per confidence band and the rank correlation of confidence with ε*, per family;
the chapter's images at the boundary and its verdict sentences (the ``*_markdown`` functions, so the
chapter words no verdict itself)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..constants import BANDS, FAMILIES
from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import family_map, pooled_median, same_images, spearman, split_families


def distance(df: pd.DataFrame) -> np.ndarray:
    """ε* per image of a travel frame: the crossing where crossed, +inf where it never crossed within
    eps_max (censored: farther than any measured one), NaN where misclassified at the start."""
    st = df["status"].astype(str).to_numpy()
    return np.where(st == "crossed", df["eps"].to_numpy(float), np.where(st == "never", np.inf, np.nan))


def in_band(conf: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Whether each confidence lies in the band (lo, hi] (the first band, lo = 0, includes 0)."""
    return ((conf > lo) | ((lo == 0) & (conf >= 0))) & (conf <= hi)


def band_label(lo: float, hi: float) -> str:
    """The band's label: "[0, hi]" for the first, "(lo, hi]" for the others."""
    return f"[{lo:g}, {hi:g}]" if lo == 0 else f"({lo:g}, {hi:g}]"


def _band_medians(frames, fams, lo_e, hi_e):
    """(stats, counts, stacked): per family, the pooled-median statistic of one band, its image count
    and the band's values [n, models] (NaN outside the band or misclassified at the start)."""
    masked = {}
    for m, df in frames.items():
        masked[m] = np.where(in_band(df["confidence"].to_numpy(float), lo_e, hi_e), distance(df), np.nan)
    stats = {f: pooled_median([masked[m] for m in ms]) for f, ms in fams.items()}
    counts = {f: int(sum((~np.isnan(masked[m])).sum() for m in ms)) for f, ms in fams.items()}
    stacked = {f: np.stack([masked[m] for m in ms], 1) for f, ms in fams.items()}
    return stats, counts, stacked


def distance_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where defined; inf / inf (both beyond eps_max) is 1 (no difference seen), x / 0 NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = a / b
    return np.where(np.isinf(a) & np.isinf(b), 1.0, np.where(b == 0, np.nan, r))


def boundary_bands(frames: dict[str, pd.DataFrame], families: dict | None = None, edges=BANDS,
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per confidence band: how many images of each family fall in it, the family's median ε*
    (pooled over its models; never-crossed images count as +∞), and the ratio Transformers / CNNs
    with an interval paired over test images. ``frames``: model → travel frame on the same images."""
    families = family_map(frames, families)
    fams = split_families(list(frames), families)
    n = len(same_images(frames))
    rows = []
    for lo_e, hi_e in zip(edges[:-1], edges[1:]):
        stats, counts, _ = _band_medians(frames, fams, lo_e, hi_e)
        est, lo, hi = bootstrap(lambda i: distance_ratio(stats["Transformer"](i), stats["CNN"](i)), n, n_boot=n_boot,
                                level=level, seed=seed)
        full = np.arange(n)[None]
        rows.append({"band": band_label(lo_e, hi_e), "n CNN": counts["CNN"], "n Transformer": counts["Transformer"],
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
    families = family_map(frames, families)
    fams = split_families(list(frames), families)
    n = len(same_images(frames))
    bands = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b <= threshold + 1e-12]
    if not bands:
        raise ValueError(f"no confidence band ends at or below threshold {threshold}: edges {edges}")
    parts = [_band_medians(frames, fams, a, b) for a, b in bands]

    def stat(idx):
        num, den = np.zeros(len(idx)), np.zeros(len(idx))
        for stats, _, stacked in parts:
            with np.errstate(divide="ignore", invalid="ignore"):
                lr = np.log(distance_ratio(stats["Transformer"](idx), stats["CNN"](idx)))
            k = {f: (~np.isnan(v[idx])).reshape(len(idx), -1).sum(1).astype(float) for f, v in stacked.items()}
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.nan_to_num(k["CNN"] * k["Transformer"] / (k["CNN"] + k["Transformer"]))
            ok = ~np.isnan(lr) & (w > 0)
            num += np.where(ok, w * np.where(ok, lr, 0), 0)
            den += np.where(ok, w, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, np.exp(num / den), np.nan)

    est, lo, hi = bootstrap(stat, n, n_boot=n_boot, level=level, seed=seed)
    labels = ", ".join(band_label(a, b) for a, b in bands)
    counts = {f: sum(p[1][f] for p in parts) for f in FAMILIES}
    rest = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > threshold + 1e-12]
    return CLAIMS["boundary (low confidence)"].judge(
        est, lo, hi, counts["CNN"] + counts["Transformer"],
        measure=f"median ε* Transformers / CNNs at confidence ≤ {threshold:g}, within bands",
        rule=f"holds if the interval lies above 1; ratios of medians within the bands {labels}, combined with "
             "weights n_C·n_T/(n_C+n_T); never crossed = +∞; paired over test images",
        n_cnn=counts["CNN"], n_transformer=counts["Transformer"],
        note=(f"{counts['CNN']} CNN and {counts['Transformer']} Transformer images at confidence ≤ "
              f"{threshold:g}; the bands above it ({', '.join(band_label(a, b) for a, b in rest)}) are "
              "in the chapter's table, not in this row."))


def rank_correlation(frames: dict[str, pd.DataFrame], families: dict | None = None, n_boot: int = 1000,
                     level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per model: Spearman ρ between confidence and ε* (never crossed = +∞; images misclassified at
    the start left out) with its bootstrap interval, and a final row ``CNN − Transformer``: the
    difference of the families' mean ρ on the images every model classified correctly (paired).
    The paper expects ρ > 0 for the CNNs (confidence predicts distance) and a weaker one for the
    Transformers, i.e. a difference above 0. (ρ also depends on each family's spread of confidences:
    a family whose confidences crowd near 1 has a narrower range to rank.)"""
    families = family_map(frames, families)
    fams = split_families(list(frames), families)
    same_images(frames)
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
    return CLAIMS["boundary (confidence ↔ distance)"].judge(
        g.rho, g.lo, g.hi, int(g.n),
        note=f"ρ per model, each on the images that model classifies correctly: {per}; the estimate compares the "
             "families on the images all four classify correctly, so it need not equal the difference of these.")


def verdict_markdown(verdicts: dict[str, dict], rhos: dict[str, pd.DataFrame], band_tables: dict[str, pd.DataFrame],
                     threshold: float = 0.9) -> str:
    """Per direction kind, the verdicts of :func:`boundary_claim` (``verdicts``, ledger rows) and of the
    family difference of :func:`rank_correlation` (``rhos``), and whether the bands of
    :func:`boundary_bands` (``band_tables``) above ``threshold`` show a similar factor — a Markdown list."""
    lines = []
    for kind, r in verdicts.items():
        gap = rhos[kind].loc["CNN − Transformer"]
        lines.append(f"- **{kind}**: at confidence ≤ {threshold:g}, within bands, the Transformers' median ε* is "
                     f"{r['estimate']:.2f}× the CNNs' [{r['lo']:.2f}, {r['hi']:.2f}] ({r['n_cnn']} CNN and "
                     f"{r['n_transformer']} Transformer images) — the paper's ordering: **{r['verdict']}**. "
                     f"Confidence–distance correlation, CNNs minus Transformers: {gap.rho:+.3f} "
                     f"[{gap.lo:+.3f}, {gap.hi:+.3f}] — **{gap.verdict}**.")
        above = band_tables[kind][np.array(BANDS[:-1]) >= threshold]  # the rows follow the bands' edges
        similar = [b for b in above.itertuples() if b.lo <= r["estimate"] <= b.hi or r["lo"] <= b.ratio <= r["hi"]]
        lines.append("  For comparison, above that confidence: " + "; ".join(
            f"band {b.band}: ratio {b.ratio:.2f} [{b.lo:.2f}, {b.hi:.2f}]" for b in above.itertuples()) + " — "
            + ("a similar factor in every band, so the difference is one of scale between these families rather "
               "than specific to low confidence." if len(similar) == len(above) else
               "a different factor from the low-confidence one in " + ", ".join(
                   b.band for b in above.itertuples() if b not in similar) + "."))
    return "\n".join(lines)


def accuracy_markdown(frames: dict[str, pd.DataFrame], profile) -> str:
    """How many of the profile's travel images each model (model → travel frame) classifies correctly,
    and, for the embedded Fashion-MNIST models, what their verdicts can and cannot say."""
    acc = ", ".join(f"{m} {float((df.status != 'misclassified_at_start').mean()):.1%}" for m, df in frames.items())
    if profile.dataset == "fashion-mnist":
        return ("The embedded models are small, trained for this book on 28×28 grey-scale images; on these "
                f"{profile.n_travel} images they classify {acc} correctly. Whatever the verdicts above, they are "
                "properties of these particular networks, not a universal law; the paper's ImageNet models run with "
                "the same code under the `paper` profile.")
    return f"On these {profile.n_travel} images the models classify {acc} correctly."


def summary_markdown(verdicts: dict[str, dict], rhos: dict[str, pd.DataFrame], profile_name: str,
                     threshold: float = 0.9) -> str:
    """The chapter's closing sentence: per direction kind, the ratio at confidence ≤ ``threshold`` and the
    verdict of :func:`boundary_claim` (``verdicts``), and the verdict of :func:`rank_correlation`'s family
    difference (``rhos``)."""
    return (f"On this profile ({profile_name}), the Transformers' median ε\\* at confidence ≤ {threshold:g} is "
            + "; ".join(f"{r['estimate']:.2f}× the CNNs' along {kind} (the paper's ordering: {r['verdict']}; "
                        "confidence–distance correlation stronger for the CNNs: "
                        f"{rhos[kind].loc['CNN − Transformer'].verdict})" for kind, r in verdicts.items()) + ".")
