"""Reliability diagrams, confidence histograms and training curves: draw calibration tables, predictions and
model-card histories, compute nothing new."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from ..models import family
from .theme import model_colors, new_axes

#: How a statistic named in a diagram's corner is printed (others: 4 significant digits).
STAT_FORMAT = {"ECE": ".4f", "sECE": "+.4f"}


def reliability_diagram(table: pd.DataFrame, ax=None, title: str | None = None, color: str = "#1f77b4",
                        stats: dict | None = None):
    """Accuracy per confidence bin as bars whose opacity is the bin's share of the data (as in the
    paper), the diagonal of perfect calibration and the gap to each bin's mean confidence.
    ``table`` comes from :func:`curvlib.measure.calibration.calibration_table`; ``stats``: name → value
    printed in the corner (e.g. :func:`curvlib.claims.calibration.corner_stats`), computed by the caller.
    """
    from matplotlib.colors import to_rgba

    missing = {"lo", "hi", "share", "confidence", "accuracy", "is_empty"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; pass calibration_table(...)'s result")
    ax = new_axes(ax)
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
    if stats:
        text = "\n".join(f"{k:<5}{v:{STAT_FORMAT.get(k, '.4g')}}" for k, v in stats.items())
        ax.text(0.04, 0.96, text, transform=ax.transAxes,
                va="top", ha="left", family="monospace", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))
    return ax


def confidence_histogram(confidence, correct=None, ax=None, title: str | None = None, bins: int = 20,
                         color: str = "#1f77b4"):
    """Histogram of confidences (share of samples), split into correct / wrong when given."""
    ax = new_axes(ax, (4, 3))
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


def _grid(n: int, figsize, sharey: bool = False):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots((n + 1) // 2, 2, figsize=figsize, sharey=sharey, squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes


def reliability_grid(tables: dict[str, pd.DataFrame], colors: dict | None = None, stats: dict | None = None):
    """One :func:`reliability_diagram` per model (two per row), titled "model (family)"; ``tables``: model →
    :func:`curvlib.measure.calibration.calibration_table`; ``stats``: model → the corner's statistics.
    Returns the figure."""
    colors = colors or model_colors(list(tables))
    fig, axes = _grid(len(tables), (7.6, 3.8 * ((len(tables) + 1) // 2)))
    for ax, (name, table) in zip(axes.flat, tables.items()):
        reliability_diagram(table, ax=ax, title=f"{name} ({family(name)})", color=colors[name],
                            stats=(stats or {}).get(name))
    fig.tight_layout()
    return fig


def confidence_grid(preds: dict[str, pd.DataFrame], colors: dict | None = None):
    """One :func:`confidence_histogram` per model (two per row, shared y axis); ``preds``: model → frame with
    ``confidence`` and ``correct``. Returns the figure."""
    colors = colors or model_colors(list(preds))
    fig, axes = _grid(len(preds), (8, 2.8 * ((len(preds) + 1) // 2)), sharey=True)
    for ax, (name, df) in zip(axes.flat, preds.items()):
        confidence_histogram(df.confidence, df.correct, ax=ax, title=name, color=colors[name])
    fig.tight_layout()
    return fig


def calibration_panel(table: pd.DataFrame, pred: pd.DataFrame, title: str, color: str = "#1f77b4",
                      stats: dict | None = None):
    """One model's reliability diagram (``table``, ``stats`` in its corner) beside its confidence histogram
    (``pred``: ``confidence``, ``correct``), side by side. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8.5, 3.8))
    reliability_diagram(table, ax=a1, title=title, color=color, stats=stats)
    confidence_histogram(pred.confidence, pred.correct, ax=a2, color=color)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, colors: dict | None = None):
    """Test sECE and test accuracy per epoch, one line per model, side by side; ``history``: one row per model
    and epoch with ``model``, ``epoch``, ``sece``, ``accuracy``
    (:func:`curvlib.claims.calibration.training_history`). Returns the figure."""
    import matplotlib.pyplot as plt

    colors = colors or model_colors(list(dict.fromkeys(history.model)))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    sns.lineplot(data=history, x="epoch", y="sece", hue="model", palette=colors, marker="o", ax=a1)
    sns.lineplot(data=history, x="epoch", y="accuracy", hue="model", palette=colors, marker="o", legend=False, ax=a2)
    a1.axhline(0, color="gray", lw=0.8)
    a1.set(xlabel="epoch", ylabel="test sECE", title="signed ECE during training")
    a2.set(xlabel="epoch", ylabel="test accuracy", title="accuracy during training")
    fig.tight_layout()
    return fig
