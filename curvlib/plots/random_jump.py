"""The random-jump chapter's figures and page tables: each takes what :mod:`curvlib.claims.random_jump`
computed (tidy frames, images [N, C, H, W] in [0, 1]) and draws or formats it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..claims.random_jump import JUMP_RATIOS
from ..models import family
from .figures import image_row, interval_lines, status_text
from .theme import FAMILY_COLOR


def ratio_table(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`~curvlib.claims.random_jump.jump_ratios` rows as a page table: one row per group (model),
    in the rows' order, one column per ratio of :data:`JUMP_RATIOS`, cells "median [lo, hi]" to 3 decimals."""
    cells = rows.assign(ci=rows.apply(lambda r: f"{r['median']:.3f} [{r.lo:.3f}, {r.hi:.3f}]", axis=1))
    table = cells.pivot(index="group", columns="ratio", values="ci")
    return table.loc[list(dict.fromkeys(rows.group)), list(JUMP_RATIOS)].rename_axis(index="model")


def route_table(routes: pd.DataFrame):
    """:func:`~curvlib.claims.random_jump.route_summary` as a page table (Styler): totals to 4 decimals,
    PSNR to 0.1 dB, counts as integers."""
    return (routes.style.format("{:.4f}", subset=["median total, direct", "median total, jump route"])
            .format("{:.1f}", subset=[c for c in routes.columns if "PSNR" in c])
            .format("{:.0f}", subset=["jump flipped the label"]))


def jump_images_figure(x: torch.Tensor, examples: dict):
    """The paper's Figure 10: per model (a row) and image, the original, the direct route's final image
    and the jump route's, titled with the total perturbation and PSNR (or the route's travel status).
    ``x``: images [n, C, H, W]; ``examples``: model → (jump frame, x_direct_final, x_jump_final) as
    :func:`~curvlib.experiments.examples.jump_examples` returns them. Returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(x)
    fig, axes = plt.subplots(len(examples), 3 * n, figsize=(1.5 * 3 * n, 2.0 * len(examples)), squeeze=False)
    for r, (name, (df, x_direct, x_jump)) in enumerate(examples.items()):
        for i in range(n):
            row = df.iloc[i]
            titles = ["original",
                      f"FGSM\n{row.total_direct:.3f}, {row.psnr_direct:.1f} dB" if row.status_direct == "crossed"
                      else status_text(row.status_direct),
                      f"jump+FGSM\n{row.total_jump:.3f}, {row.psnr_jump:.1f} dB" if row.status_jump == "crossed"
                      else status_text(row.status_jump, after_jump=True)]
            image_row(torch.stack([x[i], x_direct[i], x_jump[i]]), titles, axes=axes[r, 3 * i:3 * i + 3])
        axes[r, 0].set_ylabel(name)
    for ax in axes.flat:
        ax.title.set_fontsize(8)
    fig.tight_layout()
    return fig


def jump_sweep_figure(sweep: pd.DataFrame):
    """Median ratio (jump route / direct) against the jump size ε_r with its interval, one panel per
    ``ratio of`` of a :func:`~curvlib.claims.random_jump.jump_sweep` frame, one line per model (dashed by
    family), log axes where a ratio is positive (labelled with the ratios themselves). Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    sizes = sorted(sweep.eps_r.unique())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True)
    for ax, (what, part) in zip(axes, sweep.groupby("ratio of", sort=False)):
        interval_lines(part.assign(family=part.model.map(family)), "eps_r", "median ratio", "lo", "hi", ax=ax,
                       style="family", legend=ax is axes[0])
        ax.axhline(1, color="gray", lw=0.8)
        v = part["median ratio"].to_numpy(float)
        scale = "log" if (np.isfinite(v) & (v > 0)).any() else "linear"  # linear: no ratio to draw (nothing crossed)
        ax.set(xscale=scale, yscale=scale, xlabel="jump size ε_r", ylabel=f"median {what} ratio (jump route / direct)",
               xticks=sizes, xticklabels=[str(e) for e in sizes])
        ax.minorticks_off()
        if scale == "log":  # label the ratios themselves (they span less than a decade)
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 3, 5)))
            ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    fig.tight_layout()
    return fig


def sweep_table(sweep: pd.DataFrame):
    """A :func:`~curvlib.claims.random_jump.jump_sweep` frame as a page table (Styler): median ratio per
    (ratio of, ε_r) row and model column (models in the frame's order), 3 decimals."""
    return (sweep.pivot_table(index=["ratio of", "eps_r"], columns="model", values="median ratio", sort=False)
            .reindex(columns=list(dict.fromkeys(sweep.model))).style.format("{:.3f}").format_index("{:g}", level=1))


def relative_figure(table: pd.DataFrame):
    """The jump sized to each image (:func:`~curvlib.claims.random_jump.relative_sweep`): median ratio (jump
    route / direct) with its interval against ε_r / ε*, one line per family; left the total perturbation,
    right the second leg only. Where the jump alone is as long as the direct route (ε_r ≥ ε*), a total ratio
    below 1 needs a second leg that is (nearly) free. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    for ax, (what, title) in zip(axes, (("total", "total perturbation"), ("eps", "second leg ε* only"))):
        part = table[table.ratio == what]
        interval_lines(part, "fraction", "median", "lo", "hi", ax=ax, hue="family", palette=FAMILY_COLOR,
                       legend=ax is axes[0])
        ax.axhline(1, color="gray", lw=0.8)
        ax.set(xscale="log", xticks=sorted(part.fraction.unique()), xticklabels=[f"{f:g}" for f in
                                                                                sorted(part.fraction.unique())],
               xlabel="jump size ε_r / the image's own ε*", ylabel="median ratio (jump route / direct)", title=title)
        ax.minorticks_off()
    fig.tight_layout()
    return fig


def straighter_table_style(table: pd.DataFrame):
    """A :func:`~curvlib.claims.random_jump.straighter_table` as a page table (Styler), 3 significant digits."""
    return table.style.format("{:.3g}")
