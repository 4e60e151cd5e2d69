"""Drawings of the plane explorer and the trajectory player (frames computed by :mod:`curvlib.measure.views`)."""
from __future__ import annotations

import numpy as np
import torch

from ..constants import FASHION_CLASSES
from .theme import model_colors


def class_names(profile) -> tuple[str, ...] | None:
    """Class names of the profile's dataset in label order: Fashion-MNIST's ten names, ImageNet's
    1000 (first synonym of timm's descriptions), or None when unknown (legends then say "class k")."""
    if profile.dataset == "fashion-mnist":
        return FASHION_CLASSES
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return tuple(info.index_to_description(k).split(",")[0] for k in range(info.num_classes()))
    except Exception:  # pragma: no cover - timm without the ImageNet info files
        return None


def class_colors(classes, num_classes: int) -> dict[int, tuple]:
    """A colour per class for the classes ``classes`` that occur in one figure: with ≤ 10 classes
    class k always gets tab10's colour k (the same in every figure); with more (ImageNet), the
    occurring classes get tab20's colours in label order (cycling past 20)."""
    import matplotlib.pyplot as plt

    ks = sorted({int(k) for k in np.asarray(classes).ravel()})
    if num_classes <= 10:
        return {k: plt.get_cmap("tab10")(k) for k in ks}
    return {k: plt.get_cmap("tab20")(i % 20) for i, k in enumerate(ks)}


def _name(k: int, names) -> str:
    return names[k] if names is not None and 0 <= k < len(names) else f"class {k}"


def plot_plane(view: dict, ax_in, ax_rep, title: str = "", colors: dict | None = None, model_color=None,
               note: str = ""):
    """Input grid (left) and its representation mesh (right; title with its flatness ρ), points
    coloured by predicted class (``colors``: class → colour, default :func:`class_colors`), grey
    mesh lines, the image as a star; ``model_color`` (when models are compared) colours the
    titles and frames, never the points, so it cannot be mistaken for a class."""
    pred = view["pred"].numpy()
    colors = colors or class_colors(pred, view.get("num_classes", 10))
    pc = np.array([colors[int(k)] for k in pred.ravel()])
    A, B = np.meshgrid(view["a"].numpy(), view["b"].numpy(), indexing="ij")
    rep = view["rep"].numpy()
    for ax, X, Y in ((ax_in, A, B), (ax_rep, rep[..., 0], rep[..., 1])):
        for i in range(X.shape[0]):
            ax.plot(X[i], Y[i], color="0.6", lw=0.6, zorder=1)
        for j in range(X.shape[1]):
            ax.plot(X[:, j], Y[:, j], color="0.6", lw=0.6, zorder=1)
        ax.scatter(X.ravel(), Y.ravel(), c=pc, s=12, zorder=2, edgecolors="none")
        c = view["n_steps"]
        ax.scatter([X[c, c]], [Y[c, c]], marker="*", s=130, color="black", zorder=3)
        ax.set(xticks=[], yticks=[])
        if model_color is not None:
            for side in ax.spines.values():
                side.set(color=model_color, linewidth=2)
    rho_in = f"pixels ρ = {view['rho_input']:.3f}" if "rho_input" in view else ""
    ax_in.set_title(f"{title}: input plane\n" + "; ".join(t for t in (note, rho_in) if t), fontsize=9,
                    color=model_color or "black")
    rho = f"\nflatness ρ = {view['rho']:.3f}" if "rho" in view else ""
    ax_rep.set_title(f"{title}: representation{rho}", fontsize=9, color=model_color or "black")
    ax_in.set(xlabel="a (first direction, pixel units)", ylabel="b (random, orthogonal; pixel units)")
    ax_rep.set(xlabel="PC 1 of the mesh's features", ylabel="PC 2")


