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

Animation of one input walking along a line, clip(x + ε_k d): :func:`walk_paths` computes each
model's path (inputs, 2-D features, predictions, boundary crossing), :func:`plot_walk` draws
step k; :func:`live_trajectory_player` (ipywidgets Play + step slider) and
:func:`static_trajectory_player` (pre-rendered frames, Play/Pause buttons with inline handlers)
play it.
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


def _png(fig, dpi: int = 80, palette: bool = False) -> str:
    """Base64 PNG of a figure; ``palette``: quantised to 256 colours (maximum coverage: class
    colours and the white background kept to within a few levels; about 3× smaller)."""
    from .plots import to_png

    png = to_png(fig, dpi=dpi)
    if palette:
        import io

        from PIL import Image

        buf = io.BytesIO()
        rgb = Image.open(io.BytesIO(png)).convert("RGB")
        rgb.quantize(256, method=Image.Quantize.MAXCOVERAGE).save(buf, format="PNG", optimize=True)
        png = buf.getvalue()
    return base64.b64encode(png).decode()


def _uid() -> str:
    """A fresh element id for one self-contained HTML widget."""
    return "cv" + uuid.uuid4().hex[:8]


def _img(key: str, b64: str, alt: str, shown: bool) -> str:
    """One pre-rendered frame (PNG, base64) of a static widget, found by its ``data-k``."""
    display = "block" if shown else "none"
    return (f'<img data-k="{key}" style="display:{display};max-width:100%" '
            f'alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">')


