"""The surgery chapter's figures: the toy's path and tangent, shares of ω removed, ε* ratios, and turning
before the boundary."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .theme import FAMILY_COLOR, model_colors, new_axes

SURGERY_ORDER = ("attention", "norm", "activation", "pooling", "all")


def surgery_shares(shares: pd.DataFrame, ax=None):
    """Share of each model's ω removed by each surgery (:func:`curvlib.claims.surgery.omega_shares`), bars with
    their 95 % intervals; 1 = straight path, 0 = unchanged, < 0 = the surgery bends it more."""
    ax = new_axes(ax, (7, 3.6))
    names = list(dict.fromkeys(shares.model))
    kinds = [k for k in SURGERY_ORDER if k in set(shares.surgery)]
    colors = model_colors(names)
    width = 0.8 / max(1, len(names))
    for j, m in enumerate(names):
        g = shares[shares.model == m].set_index("surgery").reindex(kinds)
        xs = np.arange(len(kinds)) + (j - (len(names) - 1) / 2) * width
        ax.bar(xs, g.share, width, color=colors[m], label=m)
        ax.errorbar(xs, g.share, yerr=[g.share - g.lo, g.hi - g.share], fmt="none", color="k", capsize=3, lw=1)
    ax.axhline(0, color="k", lw=0.8)
    ax.axhline(1, color="grey", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(kinds)), kinds)
    ax.set_xlabel("component kind linearised at the image")
    ax.set_ylabel("share of ω removed")
    ax.legend(frameon=False)
    return ax


def surgery_ratios(ratios: pd.DataFrame, band: str = "all", axes=None):
    """Median paired ratio ε*_surgery / ε*_original per surgery and family with 95 % intervals, one
    panel per direction kind (:func:`curvlib.claims.surgery.eps_ratios`, rows of one ``band``)."""
    import matplotlib.pyplot as plt

    sel = ratios[ratios.band == band]
    kinds = list(dict.fromkeys(sel.kind))
    if axes is None:
        _, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.6), squeeze=False, sharey=True)
        axes = axes[0]
    for ax, kind in zip(axes, kinds):
        g = sel[sel.kind == kind]
        cats = [k for k in SURGERY_ORDER if k in set(g.surgery)]
        fams = list(dict.fromkeys(g.family))
        width = 0.8 / max(1, len(fams))
        for j, fam in enumerate(fams):
            h = g[g.family == fam].set_index("surgery").reindex(cats)
            xs = np.arange(len(cats)) + (j - (len(fams) - 1) / 2) * width
            ax.errorbar(xs, h["median"], yerr=[h["median"] - h.lo, h.hi - h["median"]], fmt="o",
                        color=FAMILY_COLOR.get(fam, "grey"), capsize=3, label=fam)
        ax.axhline(1, color="k", lw=0.8)
        ax.set_xticks(np.arange(len(cats)), cats)
        ax.set_title(f"{kind} directions ({band})")
        ax.set_xlabel("component kind linearised")
    axes[0].set_ylabel("median ε*(surgered) / ε*(original)")
    axes[0].legend(frameon=False)
    return axes


def turning_scatter(turning: dict, axes=None):
    """Per model, the turning accumulated before the boundary (radians) against ε*, coloured by the
    confidence at x (:func:`curvlib.experiments.surgery.turning_experiment` frames, crossed images)."""
    import matplotlib.pyplot as plt

    names = list(turning)
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
        axes = axes[0]
    for ax, m in zip(axes, names):
        df = turning[m]
        df = df[(df.status == "crossed") & df.turning.notna()]
        sc = ax.scatter(df.eps, df.turning, c=df.confidence, cmap="viridis", vmin=0, vmax=1, s=14)
        ax.set_title(m)
        ax.set_xlabel("ε* (FGSM)")
    axes[0].set_ylabel("∫₀^ε* ω dε (radians)")
    plt.colorbar(sc, ax=list(axes), label="confidence at x", shrink=0.9)
    return axes


def gelu_toy_paths(eps, path, tangent, threshold: float, crossings, boundary: str = "decision boundary", ax=None):
    """The feature path of :func:`curvlib.measure.surgery.gelu_toy` [E, 2] and its tangent at the image [E, 2], both
    on the ε grid ``eps`` [E], the boundary as the line feature 2 = ``threshold`` (labelled ``boundary``), and a
    marker on each path at the grid point nearest its ε* (``crossings``: (ε* of the path, ε* of the tangent))."""
    ax = new_axes(ax, (6, 3.6))
    ax.plot(*path.T, label="original path (GELU)", lw=2)
    ax.plot(*tangent.T, "--", label="linearised at the image (tangent)", lw=2)
    ax.axhline(threshold, color="k", lw=0.8)
    ax.text(0.05, threshold + 0.03, boundary)
    for e, f, mk in zip(crossings, (path, tangent), ("o", "s")):
        ax.plot(*f[int(np.argmin(np.abs(np.asarray(eps) - e)))], mk, color="k")
    ax.set_xlabel("feature 1:  u = 4ε")
    ax.set_ylabel("feature 2")
    ax.legend(frameon=False, loc="lower right")
    return ax
