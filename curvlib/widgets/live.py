"""Live (ipywidgets, a running kernel) explorers of the input plane and its image in representation space
(the paper's Figure 1), and the live player of one input's walk; :mod:`curvlib.widgets.static` has the
pre-rendered versions that play on the static site.

Around an image x, a grid of inputs x + a·d₁ + b·d₂ (d₁ the FGSM direction, d₂ a random direction
orthogonal to it, both ‖d‖ = √D; a, b ∈ {−n·ε, …, n·ε}) is mapped through the model; the
penultimate features of the grid are projected to 2-D (PCA of the grid's own features) and drawn
as a mesh, coloured by predicted class (with a legend of the classes that occur). Straight mesh
lines = additive response; bent lines = curved representation space. Each mesh's flatness ρ
(:func:`curvlib.measure.mesh.affine_residual`, computed on the full features, not the 2-D view) is
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

import torch

from ..measure.views import WALK_KINDS, eps_per_kind, plane_views, walk_paths
from ..plots.explorer import explorer_figure, walk_figure


def live_explorer(models: dict, x: torch.Tensor, y: torch.Tensor, steps=(0.005, 0.01, 0.02, 0.05, 0.1),
                  counts=(2, 4, 6, 8), names=None, eps_median: dict | None = None):
    """ipywidgets explorer (needs a running kernel): sliders for the ε step and the step count,
    a direction selector and a choice of which models to compare (``names``, ``eps_median``: as
    for :func:`explorer_figure`; pass steps no larger than ¼ of the median ε*, see
    :func:`curvlib.measure.probe.grid_step`)."""
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
            fig = explorer_figure(plane_views(sel, x, y, step.value, count.value, kind.value), step.value,
                                  count.value, kind.value, names=names, eps_median=eps_median)
            display(fig)
            plt.close(fig)

    for w in (step, count, kind, pair):
        w.observe(redraw, names="value")
    redraw()
    return W.VBox([W.HBox([step, count]), W.HBox([kind, pair]), out])


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

    eps = eps_per_kind(eps_max, kinds)
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
            fig, frames[key] = walk_figure(walks[key], names, colors)
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


