"""Reliability diagrams and confidence histograms: draw a calibration table, compute nothing new."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..measure.calibration import ece, sece
from .theme import _axes


def reliability_diagram(table: pd.DataFrame, ax=None, title: str | None = None, color: str = "#1f77b4",
                        show_stats: bool = True):
    """Accuracy per confidence bin as bars whose opacity is the bin's share of the data (as in the
    paper), the diagonal of perfect calibration, the gap to each bin's mean confidence, and
    ECE / sECE in the corner. ``table`` comes from :func:`curvlib.measure.calibration.calibration_table`.
    """
    from matplotlib.colors import to_rgba


    missing = {"lo", "hi", "share", "confidence", "accuracy", "is_empty"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; pass calibration_table(...)'s result")
    ax = _axes(ax)
    t = table[~table["is_empty"]]
    share = t["share"].to_numpy()
    alpha = 0.15 + 0.85 * share / share.max() if len(t) else []
    width = (t["hi"] - t["lo"]).to_numpy()
    ax.bar(t["lo"], t["accuracy"], width=width, align="edge", color=[to_rgba(color, a) for a in alpha],
           edgecolor=color, linewidth=0.8, label="accuracy")
    # gap between accuracy and mean confidence, drawn at each bin's centre
    centre = (t["lo"] + t["hi"]).to_numpy() / 2
    ax.vlines(centre, t["accuracy"], t["confidence"], colors="black", linewidth=1.2, label="gap")
    ax.plot(centre, t["confidence"], "k_", markersize=8)
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", aspect="equal")
    if title:
        ax.set_title(title)
    if show_stats:
        ax.text(0.04, 0.96, f"ECE  {ece(table):.4f}\nsECE {sece(table):+.4f}", transform=ax.transAxes,
                va="top", ha="left", family="monospace", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))
    return ax


def confidence_histogram(confidence, correct=None, ax=None, title: str | None = None, bins: int = 20,
                         color: str = "#1f77b4"):
    """Histogram of confidences (share of samples), split into correct / wrong when given."""
    ax = _axes(ax, (4, 3))
    conf = np.asarray(confidence.detach().cpu() if hasattr(confidence, "detach") else confidence, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    w = np.full(conf.shape, 1.0 / max(1, conf.size))
    if correct is None:
        ax.hist(conf, bins=edges, weights=w, color=color)
    else:
        corr = np.asarray(correct.detach().cpu() if hasattr(correct, "detach") else correct, dtype=bool)
        ax.hist([conf[corr], conf[~corr]], bins=edges, weights=[w[corr], w[~corr]], stacked=True,
                color=[color, "#bbbbbb"], label=["correct", "wrong"])
        ax.legend(loc="upper left", fontsize=8)
    ax.set(xlim=(0, 1), xlabel="confidence", ylabel="share of samples")
    ax.set_yscale("log")
    if title:
        ax.set_title(title)
    return ax
