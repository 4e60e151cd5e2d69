"""Explorers of the input plane and its image in representation space (the paper's Figure 1).

Around an image x, a grid of inputs x + a·d₁ + b·d₂ (d₁ the FGSM direction, d₂ a random direction
orthogonal to it, both ‖d‖ = √D; a, b ∈ {−n·ε, …, n·ε}) is mapped through the model; the
penultimate features of the grid are projected to 2-D (PCA of the grid's own features) and drawn
as a mesh, coloured by predicted class (with a legend of the classes that occur). Straight mesh
lines = additive response; bent lines = curved representation space. Each mesh's flatness ρ
(:func:`curvlib.trajectory.affine_residual`, computed on the full features, not the 2-D view) is
in its title; :func:`mesh_flatness` tabulates it over many images.

- :func:`live_explorer`: ipywidgets sliders (ε, steps, direction, model pair), redrawn by a kernel.
- :func:`static_explorer`: the same figure pre-rendered for a grid of slider values, in one
  self-contained HTML block whose sliders swap frames with no kernel and no script tag.
"""
from __future__ import annotations

import base64
import html
import json
import uuid

import numpy as np
import torch

from .data import FASHION_CLASSES
from .direction import direction
from .trajectory import affine_residual, interior_directions, probe_plane, project_2d


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


def plane_view(model, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int, kind: str = "fgsm",
               seed: int = 0, interior: bool = False) -> dict:
    """Grid clip(x + a d₁ + b d₂) around one image x [1, C, H, W]: input coordinates (a, b) [G, G]
    (pixel units), 2-D projected features [G, G, 2], predictions [G, G], G = 2·n_steps + 1, the
    mesh's flatness ``rho`` (:func:`curvlib.trajectory.affine_residual` of the full features) and
    ``rho_input``, the same measure of the clipped input points themselves (clipping at 0 and 1
    already bends the input plane). ``interior``: restrict both directions to the pixels that
    never clip on this grid (:func:`curvlib.trajectory.interior_directions`): then
    ``rho_input`` = 0 and ``rho`` measures the model alone."""
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}")
    x = x if x.ndim == 4 else x[None]
    y = y.view(1)
    d1 = direction(model, x, y, "fgsm") if kind == "fgsm" else direction(None, x, kind="random", seed=seed)
    d2 = direction(None, x, kind="perp", seed=seed + 1, reference=d1)
    d1, d2 = d1[0], d2[0]
    if interior:
        d1, d2 = interior_directions(x[0], d1, d2, n_steps * step)
    g = torch.arange(-n_steps, n_steps + 1, dtype=torch.float32) * step
    p = probe_plane(model, x, d1, d2, g, g)
    xy, _ = project_2d(p["features"], "pca")
    pixels = (x[0][None, None] + g.view(-1, 1, 1, 1, 1) * d1 + g.view(1, -1, 1, 1, 1) * d2).clamp_(0, 1)
    return {"a": g, "b": g, "rep": xy, "pred": p["pred"], "label": int(y), "step": step, "n_steps": n_steps,
            "num_classes": p["logits"].shape[-1], "rho": float(affine_residual(p["features"], g, g)),
            "rho_input": float(affine_residual(pixels.flatten(2), g, g)), "interior": interior,
            "moving": float((d1 != 0).float().mean())}


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


