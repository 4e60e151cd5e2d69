"""Calibration claims: sECE per family (below 0 = overconfident) and the CNN − Transformer gap, paired
over images."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import _families, _family_of, _same_images


def _sece_terms(preds: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Per model and image: correct − confidence (its mean is the model's sECE, for any binning)."""
    _same_images(preds)
    return {m: df["correct"].to_numpy(float) - df["confidence"].to_numpy(float) for m, df in preds.items()}


#: How each family's own sECE is read (from its claim record): (the side the paper predicts, the rule in words).
SECE_RULE = {f: (CLAIMS[f"calibration ({f}s)"].expect, CLAIMS[f"calibration ({f}s)"].rule)
             for f in ("CNN", "Transformer")}


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
    return CLAIMS[f"calibration ({family}s)"].judge(est, lo, hi, len(f),
                                                   measure=f"mean sECE of the {family}s ({', '.join(fams[family])})")


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
    return CLAIMS["calibration (gap)"].judge(est, lo, hi, len(d), cnn=float(fam_u["CNN"].mean()),
                                             transformer=float(fam_u["Transformer"].mean()))


def calibration_by_model(report: pd.DataFrame, families: dict | None = None) -> pd.DataFrame:
    """Per model of a :func:`curvlib.experiments.calibration.calibration_report`: the paper's claim for its family,
    sECE with its interval, and the verdict by the family's rule (:data:`SECE_RULE`)."""
    families = _family_of(report.index, families)
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
