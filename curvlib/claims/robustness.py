"""The paper's premise as ledger rows: after the same step ε, do the Transformers keep more images
correctly classified than the CNNs? Along Gaussian noise (a corruption, the premise as the paper
states it) and along FGSM (an attack). Computed on the images every model classifies correctly at
ε = 0, so a family's lower clean accuracy is not counted as lower robustness.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..constants import FAMILIES
from ..stats import bootstrap, verdict
from .records import CLAIMS
from .resample import family_map, split_families

#: Ledger claim per direction kind.
CLAIM_OF = {"random": "robustness (noise)", "fgsm": "robustness (FGSM)"}


def _correct(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Model → wide table of ``correct`` (rows: test image ``index``; columns: ε), every model on the
    same images and steps (else ValueError)."""
    wide = {m: f.pivot(index="index", columns="eps", values="correct") for m, f in frames.items()}
    first = next(iter(wide.values()))
    for m, w in wide.items():
        if not (w.index.equals(first.index) and w.columns.equals(first.columns)) or w.isna().any().any():
            raise ValueError(f"{m}: every model needs the same images and steps, each (image, step) measured, "
                             "for a paired comparison")
    return wide


def accuracy_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per model (of ``frames``: model → :func:`~curvlib.experiments.robustness.robustness_experiment`
    frame of one kind) and ε: ``accuracy`` on all images and ``kept`` = the share still correct among the
    images every model classifies correctly at ε = 0 (``n_clean`` of them). Tidy."""
    wide = _correct(frames)
    clean = np.logical_and.reduce([w[0.0].to_numpy(bool) for w in wide.values()])
    rows = []
    for m, w in wide.items():
        for e in w.columns:
            c = w[e].to_numpy(bool)
            rows.append({"model": m, "eps": float(e), "accuracy": float(c.mean()), "kept": float(c[clean].mean()),
                         "n_clean": int(clean.sum())})
    return pd.DataFrame(rows)


def robustness_gap(frames: dict[str, pd.DataFrame], eps: float, families: dict | None = None,
                   n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Share of images still correct after a step ``eps``, Transformers' mean − CNNs' mean, on the images
    every model classifies correctly at ε = 0; interval paired over those images. ``{estimate, lo, hi,
    verdict (above 0 = the Transformers keep more), n}``."""
    return _gap(_correct(frames), eps, families, n_boot=n_boot, level=level, seed=seed)


def _gap(wide: dict[str, pd.DataFrame], eps: float, families: dict | None = None, n_boot: int = 1000,
         level: float = 0.95, seed: int = 0) -> dict:
    """:func:`robustness_gap` on the wide tables of :func:`_correct` (built once for every step)."""
    if 0.0 not in wide[next(iter(wide))].columns or eps not in wide[next(iter(wide))].columns:
        raise ValueError(f"the frames need ε = 0 and ε = {eps:g} (have {list(wide[next(iter(wide))].columns)})")
    fams = split_families(list(wide), family_map(list(wide), families))
    clean = np.logical_and.reduce([w[0.0].to_numpy(bool) for w in wide.values()])
    kept = {f: np.mean([wide[m][eps].to_numpy(float)[clean] for m in fams[f]], axis=0) for f in FAMILIES}
    d = kept["Transformer"] - kept["CNN"]
    est, lo, hi = bootstrap(lambda i: d[i].mean(1), len(d), n_boot=n_boot, level=level, seed=seed)
    return {"estimate": est, "lo": lo, "hi": hi, "verdict": verdict(lo, hi, 0.0, ">"), "n": int(len(d)),
            "cnn": float(kept["CNN"].mean()) if len(d) else float("nan"),
            "transformer": float(kept["Transformer"].mean()) if len(d) else float("nan")}


def robustness_claim(frames: dict[str, pd.DataFrame], kind: str, eps: float, families: dict | None = None,
                     **kw) -> dict:
    """The ledger row of :data:`CLAIM_OF` ``[kind]`` at the pre-declared step ``eps``; the note gives the
    gap at every other step of the frames (sensitivity), each with its verdict."""
    wide = _correct(frames)
    row = _gap(wide, eps, families, **kw)
    others = [e for e in next(iter(frames.values())).eps.unique() if e not in (0.0, eps)]
    sens = []
    for e in others:
        g = _gap(wide, float(e), families, **kw)
        sens.append(f"ε = {e:.3g}: {g['estimate']:+.3f} [{g['lo']:+.3f}, {g['hi']:+.3f}] {g['verdict']}")
    note = (f"Still correct after the step: CNNs {row['cnn']:.1%}, Transformers {row['transformer']:.1%}."
            + (" At the other steps (sensitivity): " + "; ".join(sens) + "." if sens else ""))
    return CLAIMS[CLAIM_OF[kind]].judge(row["estimate"], row["lo"], row["hi"], row["n"], note=note, eps=eps,
                                        cnn=row["cnn"], transformer=row["transformer"])