def class_legend(fig, colors: dict, names=None, star: bool = True) -> float:
    """A legend of the class colours (only the classes in ``colors``) below the figure; returns
    the share of the figure's height it takes (pass to ``tight_layout(rect=(0, share, 1, …))``)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker="o", ms=7, color=c, label=_name(k, names)) for k, c in colors.items()]
    if star:
        handles.append(Line2D([], [], ls="", marker="*", ms=11, color="black", label="the image x"))
    ncol = min(len(handles), 5)
    rows = -(-len(handles) // ncol)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False,
               title="colour = predicted class", title_fontsize=8)
    return min(0.5, (0.3 + 0.22 * rows) / fig.get_figheight())


def explorer_figure(models: dict, x: torch.Tensor, y: torch.Tensor, step: float = 0.02, n_steps: int = 4,
                    kind: str = "fgsm", seed: int = 0, names=None, eps_median: dict | None = None,
                    colors: dict | None = None, interior: bool = False):
    """One row per model (two panels: input grid and representation mesh), a legend of the classes
    that occur, each model's titles and frames in its own colour (``colors``: model → colour,
    default :func:`curvlib.plots.model_colors`). ``names``: class names (:func:`class_names`);
    ``eps_median``: model → median ε*, to state the step as a fraction of it; ``interior``: only
    the pixels that never clip move (see :func:`plane_view`). Returns the Figure."""
    import matplotlib.pyplot as plt

    from .plots import model_colors

    colors = colors or model_colors(list(models))
    views = {name: plane_view(model, x, y, step, n_steps, kind, seed, interior) for name, model in models.items()}
    k = max(v["num_classes"] for v in views.values())
    cc = class_colors(torch.cat([v["pred"].flatten() for v in views.values()]).numpy(), k)
    fig, axes = plt.subplots(len(models), 2, figsize=(7.6, 3.5 * len(models) + 0.9), squeeze=False)
    for row, (name, v) in zip(axes, views.items()):
        note = (f"step = {step / eps_median[name]:.2f} × median ε*" if eps_median and name in eps_median else "")
        plot_plane(v, row[0], row[1], name, cc, colors.get(name), note)
    fig.suptitle(f"grid step {step:g}, {n_steps} steps each way (±{step * n_steps:g}), first axis {kind}, "
                 f"{'only unclipped pixels move' if interior else 'inputs clipped to [0, 1]'}", fontsize=10)
    share = class_legend(fig, cc, names)
    fig.tight_layout(rect=(0, share, 1, 0.98))
    return fig


def mesh_flatness(models: dict, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int,
                  kind: str = "fgsm", seed: int = 0, interior: bool = False):
    """Flatness ρ of each model's mesh around each image x[i] (the same grid for all models), as a
    frame with columns model, image, rho (features), rho_input (the clipped input points) and
    moving (share of pixels that move); see :func:`plane_view`."""
    import pandas as pd

    rows = []
    for name, model in models.items():
        for i in range(len(x)):
            v = plane_view(model, x[i:i + 1], y[i:i + 1], step, n_steps, kind, seed, interior)
            rows.append({"model": name, "image": i, "rho": v["rho"], "rho_input": v["rho_input"],
                         "moving": v["moving"]})
    return pd.DataFrame(rows)


def live_explorer(models: dict, x: torch.Tensor, y: torch.Tensor, steps=(0.005, 0.01, 0.02, 0.05, 0.1),
                  counts=(2, 4, 6, 8), names=None, eps_median: dict | None = None):
    """ipywidgets explorer (needs a running kernel): sliders for the ε step and the step count,
    a direction selector and a choice of which models to compare (``names``, ``eps_median``: as
    for :func:`explorer_figure`; pass steps no larger than ¼ of the median ε*, see
    :func:`curvlib.trajectory.grid_step`)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    names = list(models)
    pairs = {f"{a} vs {b}": (a, b) for i, a in enumerate(names) for b in names[i + 1:]}
    out = W.Output()
    step = W.SelectionSlider(options=list(steps), value=steps[len(steps) // 2], description="ε step")
    count = W.SelectionSlider(options=list(counts), value=counts[1], description="steps")
    kind = W.Dropdown(options=["fgsm", "random"], value="fgsm", description="direction")
    pair = W.Dropdown(options=list(pairs), description="models")

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            sel = {n: models[n] for n in pairs[pair.value]}
            fig = explorer_figure(sel, x, y, step.value, count.value, kind.value, names=names,
                                  eps_median=eps_median)
            display(fig)
            plt.close(fig)

    for w in (step, count, kind, pair):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([step, count]), W.HBox([kind, pair]), out])


def _png(fig) -> str:
    from .plots import to_png

    return base64.b64encode(to_png(fig, dpi=80)).decode()


def static_explorer(render, steps, counts, label1: str = "ε step", label2: str = "steps") -> str:
    """Self-contained HTML: two range sliders over ``steps`` × ``counts`` swapping pre-rendered
    frames. ``render(step, count)`` returns a matplotlib Figure (closed after rendering). No
    <script> element and no network: the sliders' inline handlers only show/hide <img> frames."""
    import matplotlib.pyplot as plt

    steps, counts = list(steps), list(counts)
    if not steps or not counts:
        raise ValueError("need at least one value per slider")
    uid = "cv" + uuid.uuid4().hex[:8]
    frames = []
    for i, s in enumerate(steps):
        for j, c in enumerate(counts):
            fig = render(s, c)
            frames.append((i, j, _png(fig)))
            plt.close(fig)
    i0, j0 = len(steps) // 2, min(1, len(counts) - 1)
    handler = (f"var r=document.getElementById('{uid}');"
               "var i=r.querySelector('.s1').value,j=r.querySelector('.s2').value;"
               "r.querySelectorAll('img').forEach(function(e){e.style.display=(e.dataset.k==i+'_'+j)?'block':'none';});"
               "r.querySelector('.l1').textContent=JSON.parse(r.querySelector('.s1').dataset.v)[i];"
               "r.querySelector('.l2').textContent=JSON.parse(r.querySelector('.s2').dataset.v)[j];")
    h = html.escape(handler, quote=True)
    parts = [f'<div id="{uid}" class="curv-viewer" style="max-width:760px">',
             '<div style="display:flex;gap:2em;align-items:center;font-family:sans-serif;font-size:0.9em">',
             f'<label>{html.escape(label1)} <input class="s1" type="range" min="0" max="{len(steps) - 1}" step="1" '
             f'value="{i0}" data-v="{html.escape(json.dumps([f"{s:g}" for s in steps]))}" oninput="{h}"> '
             f'<b class="l1">{steps[i0]:g}</b></label>',
             f'<label>{html.escape(label2)} <input class="s2" type="range" min="0" max="{len(counts) - 1}" step="1" '
             f'value="{j0}" data-v="{html.escape(json.dumps([str(c) for c in counts]))}" oninput="{h}"> '
             f'<b class="l2">{counts[j0]}</b></label></div>']
    for i, j, b64 in frames:
        shown = "block" if (i, j) == (i0, j0) else "none"
        parts.append(f'<img data-k="{i}_{j}" style="display:{shown};max-width:100%" '
                     f'alt="{html.escape(label1)} {steps[i]:g}, {html.escape(label2)} {counts[j]}" '
                     f'src="data:image/png;base64,{b64}">')
    parts.append("</div>")
    return "\n".join(parts)
