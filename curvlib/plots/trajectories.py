"""The trajectories chapter's tables and figures, drawn from what :mod:`curvlib.claims.trajectories`
computes: the shared mesh grid, the meshes' flatness ρ per plane, and single lines in 2-D."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from ..models import family
from .theme import model_colors

#: Page headers of :func:`curvlib.claims.trajectories.mesh_grid`'s table and their number formats.
GRID_COLUMNS = {"family": ("family", None), "crossed": ("crossed", None), "eps_median": ("median ε*", "{:.4f}"),
                "own_step": ("own step (≤ ¼ median ε*)", "{:.4g}"), "step": ("chosen step", "{:.4g}"),
                "ratio": ("step / median ε*", "{:.2f}")}
#: Page headers of :func:`curvlib.claims.trajectories.flatness_table` and their number formats.
FLATNESS_COLUMNS = {"family": ("family", None), "rho_clipped": ("ρ clipped plane", "{:.3f}"),
                    "rho_input_clipped": ("pixels ρ (clipped)", "{:.3f}"),
                    "rho_interior": ("ρ interior plane", "{:.3f}"),
                    "moving_interior": ("pixels moving (interior)", "{:.0%}")}


def _styled(table: pd.DataFrame, columns: dict):
    shown = table[list(columns)].rename(columns={c: h for c, (h, _) in columns.items()})
    return shown.style.format({h: f for h, f in columns.values() if f})


def mesh_grid_table(table: pd.DataFrame):
    """A :class:`~curvlib.claims.trajectories.MeshGrid` table with the page's headers. Returns a Styler."""
    return _styled(table, GRID_COLUMNS)


def flatness_table_style(table: pd.DataFrame):
    """A :func:`~curvlib.claims.trajectories.flatness_table` with the page's headers. Returns a Styler."""
    return _styled(table, FLATNESS_COLUMNS)


def flatness_figure(flat: pd.DataFrame, colors: dict | None = None):
    """ρ per image and model (dots) with each model's median (bar), one panel per plane of a
    :func:`~curvlib.measure.views.plane_flatness` frame (clipped, interior); the clipped panel
    also marks the clipped input points' own median ρ. Returns the Figure."""
    import matplotlib.pyplot as plt

    order = list(dict.fromkeys(flat.model))
    colors = colors or model_colors(order)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for ax, plane in zip(axes, ("clipped", "interior")):
        part = flat[flat.plane == plane]
        sns.stripplot(data=part, x="model", y="rho", hue="model", order=order, palette=colors, jitter=0.15,
                      size=4, alpha=0.7, legend=False, ax=ax)
        sns.pointplot(data=part, x="model", y="rho", hue="model", order=order, palette=colors,
                      estimator="median", errorbar=None, marker="_", markersize=30, markeredgewidth=2.5,
                      linestyle="none", legend=False, ax=ax)
        if plane == "clipped":
            pix = part.groupby("image").rho_input.first().median()
            ax.axhline(pix, color="0.5", ls="--", lw=1, label=f"pixels' own ρ (median {pix:.2f})")
            ax.legend(fontsize=8, loc="upper left")
        ax.set(title=f"{plane} plane: ρ per image (bar: median)", xlabel="", ylim=(0, 1))
    axes[0].set_ylabel("flatness ρ (0 = flat)")
    fig.tight_layout()
    return fig


def single_lines_figure(paths: pd.DataFrame, thetas: pd.DataFrame, colors: dict | None = None):
    """The lines of :func:`~curvlib.measure.views.single_lines`: one panel per model, its lines
    side by side (two per row), points coloured by ε (blue −, red +), the image as a star and each
    line's mean θ below it. Returns the Figure."""
    import matplotlib.pyplot as plt

    order = list(dict.fromkeys(paths.model))
    colors = colors or model_colors(order)
    theta = thetas.set_index(["model", "line"]).theta
    lo, hi, n_lines = float(paths.eps.min()), float(paths.eps.max()), paths.line.nunique()
    fig, axes = plt.subplots(2, -(-len(order) // 2), figsize=(9, 8), squeeze=False)
    for ax, name in zip(axes.flat, order):
        for m, p in paths[paths.model == name].groupby("line"):
            ox, oy = 2.4 * (m % 2), -2.9 * (m // 2)
            star = p.eps.abs().idxmin()
            ax.plot(p.x + ox, p.y + oy, "-", color=colors[name], lw=1.2)
            ax.scatter(p.x + ox, p.y + oy, c=p.eps, cmap="coolwarm", s=9, zorder=3)
            ax.plot(p.x[star] + ox, p.y[star] + oy, "k*", ms=9)
            ax.text(ox, oy - 1.3, f"line {m + 1}: mean θ {theta[(name, m)]:.1f}°", fontsize=8, ha="center")
        ax.set(xticks=[], yticks=[], aspect="equal", xlim=(-1.15, 3.55), ylim=(-4.35, 1.15))
        ax.set_title(f"{name} ({family(name, 'model')})", color=colors[name], fontsize=10)
    for ax in axes.flat[len(order):]:
        ax.axis("off")
    fig.suptitle(f"ε from −{-lo:g} (blue) to +{hi:g} (red), {n_lines} random directions, star = the image",
                 fontsize=10)
    fig.tight_layout()
    return fig
