"""Calibration claims: sECE per family (below 0 = overconfident) and the CNN − Transformer gap, paired
over images; the calibration chapter's tables (intervals as text, ECE by binning, training histories) and
its verdict paragraph."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..measure.calibration import calibration_table, ece, sece
from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import family_map, same_images, split_families


def _sece_terms(preds: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Per model and image: correct − confidence (its mean is the model's sECE, for any binning)."""
    same_images(preds)
    return {m: df["correct"].to_numpy(float) - df["confidence"].to_numpy(float) for m, df in preds.items()}


#: How each family's own sECE is read (from its claim record): (the side the paper predicts, the rule in words).
SECE_RULE = {f: (CLAIMS[f"calibration ({f}s)"].expect, CLAIMS[f"calibration ({f}s)"].rule)
             for f in ("CNN", "Transformer")}


def corner_stats(tables: dict[str, pd.DataFrame]) -> dict[str, dict[str, float]]:
    """Model → {"ECE", "sECE"} of its calibration table (:func:`curvlib.measure.calibration.calibration_table`),
    for the corner of its reliability diagram."""
    return {m: {"ECE": ece(t), "sECE": sece(t)} for m, t in tables.items()}


def calibration_family(preds: dict[str, pd.DataFrame], family: str, families: dict | None = None,
                       n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean sECE of one family's models, with an interval over test images (paired across its models)."""
    if family not in SECE_RULE:
        raise ValueError(f"family must be one of {', '.join(SECE_RULE)}, got {family!r}")
    families = family_map(preds, families)
    fams = split_families(list(preds), families)
    u = _sece_terms(preds)
    f = np.mean([u[m] for m in fams[family]], axis=0)
    est, lo, hi = bootstrap(lambda i: f[i].mean(1), len(f), n_boot=n_boot, level=level, seed=seed)
    return CLAIMS[f"calibration ({family}s)"].judge(est, lo, hi, len(f),
                                                   measure=f"mean sECE of the {family}s ({', '.join(fams[family])})")


def calibration_gap(preds: dict[str, pd.DataFrame], families: dict | None = None, n_boot: int = 1000,
                    level: float = 0.95, seed: int = 0) -> dict:
    """sECE(CNNs) − sECE(Transformers), family means, with an interval paired over test images.

    For any binning sECE = accuracy − mean confidence = mean over images of (correct − confidence),
    so the gap is the mean of one number per image and is resampled as such. ``preds``: model →
    predictions frame (``index``, ``confidence``, ``correct``) on the same images. The paper expects
    the gap below 0 (CNNs the more overconfident)."""
    families = family_map(preds, families)
    fams = split_families(list(preds), families)
    u = _sece_terms(preds)
    fam_u = {f: np.mean([u[m] for m in ms], axis=0) for f, ms in fams.items()}
    d = fam_u["CNN"] - fam_u["Transformer"]
    est, lo, hi = bootstrap(lambda i: d[i].mean(1), len(d), n_boot=n_boot, level=level, seed=seed)
    return CLAIMS["calibration (gap)"].judge(est, lo, hi, len(d), cnn=float(fam_u["CNN"].mean()),
                                             transformer=float(fam_u["Transformer"].mean()))


def calibration_by_model(report: pd.DataFrame, families: dict | None = None) -> pd.DataFrame:
    """Per model of a :func:`curvlib.experiments.calibration.calibration_report`: the paper's claim for its family,
    sECE with its interval, and the verdict by the family's rule (:data:`SECE_RULE`)."""
    families = family_map(report.index, families)
    rows = []
    for name, r in report.iterrows():
        fam = families[name]
        if fam not in SECE_RULE:
            raise ValueError(f"{name!r}: no paper claim for family {fam!r}")
        claim = CLAIMS[f"calibration ({fam}s)"]
        v = verdict(r.sece_lo, r.sece_hi, claim.null, claim.expect)
        rows.append({"model": name, "family": fam, "paper": CLAIMS[f"calibration ({fam}s)"].paper, "sece": r.sece,
                     "lo": r.sece_lo, "hi": r.sece_hi, "verdict": v})
    return pd.DataFrame(rows).set_index("model")


def _with_ci(report: pd.DataFrame, stat: str, fmt: str = "{:.4f}") -> pd.Series:
    return report.apply(lambda r: f"{fmt.format(r[stat])}\n[{fmt.format(r[stat + '_lo'])}, "
                                  f"{fmt.format(r[stat + '_hi'])}]", axis=1)


def summary_table(report: pd.DataFrame, families: dict | None = None) -> pd.DataFrame:
    """A :func:`curvlib.experiments.calibration.calibration_report` as text, one row per model: family, then
    accuracy, ECE, sECE and ACE as "estimate" over "[lo, hi]" (two lines: show with ``white-space: pre-line``),
    mean confidence and MCE (no interval), to 4 decimals."""
    families = family_map(report.index, families)
    return pd.DataFrame({
        "family": [families[m] for m in report.index],
        "accuracy": _with_ci(report, "accuracy"), "mean conf.": report.confidence.map("{:.4f}".format),
        "ECE": _with_ci(report, "ece"), "sECE": _with_ci(report, "sece", "{:+.4f}"),
        "MCE": report.mce.map("{:.4f}".format), "ACE": _with_ci(report, "ace"),
    }, index=report.index)


def resampling_note(report: pd.DataFrame) -> str:
    """One line: how many bootstrap resamples each statistic of ``report`` got, and MCE's smallest bin."""
    counts = ", ".join(f"{k} {v:,}" for k, v in report.attrs["n_boot"].items())
    return (f"resamples per statistic: {counts} (ACE re-bins each resample); MCE over bins of ≥ "
            f"{report.attrs['mce_min_count']} samples, without an interval")


def by_model_table(by_model: pd.DataFrame) -> pd.DataFrame:
    """:func:`calibration_by_model` for a page: family, "sECE [95 % CI]" as text (signed, 4 decimals), verdict."""
    return pd.DataFrame({
        "family": by_model.family,
        "sECE [95 % CI]": [f"{r.sece:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}]" for r in by_model.itertuples()],
        "verdict": by_model.verdict})


def calibration_verdicts(by_model: pd.DataFrame, family_rows: dict[str, dict], gap: dict, report: pd.DataFrame,
                         profile) -> str:
    """The chapter's verdict paragraph (Markdown): how many models behave as the paper claims for their family,
    each family's sECE row (:func:`calibration_family`) and the gap row (:func:`calibration_gap`) in their claims'
    own sentences (:meth:`curvlib.claims.records.Claim.sentence`), and the models' accuracies."""
    n_hold = int((by_model.verdict == "holds").sum())
    sentences = [CLAIMS[f"calibration ({f}s)"].sentence(r) for f, r in family_rows.items()]
    accuracy = ", ".join(f"{m} {report.accuracy[m]:.1%}" for m in report.index)
    return (f"**Measured on the `{profile.name}` profile:** {n_hold} of {len(by_model)} models behave as the paper "
            f"claims for their family. {' '.join(sentences)} {CLAIMS['calibration (gap)'].sentence(gap)} "
            f"The verdicts are about signs, not sizes; and the families are not matched in accuracy ({accuracy}), "
            "which calibration also depends on.")


def training_history(cards: dict[str, dict]) -> pd.DataFrame:
    """The test-set history recorded in each model card (``models.load(name, profile).card``), one row per
    model and epoch: the card's columns (``epoch``, ``accuracy``, ``sece``, …) and ``model``. Empty when no card
    holds a history."""
    frames = [pd.DataFrame(c.get("history", [])).assign(model=name) for name, c in cards.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def binning_sensitivity(preds: dict[str, pd.DataFrame], bins=(5, 10, 15, 20),
                        schemes=("width", "mass")) -> pd.DataFrame:
    """ECE and sECE of every model's predictions (``confidence``, ``correct``) for each number of bins and
    binning scheme (equal width or equal mass): one tidy row per (model, bins, scheme)."""
    rows = []
    for name, df in preds.items():
        for m in bins:
            for scheme in schemes:
                t = calibration_table(df.confidence, df.correct, n_bins=m, scheme=scheme)
                rows.append({"model": name, "bins": m, "scheme": scheme, "ECE": ece(t), "sECE": sece(t)})
    return pd.DataFrame(rows)