def class_legend(fig, colors: dict, names=None, star: bool = True, extra=()) -> float:
    """A legend of the class colours (only the classes in ``colors``) below the figure, then the
    star (the image x) and the ``extra`` handles; returns the share of the figure's height it
    takes (pass to ``tight_layout(rect=(0, share, 1, …))``)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=7, color=c, label=_name(k, names)) for k, c in colors.items()]
    if star:
        handles.append(Line2D([], [], ls="", marker="*", ms=11, color="black", label="the image x"))
    handles += list(extra)
    ncol = min(len(handles), 5)
    rows = -(-len(handles) // ncol)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               title="colour = predicted class", title_fontsize=8)
    return min(0.5, (0.3 + 0.22 * rows) / fig.get_figheight())


def explorer_figure(views: dict, step: float, n_steps: int, kind: str = "fgsm", names=None,
                    eps_median: dict | None = None, colors: dict | None = None, interior: bool = False):
    """One row per model of ``views`` (model → :func:`curvlib.measure.views.plane_view` result, e.g. from
    :func:`~curvlib.measure.views.plane_views`, on the grid ``step``, ``n_steps``, first axis ``kind``):
    two panels each (input grid and representation mesh), a legend of the classes that occur, each
    model's titles and frames in its own colour (``colors``: model → colour, default
    :func:`curvlib.plots.theme.model_colors`). ``names``: class names (:func:`class_names`);
    ``eps_median``: model → median ε*, to state the step as a fraction of it; ``interior``: the views
    move only the pixels that never clip (stated in the title). Returns the Figure."""
    import matplotlib.pyplot as plt

    if not views:
        raise ValueError("explorer_figure needs at least one model's plane view")
    colors = colors or model_colors(list(views))
    k = max(v["num_classes"] for v in views.values())
    cc = class_colors(torch.cat([v["pred"].flatten() for v in views.values()]).numpy(), k)
    fig, axes = plt.subplots(len(views), 2, figsize=(7.6, 3.5 * len(views) + 0.9), squeeze=False)
    for row, (name, v) in zip(axes, views.items()):
        note = (f"step = {step / eps_median[name]:.2f} × median ε*" if eps_median and name in eps_median else "")
        plot_plane(v, row[0], row[1], name, cc, colors.get(name), note)
    fig.suptitle(f"grid step {step:g}, {n_steps} steps each way (±{step * n_steps:g}), first axis {kind}, "
                 f"{'only unclipped pixels move' if interior else 'inputs clipped to [0, 1]'}", fontsize=10)
    share = class_legend(fig, cc, names)
    fig.tight_layout(rect=(0, share, 1, 0.98))
    return fig


def plot_walk(walk: dict, k: int, names=None, colors: dict | None = None):
    """Frame k of a :func:`walk_paths` walk: one row per model, its input at ε_k (left) and its
    2-D path (right): the whole path faint, the trail up to k drawn, the current point large,
    points coloured by predicted class (legend below), the image x as a star, the first point
    predicted ≠ label ringed once reached. ``names``: class names (:func:`class_names`);
    ``colors``: model → colour for titles and frames (default :func:`curvlib.plots.theme.model_colors`).
    Returns the Figure."""
    n = len(walk["eps"]) - 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer step in [0, {n}], got {k!r}")
    fig, frame = walk_figure(walk, names, colors)
    frame(int(k))
    return fig


def walk_figure(walk: dict, names=None, colors: dict | None = None):
    """(Figure, frame): the parts of :func:`plot_walk` that every frame shares, drawn once, and
    ``frame(k)``, which redraws the figure's moving parts for step k (no checks: 0 ≤ k ≤ n)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D


    n, eps, label, paths = len(walk["eps"]) - 1, walk["eps"].tolist(), walk["label"], walk["paths"]
    colors = colors or model_colors(list(paths))
    cc = class_colors(torch.cat([p["pred"] for p in paths.values()]).numpy(), walk["num_classes"])
    fig, axes = plt.subplots(len(paths), 2, figsize=(7.6, 3.1 * len(paths) + 0.9), squeeze=False,
                             gridspec_kw={"width_ratios": (1, 1.7)})
    rows = []
    for (ax_im, ax), (name, p) in zip(axes, paths.items()):
        mc = colors.get(name, "black")
        imgs = p["inputs"].permute(0, 2, 3, 1).numpy()
        imgs = imgs[..., 0] if imgs.shape[-1] == 1 else imgs
        im = ax_im.imshow(imgs[0], cmap="gray", vmin=0, vmax=1)
        xy, pred = p["rep"].numpy(), p["pred"].numpy()
        pc = np.array([cc[int(c)] for c in pred])
        ax.plot(xy[:, 0], xy[:, 1], color="0.85", lw=1, zorder=1)
        ax.scatter(xy[:, 0], xy[:, 1], c=pc, s=10, alpha=0.3, edgecolors="none", zorder=2)
        ax.scatter(*xy[0], marker="*", s=130, color="black", zorder=8)  # above the current point at k = 0
        ax.set(xticks=[], yticks=[], xlabel="PC 1 of its own path", ylabel="PC 2")
        ax.set_aspect("equal", adjustable="datalim")
        for side in (*ax.spines.values(), *ax_im.spines.values()):
            side.set(color=mc, linewidth=2)
        ax_im.set(xticks=[], yticks=[])
        rows.append((name, mc, ax_im, ax, im, imgs, xy, pred, pc, p["crossing"]))
    moving = []  # the artists of the frame on show

    def frame(k: int):
        for artist in moving:
            artist.remove()
        moving.clear()
        for name, mc, ax_im, ax, im, imgs, xy, pred, pc, c in rows:
            im.set_data(imgs[k])
            ax_im.set_title(f"{name}'s input\nε = {eps[k]:.3g} (step {k}/{n})", fontsize=9, color=mc)
            moving.extend(ax.plot(xy[:k + 1, 0], xy[:k + 1, 1], color="0.35", lw=1.5, zorder=3))
            moving.append(ax.scatter(xy[:k + 1, 0], xy[:k + 1, 1], c=pc[:k + 1], s=22, edgecolors="none", zorder=4))
            moving.append(ax.scatter(*xy[k], s=170, color=pc[k], edgecolors="black", linewidths=1.2, zorder=6))
            reached = c is not None and k >= c
            if reached:
                moving.append(ax.scatter(*xy[c], s=420, facecolors="none", edgecolors="black", linewidths=1.8,
                                         zorder=7))
            state = f"first ≠ label at ε = {eps[c]:.3g}" if reached else "label kept so far"
            ax.set_title(f"{name}: predicted {_name(int(pred[k]), names)}\nlabel {_name(label, names)}; {state}",
                         fontsize=9, color=mc)
        return fig

    ring = Line2D([], [], ls="", marker="o", ms=12, mfc="none", mec="black", mew=1.8,
                  label="first prediction ≠ label")
    fig.suptitle(f"{walk['kind']} direction" + (" (each model its own)" if walk["kind"] == "fgsm" else " (shared)")
                 + f", ε from 0 to {eps[-1]:.3g} in {n} steps, inputs clipped to [0, 1]", fontsize=10)
    share = class_legend(fig, cc, names, extra=(ring,))
    frame(0)  # titles in place before the layout is fixed
    fig.tight_layout(rect=(0, share, 1, 0.98))
    return fig, frame
