"""Explorers of the input plane and its image in representation space (the paper's Figure 1).

Around an image x, a grid of inputs x + a·d₁ + b·d₂ (d₁ the FGSM direction, d₂ a random direction
orthogonal to it, both ‖d‖ = √D; a, b ∈ {−n·ε, …, n·ε}) is mapped through the model; the
penultimate features of the grid are projected to 2-D (PCA of the grid's own features) and drawn
as a mesh, coloured by predicted class. Straight mesh lines = additive response; bent lines =
curved representation space.

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

from .direction import direction
from .trajectory import probe_plane, project_2d


def plane_view(model, x: torch.Tensor, y: torch.Tensor, step: float, n_steps: int, kind: str = "fgsm",
               seed: int = 0) -> dict:
    """Grid around one image x [1, C, H, W]: input coordinates (a, b) [G, G], 2-D projected
    features [G, G, 2] and predictions [G, G], G = 2·n_steps + 1."""
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    if int(n_steps) < 1:
        raise ValueError(f"n_steps must be ≥ 1, got {n_steps}")
    x = x if x.ndim == 4 else x[None]
    y = y.view(1)
    d1 = direction(model, x, y, "fgsm") if kind == "fgsm" else direction(None, x, kind="random", seed=seed)
    d2 = direction(None, x, kind="perp", seed=seed + 1, reference=d1)
    g = torch.arange(-n_steps, n_steps + 1, dtype=torch.float32) * step
    p = probe_plane(model, x, d1[0], d2[0], g, g)
    xy, _ = project_2d(p["features"], "pca")
    return {"a": g, "b": g, "rep": xy, "pred": p["pred"], "label": int(y), "step": step, "n_steps": n_steps}


def plot_plane(view: dict, ax_in, ax_rep, title: str = "", cmap: str = "tab10"):
    """Input grid (left) and its representation mesh (right), points coloured by predicted class."""
    import matplotlib.pyplot as plt

    colors = plt.get_cmap(cmap)(view["pred"].numpy() % 10)
    A, B = np.meshgrid(view["a"].numpy(), view["b"].numpy(), indexing="ij")
    rep = view["rep"].numpy()
    for ax, X, Y in ((ax_in, A, B), (ax_rep, rep[..., 0], rep[..., 1])):
        for i in range(X.shape[0]):
            ax.plot(X[i], Y[i], color="0.6", lw=0.6, zorder=1)
        for j in range(X.shape[1]):
            ax.plot(X[:, j], Y[:, j], color="0.6", lw=0.6, zorder=1)
        ax.scatter(X.ravel(), Y.ravel(), c=colors.reshape(-1, 4), s=14, zorder=2, edgecolors="none")
        c = view["n_steps"]
        ax.scatter([X[c, c]], [Y[c, c]], marker="*", s=120, color="black", zorder=3)
        ax.set(xticks=[], yticks=[])
    ax_in.set_title(f"{title}: input plane", fontsize=9)
    ax_rep.set_title(f"{title}: representation", fontsize=9)
    ax_in.set(xlabel="a (first direction)", ylabel="b (random, orthogonal)")
    ax_rep.set(xlabel="PC 1", ylabel="PC 2")


def explorer_figure(models: dict, x: torch.Tensor, y: torch.Tensor, step: float = 0.02, n_steps: int = 4,
                    kind: str = "fgsm", seed: int = 0):
    """One row per model: input grid and representation mesh. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(models), 2, figsize=(7.2, 3.3 * len(models)), squeeze=False)
    for row, (name, model) in zip(axes, models.items()):
        plot_plane(plane_view(model, x, y, step, n_steps, kind, seed), row[0], row[1], name)
    fig.suptitle(f"ε step {step:g}, {n_steps} steps each way, first axis {kind}", fontsize=10)
    fig.tight_layout()
    return fig


def live_explorer(models: dict, x: torch.Tensor, y: torch.Tensor, steps=(0.005, 0.01, 0.02, 0.05, 0.1),
                  counts=(2, 4, 6, 8)):
    """ipywidgets explorer (needs a running kernel): sliders for the ε step and the step count,
    a direction selector and a choice of which models to compare."""
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
            fig = explorer_figure(sel, x, y, step.value, count.value, kind.value)
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
