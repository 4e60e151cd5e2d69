"""The boundary chapter's figures and page tables: each takes travel frames or what
:mod:`curvlib.claims.boundary` computed (tables, images [N, C, H, W] in [0, 1]) and draws or formats it."""
from __future__ import annotations

import pandas as pd

from .figures import boundary_scatter, image_row, status_text
from .theme import model_colors


def passes_table(frames: dict[str, dict[str, pd.DataFrame]]) -> pd.DataFrame:
    """Forward passes per image of the boundary search, "mean / worst", one row per model and one column
    per direction kind of ``frames`` (kind → model → travel frame)."""
    return pd.DataFrame({kind: {name: f"{df.passes.mean():.1f} / {df.passes.max()}" for name, df in fr.items()}
                         for kind, fr in frames.items()})


def certify_table(certified: pd.DataFrame):
    """A :func:`curvlib.measure.certify.summary` table as a page table (Styler): the counts per category
    and the agreement share with its interval, in per cent."""
    shown = ["model", "kind", "checked", "earlier, verified", "missed", "false never", "agreement", "lo", "hi"]
    return (certified[shown].style.format({"agreement": "{:.1%}", "lo": "{:.1%}", "hi": "{:.1%}"}).hide(axis="index")
            .set_table_styles([{"selector": "td, th", "props": "font-size: 0.8em; padding: 2px 6px"}]))


def boundary_scatter_grid(frames: dict[str, pd.DataFrame], kind: str, eps_max: float | None = None, colors=None,
                          log: bool = False):
    """:func:`boundary_scatter` (ε* against confidence, the paper's Figure 3) for every model of ``frames``
    (model → travel frame along ``kind`` directions), two panels per row, axes shared; ``log``: ε* on a log
    axis with one grey level dotted. Returns the Figure."""
    import matplotlib.pyplot as plt

    names = list(frames)
    colors = colors or model_colors(names)
    rows = -(-len(names) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 3.2 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        boundary_scatter(frames[name], ax=ax, title=f"{name} — {kind}", color=colors[name], eps_max=eps_max,
                         log=log)
        ax.set_ylabel(f"ε* along {kind}")
        ax.label_outer()
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def band_medians_table(bands: pd.DataFrame):
    """Median ε* per (kind, confidence band) row and model column (models in the frame's order) of
    concatenated :func:`curvlib.experiments.travel.median_by_confidence` frames, as a Styler; "–" where
    a band holds no crossed image."""
    return (bands.pivot_table(index=["kind", "band"], columns="model", values="median", observed=False, sort=False,
                              dropna=False).reindex(columns=list(dict.fromkeys(bands.model)))
            .style.format("{:.4f}", na_rep="–"))


def boundary_images_figure(x, y, moved: dict, frames: dict[str, pd.DataFrame], classes=None):
    """The originals x [n, C, H, W] (titled with their labels y [n]) above one row per model of the
    images moved to the boundary (``moved``: model → [n, C, H, W], as
    :func:`curvlib.experiments.examples.boundary_images` returns them), titled with ε* and the new class from
    the model's FGSM travel frame (``frames``: model → frame) or the travel's status. ``classes``: class
    names by label (default: the labels' numbers). Returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(x)
    fig, axes = plt.subplots(len(moved) + 1, n, figsize=(1.45 * n, 1.8 * (len(moved) + 1)), squeeze=False)
    image_row(x, [classes[i] if classes else str(int(i)) for i in y], axes=axes[0])
    axes[0, 0].set_ylabel("original")
    for r, (name, images) in enumerate(moved.items(), start=1):
        df = frames[name].iloc[:n]
        titles = [f"ε*={e:.3f}\n→{classes[c] if classes and c >= 0 else c}" if s == "crossed"
                  else status_text(s).replace(" up to", "\nup to") for e, c, s in zip(df.eps, df.new_class, df.status)]
        image_row(images, titles, axes=axes[r])
        axes[r, 0].set_ylabel(name)
    fig.tight_layout()
    return fig


def band_table(bands: pd.DataFrame):
    """A :func:`curvlib.claims.boundary.boundary_bands` table as a page table (Styler): medians to 4
    decimals, the ratio and its interval to 2, "–" where undefined."""
    fmt = {c: "{:.4f}" for c in ("median CNN", "median Transformer")} | {c: "{:.2f}" for c in ("ratio", "lo", "hi")}
    return (bands.style.format(fmt, na_rep="–").set_table_styles([{"selector": "td, th", "props": "font-size: 0.8em"}])
            .hide(axis="index"))


def rho_table(rhos: pd.DataFrame):
    """A :func:`curvlib.claims.boundary.rank_correlation` table as a page table (Styler): ρ and its
    interval signed, 3 decimals, "–" where undefined."""
    return rhos.style.format({c: "{:+.3f}" for c in ("rho", "lo", "hi")}, na_rep="–").set_table_styles(
        [{"selector": "td, th", "props": "padding: 2px 8px"}])


def robustness_figure(tables: dict[str, pd.DataFrame], colors=None):
    """One panel per direction kind (``tables``: kind → :func:`curvlib.claims.robustness.accuracy_table`):
    the share of images still correct after a step ε (pixel units; among the images every model classifies
    correctly at ε = 0) per model, ε on a symmetric-log axis. Returns the Figure."""
    import matplotlib.pyplot as plt

    if not tables:
        raise ValueError("robustness_figure needs at least one kind's accuracy table")
    fig, axes = plt.subplots(1, len(tables), figsize=(4.2 * len(tables), 3.2), sharey=True, squeeze=False)
    for ax, (kind, t) in zip(axes[0], tables.items()):
        colors = colors or model_colors(list(dict.fromkeys(t.model)))
        for m, g in t.groupby("model", sort=False):
            ax.plot(g.eps, g.kept, marker="o", markersize=3, color=colors[m], label=m)
        ax.set_xscale("symlog", linthresh=1 / 255)
        ax.set(title=f"{kind}: still correct after the step", xlabel="ε (per-pixel RMS)", ylim=(0, 1.02))
    axes[0][0].set_ylabel("share of the clean-correct images")
    axes[0][0].legend(fontsize=8)
    return fig
