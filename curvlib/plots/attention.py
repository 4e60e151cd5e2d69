"""The attention chapter's figure: the attention scores along a straight input segment."""
from __future__ import annotations

import pandas as pd

from .theme import FAMILY_COLOR


def score_path_figure(med: pd.DataFrame, title: str, axes=None):
    """Two log–log panels against t (the step's size relative to ‖X‖) from a score-path table
    (:func:`curvlib.claims.attention.score_path`: medians per t of ``change``, ``linear``, ``bend``,
    ``bend_predicted``, ``linear_share``, ``rel_bend``): left, the score change with its linear part ‖tR‖,
    the predicted bend t²‖A(P)‖/2 and the measured one; right, R's share of the change and the relative
    bend β. Returns the two axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True)
    ax = axes[0]
    ax.plot(med.index, med.change, "-", color="0.3", lw=2, label="‖A(X+tP) − A(X)‖")
    ax.plot(med.index, med.linear, "--", color=FAMILY_COLOR["CNN"], label="‖t R‖")
    ax.plot(med.index, med.bend_predicted, "-", color=FAMILY_COLOR["Transformer"], label="‖t² A(P)‖ / 2")
    ax.plot(med.index, med.bend, "o", ms=4, color=FAMILY_COLOR["Transformer"], label="measured midpoint bend")
    ax.set(xscale="log", yscale="log", xlabel="t = ‖tP‖ / ‖X‖", ylabel="norm (median over images)", title=title)
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(med.index, med.linear_share, "-o", ms=3, color=FAMILY_COLOR["CNN"], label="R's share of the change")
    ax.plot(med.index, med.rel_bend, "-o", ms=3, color=FAMILY_COLOR["Transformer"], label="relative bend β")
    ax.set(xscale="log", yscale="log", xlabel="t = ‖tP‖ / ‖X‖", ylabel="ratio (median over images)",
           title="share of the linear part vs. bend")
    ax.legend(fontsize=8)
    ax.figure.tight_layout()
    return axes