def static_sliders(render, sliders: dict, start: dict | None = None) -> str:
    """Self-contained HTML: one range slider per entry of ``sliders`` (label → values), swapping
    frames pre-rendered for every combination. ``render(*values)`` returns a matplotlib Figure
    (closed after rendering); ``start``: label → initial value (default: the middle one). No
    <script> element and no network: the sliders' inline handlers only show/hide <img> frames,
    found by ``data-k`` = the sliders' indices joined by "_"."""
    import itertools

    import matplotlib.pyplot as plt

    labels, values = list(sliders), [list(v) for v in sliders.values()]
    if not labels or any(not v for v in values):
        raise ValueError("need at least one slider and at least one value per slider")
    start = start or {}
    unknown = set(start) - set(labels)
    if unknown or any(start[k] not in sliders[k] for k in start):
        raise ValueError(f"start values must be among the sliders' values, got {start}")
    first = [v.index(start[k]) if k in start else len(v) // 2 for k, v in zip(labels, values)]
    text = [[f"{x:g}" if isinstance(x, float) else str(x) for x in v] for v in values]
    uid = _uid()
    n = len(labels)
    handler = (f"var r=document.getElementById('{uid}');var k=[];"
               f"for(var i=1;i<={n};i++){{var s=r.querySelector('.s'+i);k.push(s.value);"
               "r.querySelector('.l'+i).textContent=JSON.parse(s.dataset.v)[s.value];}"
               "k=k.join('_');r.querySelectorAll('img').forEach(function(e){"
               "e.style.display=(e.dataset.k==k)?'block':'none';});")
    h = html.escape(handler, quote=True)
    parts = [f'<div id="{uid}" class="curv-viewer" style="max-width:760px">',
             '<div style="display:flex;gap:2em;align-items:center;font-family:sans-serif;font-size:0.9em">']
    for i, (label, t, f0) in enumerate(zip(labels, text, first), start=1):
        parts.append(f'<label>{html.escape(label)} <input class="s{i}" type="range" min="0" max="{len(t) - 1}" '
                     f'step="1" value="{f0}" data-v="{html.escape(json.dumps(t))}" oninput="{h}"> '
                     f'<b class="l{i}">{html.escape(t[f0])}</b></label>')
    parts.append("</div>")
    for idx in itertools.product(*(range(len(v)) for v in values)):
        fig = render(*(v[i] for v, i in zip(values, idx)))
        alt = ", ".join(f"{label} {t[i]}" for label, t, i in zip(labels, text, idx))
        parts.append(_img("_".join(map(str, idx)), _png(fig), alt, list(idx) == first))
        plt.close(fig)
    parts.append("</div>")
    return "\n".join(parts)


def static_explorer(render, steps, counts, label1: str = "ε step", label2: str = "steps") -> str:
    """:func:`static_sliders` over ``steps`` × ``counts`` (the explorer's two sliders; the step count
    starts at its second value)."""
    counts = list(counts)
    return static_sliders(render, {label1: steps, label2: counts},
                          start={label2: counts[min(1, len(counts) - 1)]} if counts else None)


def live_slider(render, values, label: str, start=None):
    """ipywidgets twin of a one-slider :func:`static_sliders` (needs a running kernel): a selection
    slider over ``values`` redrawing ``render(value)``. Returns the VBox; ``box.slider`` is the
    slider and ``box.drawn`` the values drawn so far."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    values = list(values)
    if not values:
        raise ValueError("need at least one value")
    out = W.Output()
    slider = W.SelectionSlider(options=values, value=values[len(values) // 2] if start is None else start,
                               description=label, style={"description_width": "initial"})
    drawn = []

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig = render(slider.value)
            display(fig)
            plt.close(fig)
        drawn.append(slider.value)

    slider.observe(redraw, names="value")
    redraw()
    box = W.VBox([slider, out])
    box.slider, box.drawn = slider, drawn
    return box


# ---------------------------------------------------------------------------------------------
# Animation: one input walking along a line, x(ε) = clip(x + ε d), and its path in each model.

WALK_KINDS = ("fgsm", "random")


def walk_paths(models: dict, x: torch.Tensor, y, kind: str = "fgsm", eps_max: float = 0.1, n: int = 16,
               seed: int = 0) -> dict:
    """The walk of one image x [C, H, W] (or [1, C, H, W]) in [0, 1], label ``y`` (int or one-element
    tensor), through every model of ``models`` (name → model): inputs clip(x + ε_k d), ε_k = k·ε_max/n,
    k = 0 … n, clipped to [0, 1] as in :func:`curvlib.trajectory.probe_line` (ε in pixel units,
    ‖d‖ = √D). ``kind``: ``fgsm`` (each model its own direction, so each model its own inputs)
    or ``random`` (one direction, drawn from ``seed``, shared by all models).

    Returns ``eps`` [n+1], ``kind``, ``label``, ``num_classes`` and ``paths``: name → dict with
    ``inputs`` [n+1, C, H, W], ``rep`` [n+1, 2] (the penultimate features projected onto the two
    leading principal axes of the model's own path, :func:`curvlib.trajectory.project_2d`),
    ``pred`` [n+1] (predicted classes) and ``crossing``: the first k whose prediction differs from
    the label (0 if x itself is misclassified), or None if none does up to ε_max."""
    from .trajectory import line_points, probe_line

    if kind not in WALK_KINDS:
        raise ValueError(f"unknown walk direction {kind!r}; choose one of {', '.join(WALK_KINDS)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (number of steps) must be an integer ≥ 1, got {n!r}")
    if not (eps_max > 0 and np.isfinite(eps_max)):
        raise ValueError(f"eps_max must be positive and finite, got {eps_max!r}")
    if not models:
        raise ValueError("models is empty: pass at least one name → model")
    if not isinstance(x, torch.Tensor) or not (x.ndim == 3 or (x.ndim == 4 and len(x) == 1)):
        raise ValueError(f"x must be one image [C, H, W] (or [1, C, H, W]), got {getattr(x, 'shape', type(x))}")
    yt = torch.as_tensor(y)
    if yt.numel() != 1 or yt.is_floating_point():
        raise ValueError(f"y must be one integer label (int or one-element tensor), got {y!r}")
    x = x.reshape(1, *x.shape[-3:])
    label = int(yt.reshape(()))
    yy = torch.tensor([label])
    eps = torch.arange(n + 1, dtype=torch.float32) * (eps_max / n)
    shared = direction(None, x, kind="random", seed=seed) if kind == "random" else None
    paths, num_classes = {}, 0
    for name, model in models.items():
        d = shared if shared is not None else direction(model, x, yy, "fgsm")
        p = probe_line(model, x, d, eps)
        num_classes = max(num_classes, p["logits"].shape[-1])
        if not 0 <= label < p["logits"].shape[-1]:
            raise ValueError(f"label {label} is not a class of {name} ({p['logits'].shape[-1]} classes)")
        pred = p["pred"][0]
        wrong = torch.nonzero(pred != label).flatten()
        paths[name] = {"inputs": line_points(x, d[None], eps)[0, 0], "rep": project_2d(p["features"][0], "pca")[0],
                       "pred": pred, "crossing": int(wrong[0]) if len(wrong) else None}
    return {"eps": eps, "kind": kind, "label": label, "num_classes": num_classes, "paths": paths}


def plot_walk(walk: dict, k: int, names=None, colors: dict | None = None):
    """Frame k of a :func:`walk_paths` walk: one row per model, its input at ε_k (left) and its
    2-D path (right): the whole path faint, the trail up to k drawn, the current point large,
    points coloured by predicted class (legend below), the image x as a star, the first point
    predicted ≠ label ringed once reached. ``names``: class names (:func:`class_names`);
    ``colors``: model → colour for titles and frames (default :func:`curvlib.plots.model_colors`).
    Returns the Figure."""
    n = len(walk["eps"]) - 1
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer step in [0, {n}], got {k!r}")
    fig, frame = _walk_figure(walk, names, colors)
    frame(int(k))
    return fig


def _walk_figure(walk: dict, names=None, colors: dict | None = None):
    """(Figure, frame): the parts of :func:`plot_walk` that every frame shares, drawn once, and
    ``frame(k)``, which redraws the figure's moving parts for step k (no checks: 0 ≤ k ≤ n)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .plots import model_colors

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


def _per_kind(eps_max, kinds) -> dict:
    """ε_max for each walk kind: one number for all, or a mapping kind → number."""
    kinds = list(kinds)
    if not kinds or any(kd not in WALK_KINDS for kd in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {', '.join(WALK_KINDS)}, got {kinds}")
    given = eps_max if isinstance(eps_max, dict) else dict.fromkeys(kinds, eps_max)
    missing = [kd for kd in kinds if kd not in given]
    if missing:
        raise ValueError(f"eps_max has no value for {', '.join(missing)}")
    return {kd: given[kd] for kd in kinds}


def live_trajectory_player(models: dict, x: torch.Tensor, y, eps_max, counts=(8, 16, 24), kinds=WALK_KINDS,
                           names=None, colors: dict | None = None, seed: int = 0, interval: int = 500):
    """ipywidgets player (needs a running kernel): a Play button linked (``link``, through the
    kernel, which redraws anyway) to a step slider k, a direction selector and a step count n.
    The walk (:func:`walk_paths`) is computed once per (kind, n) and kept in ``box.walks``; moving
    k only redraws :func:`plot_walk`.
    ``eps_max``: one ε_max (pixel units) or kind → ε_max; ``interval``: ms per frame. Returns the
    VBox, with ``box.play``, ``box.step``, ``box.walks`` and ``box.drawn`` (the (kind, n, k)
    frames drawn so far, in order)."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    eps = _per_kind(eps_max, kinds)
    counts = [int(c) for c in counts]
    if not counts or min(counts) < 1:
        raise ValueError(f"counts must be step counts ≥ 1, got {counts}")
    n0 = counts[len(counts) // 2]
    out = W.Output()
    play = W.Play(value=0, min=0, max=n0, interval=interval, description="play")
    step = W.IntSlider(value=0, min=0, max=n0, description="step k")
    W.link((play, "value"), (step, "value"))
    kind = W.Dropdown(options=list(eps), value=next(iter(eps)), description="direction")
    count = W.SelectionSlider(options=counts, value=n0, description="steps n")
    walks, frames, drawn, busy = {}, {}, [], [False]

    def redraw(*_):
        if busy[0]:
            return
        key = (kind.value, count.value)
        if key not in walks:
            walks[key] = walk_paths(models, x, y, key[0], eps[key[0]], key[1], seed)
            fig, frames[key] = _walk_figure(walks[key], names, colors)
            plt.close(fig)  # redrawn in place by frames[key]; shown only through the Output
        with out:
            out.clear_output(wait=True)
            display(frames[key](step.value))
        drawn.append((*key, step.value))

    def rescale(change):  # keep ε_k about where it was when n changes
        k = round(step.value * change.new / change.old)
        busy[0] = True
        try:
            play.max = step.max = change.new
            play.value = step.value = k
        finally:
            busy[0] = False
        redraw()

    step.observe(redraw, names="value")
    kind.observe(redraw, names="value")
    count.observe(rescale, names="value")
    redraw()
    box = W.VBox([W.HBox([play, step]), W.HBox([kind, count]), out])
    box.play, box.step, box.walks, box.drawn = play, step, walks, drawn
    return box


def static_trajectory_player(models: dict, x: torch.Tensor, y, eps_max, n: int = 16, kinds=WALK_KINDS,
                             names=None, colors: dict | None = None, seed: int = 0, interval: int = 500,
                             dpi: int = 80) -> str:
    """Self-contained HTML: every frame k = 0 … n of :func:`plot_walk` for each direction kind,
    pre-rendered (PNG at ``dpi``), with Play / Pause buttons, a step slider and (for several
    kinds) a direction selector. ``eps_max``: one ε_max or kind → ε_max; ``interval``: ms per
    frame. No <script> element and no network: inline handlers only; Play keeps its timer id in
    the block's ``data-timer`` and stops at the last frame (from there it starts again at 0)."""
    import matplotlib.pyplot as plt

    eps = _per_kind(eps_max, kinds)
    uid = _uid()
    frames, values = [], {}
    for kd, e in eps.items():
        walk = walk_paths(models, x, y, kd, e, n, seed)
        values[kd] = [f"{v:.3g}" for v in walk["eps"].tolist()]
        fig, frame = _walk_figure(walk, names, colors)
        frames += [(kd, k, _png(frame(k), dpi, palette=True)) for k in range(n + 1)]
        plt.close(fig)
    kd0 = next(iter(eps))
    show = (f"var r=document.getElementById('{uid}'),s=r.querySelector('.sk'),d=r.querySelector('.kd');"
            "var kd=d?d.value:r.dataset.kind,key=kd+'_'+s.value;"
            "r.querySelectorAll('img').forEach(function(e){e.style.display=e.dataset.k==key?'block':'none';});"
            "r.querySelector('.lk').textContent=s.value+'/'+s.max+', ε = '+JSON.parse(r.dataset.eps)[kd][s.value];")
    stop = f"var r=document.getElementById('{uid}');clearInterval(+r.dataset.timer);delete r.dataset.timer;"
    start = (f"var r=document.getElementById('{uid}'),s=r.querySelector('.sk');if(r.dataset.timer)return;"
             "if(s.value==s.max){s.value=0;s.oninput();}"
             "r.dataset.timer=setInterval(function(){s.value=+s.value+1;s.oninput();"
             f"if(s.value==s.max){{clearInterval(+r.dataset.timer);delete r.dataset.timer;}}}},{int(interval)});")
    h = {name: html.escape(code, quote=True) for name, code in (("show", show), ("start", start), ("stop", stop))}
    button = 'style="font-size:0.95em;padding:0.1em 0.8em"'
    parts = [f'<div id="{uid}" class="curv-player" style="max-width:760px" data-kind="{kd0}" '
             f'data-eps="{html.escape(json.dumps(values))}">',
             '<div style="display:flex;gap:1em;align-items:center;flex-wrap:wrap;font-family:sans-serif;'
             'font-size:0.9em">',
             f'<button type="button" class="play" {button} onclick="{h["start"]}">▶ Play</button>',
             f'<button type="button" class="pause" {button} onclick="{h["stop"]}">❚❚ Pause</button>',
             f'<label>step <input class="sk" type="range" min="0" max="{n}" step="1" value="0" '
             f'oninput="{h["show"]}"> <b class="lk">0/{n}, ε = 0</b></label>']
    if len(eps) > 1:
        options = "".join(f'<option value="{kd}">{kd}</option>' for kd in eps)
        parts.append(f'<label>direction <select class="kd" onchange="{h["show"]}">{options}</select></label>')
    parts.append("</div>")
    parts += [_img(f"{kd}_{k}", b64, f"{kd} direction, step {k} of {n}, ε = {values[kd][k]}", (kd, k) == (kd0, 0))
              for kd, k, b64 in frames]
    parts.append("</div>")
    return "\n".join(parts)
