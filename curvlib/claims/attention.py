"""Attention's bends against the CNNs' ReLU bends, per family, from the layer defects."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bootstrap
from .records import CLAIMS
from .resample import _families, _family_of


def attention_claim(long: pd.DataFrame, families: dict | None = None, cnn_component: str = "relu",
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Bend of the Transformers' attention modules over the bend of the CNNs' activations.

    ``long``: per-sample rows of :func:`curvlib.experiments.attention.attention_experiment` (``per_sample=True``:
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
    return CLAIMS["attention"].judge(
        est, lo, hi, len(images),
        measure=f"bend of attention (Transformers) / bend of {cnn_component} layers (CNNs), FGSM segment",
        note="Attention's non-additivity itself is exact algebra (the chapter checks eq. 8–13 to rounding); "
             "what is tested here is whether it bends a path more than the CNNs' activations do.")
