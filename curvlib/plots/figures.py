"""Plot functions: each takes the data a compute function returned and draws it on an Axes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from ..measure.calibration import bin_edges, bin_index
from ..measure.random_jump import positive_pairs
from .theme import FAMILY_COLOR, MODEL_COLOR, model_colors, model_dashes, new_axes

MODEL_COLOR.update({"resnet50": MODEL_COLOR["resnet"], "mobilenetv2_100": MODEL_COLOR["mobilenetv2"],
                    "vit_base_patch16_224": MODEL_COLOR["vit"], "swin_tiny_patch4_window7_224": MODEL_COLOR["swin"]})


def intuition_figure(n_steps: int = 12, eps_max: float = 1.2):
    """The paper's two-class intuition, drawn on a toy 2-D representation space.

    Both panels start at the same representation f(x) with the same low confidence (same
    distance to the boundary f₁ = 0). Equal steps ε along one input direction move a CNN's
    representation along a nearly straight line that soon crosses the boundary; a Transformer's
    representation bends away and stays on the correct side for a long travel.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    eps = np.linspace(0, eps_max, n_steps + 1)
    start = np.array([-0.45, -0.6])
    straight = start + eps[:, None] * np.array([0.9, 0.55])
    tau = 0.25
    curved = np.stack([start[0] + 0.38 * (1 - np.exp(-eps / tau)), start[1] + 1.1 * eps], axis=1)
    g1, g2 = np.meshgrid(np.linspace(-1.2, 1.2, 200), np.linspace(-1, 1.2, 200))
    p = 1 / (1 + np.exp(-6 * g1))  # P(class B) of a linear head on f1
    conf = np.maximum(p, 1 - p)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharey=True)
    for ax, path, name, col in [(axes[0], straight, "CNN: straight path", FAMILY_COLOR["CNN"]),
                                (axes[1], curved, "Transformer: curved path", FAMILY_COLOR["Transformer"])]:
        ax.contourf(g1, g2, np.where(g1 < 0, -conf, conf), levels=np.linspace(-1, 1, 21), cmap="RdBu_r",
                    alpha=0.35)
        ax.axvline(0, color="black", linewidth=1.5)
        ax.plot(path[:, 0], path[:, 1], "-o", color=col, markersize=4)
        ax.plot(*start, "k*", markersize=14)
        ax.annotate("f(x)", start, textcoords="offset points", xytext=(-28, -14))
        cross = np.flatnonzero(path[:, 0] > 0)
        txt = f"crosses after {cross[0]} steps" if cross.size else f"still class A after {n_steps} steps"
        ax.set_title(f"{name}\n{txt}", fontsize=10)
        ax.text(-1.1, 1.05, "class A", fontsize=9)
        ax.text(0.6, 1.05, "class B", fontsize=9)
        ax.set(xlim=(-1.2, 1.2), ylim=(-1, 1.2), xlabel="feature 1", xticks=[], yticks=[])
    axes[0].set_ylabel("feature 2")
    fig.suptitle("Same confidence at x, same input steps ε·d — very different distance to the boundary",
                 fontsize=11)
    fig.tight_layout()
    return fig


#: One grey level of an 8-bit image, in pixel units: a per-pixel change below it does not survive saving.
GREY_LEVEL = 1 / 255


def boundary_scatter(df: pd.DataFrame, ax=None, title: str | None = None, n_bins: int = 10,
                     color: str = "#1f77b4", eps_max: float | None = None, log: bool = False):
    """ε* (distance to the boundary) against confidence at x for the crossed samples of one
    :func:`curvlib.measure.travel.travel` frame, with the mean ε* per confidence bin as a black line
    (the paper's Figure 3). Samples that never crossed within ``eps_max`` are drawn as triangles along
    the top edge (outside the ε* scale, so they do not squeeze it). ``log``: ε* on a log axis, with
    :data:`GREY_LEVEL` dotted (the smallest distances vanish on a linear one).
    """
    ax = new_axes(ax, (4, 3.2))
    ok = df[df.status == "crossed"]
    sns.scatterplot(x=ok.confidence.to_numpy(), y=ok.eps.to_numpy(), s=8, alpha=0.35, color=color, linewidth=0,
                    ax=ax)
    never = df[df.status == "never"]
    if len(never) and eps_max is not None:
        ax.scatter(never.confidence, np.full(len(never), 0.98), marker="^", s=16, color="gray", linewidths=0,
                   transform=ax.get_xaxis_transform(), clip_on=False,
                   label=f"never within ε ≤ {eps_max:g} ({len(never)}), at the top")
    if len(ok):
        edges = bin_edges(ok.confidence.to_numpy(), n_bins)  # the calibration bins, lo < conf ≤ hi
        centre = ((edges[:-1] + edges[1:]) / 2)[bin_index(ok.confidence.to_numpy(), edges)]
        sns.lineplot(x=centre, y=ok.eps.to_numpy(), estimator="mean", errorbar=None, color="black", marker="o",
                     markersize=4, label="mean per bin", ax=ax)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    ax.set(xlabel="confidence at x", ylabel="ε* (pixel units)", xlim=(0, 1.02))
    if log:
        ax.set_yscale("log")
        ax.axhline(GREY_LEVEL, color="gray", linestyle=":", linewidth=1, label="one grey level (1/255)")
        ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return ax


def jump_pairs(jumps: dict, num: str = "eps_jump", den: str = "eps_direct", axes=None, colors=None,
               labels=("ε* from x", "ε* after the jump")):
    """Per model, the paired values ``den`` (x axis) against ``num`` (y) of
    :func:`curvlib.measure.random_jump.jump_travel` frames (model → frame; samples where both are finite),
    log axes shared, the diagonal dashed and the median ratio num / den in each title. At most two panels
    per row. Returns the Figure."""
    import matplotlib.pyplot as plt

    names = list(jumps)
    if not names:
        raise ValueError("jump_pairs needs at least one model's jump frame")
    for n in names:
        missing = [c for c in (num, den) if c not in jumps[n].columns]
        if missing:
            raise ValueError(f"{n}: no column(s) {', '.join(missing)} in the jump frame")
    colors = colors or model_colors(names)
    if axes is None:
        rows = (len(names) + 1) // 2
        _, axes = plt.subplots(rows, min(2, len(names)), figsize=(7.5, 3.4 * rows), sharex=True, sharey=True,
                               squeeze=False)
    axes = np.asarray(axes).ravel()
    pairs = {n: positive_pairs(jumps[n], num, den) for n in names}
    lo = min([p[[den, num]].min().min() for p in pairs.values() if len(p)] or [1e-3])
    hi = max([p[[den, num]].max().max() for p in pairs.values() if len(p)] or [1.0])
    for ax, name in zip(axes, names):
        p = pairs[name]
        ax.scatter(p[den], p[num], s=6, alpha=0.4, color=colors[name], linewidths=0)
        ax.plot([lo, hi], [lo, hi], "--", color="gray", lw=1)
        ratio = f"median ratio {p.ratio.median():.2f}, {len(p)} pairs" if len(p) else "no pairs"
        ax.set(xscale="log", yscale="log", title=f"{name}: {ratio}", xlabel=labels[0], ylabel=labels[1])
        ax.title.set_fontsize(9)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def theta_at_step(sweeps: dict, delta: float, colors=None, limits: dict | None = None):
    """θ along the path at one step Δ of a :func:`curvlib.experiments.theta.theta_step_experiment` sweep
    (model → frame): left θ in degrees, right θ/Δ in radians per unit ε (the turning rate a smooth
    path would settle on), median over images with the interquartile band, one colour per model.
    ``limits``: {"theta": (lo, hi), "rate": (lo, hi)} to keep the axes fixed while Δ changes
    (default: this Δ's range). Returns the Figure."""
    import matplotlib.pyplot as plt

    data = pd.concat([df.assign(model=m) for m, df in sweeps.items()], ignore_index=True)
    if not np.isclose(data.delta, delta).any():
        have = ", ".join(f"{d:g}" for d in sorted(data.delta.unique()))
        raise ValueError(f"no step Δ = {delta:g} in the sweep (have {have})")
    at = data[np.isclose(data.delta, delta)].assign(deg=lambda d: np.degrees(d.theta), rate=lambda d: d.theta / d.delta)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharex=True)
    palette = colors or model_colors(sweeps)
    for ax, col, label in zip(axes, ("deg", "rate"), ("θ (degrees)", "θ / Δ (rad per unit ε)")):
        sns.lineplot(data=at, x="eps", y=col, hue="model", palette=palette, estimator="median",
                     errorbar=("pi", 50), ax=ax, legend=ax is axes[0])
        ax.set(yscale="log", xlabel="ε along the path", ylabel=label)
        key = "theta" if col == "deg" else "rate"
        if limits and key in limits:
            ax.set_ylim(*limits[key])
    axes[0].set_title(f"step Δ = {delta:g}", fontsize=10)
    fig.tight_layout()
    return fig


def theta_step_limits(sweeps: dict) -> dict:
    """Axis limits of :func:`theta_at_step` covering every Δ of the sweeps (positive values only)."""
    if not sweeps:
        raise ValueError("theta_step_limits needs at least one model's sweep")
    data = pd.concat(list(sweeps.values()), ignore_index=True)
    deg, rate = np.degrees(data.theta), data.theta / data.delta
    pos = lambda v: v[np.isfinite(v) & (v > 0)]  # noqa: E731
    return {"theta": (pos(deg).quantile(0.05) / 2, pos(deg).max() * 2),
            "rate": (pos(rate).quantile(0.05) / 2, pos(rate).max() * 2)}


def status_text(status: str, after_jump: bool = False, eps_max: float = 1.0) -> str:
    """Words for a travel ``status`` in a figure: 'crossed', 'no crossing up to ε = 1', 'wrong at the
    start' (``after_jump``: 'wrong right after the jump' — the jump alone changed the class)."""
    words = {"crossed": "crossed", "never": f"no crossing up to ε = {eps_max:g}",
             "misclassified_at_start": "wrong right after the jump" if after_jump else "wrong at the start"}
    if status not in words:
        raise ValueError(f"unknown travel status {status!r}; expected one of {', '.join(words)}")
    return words[status]


def image_row(images, titles=None, axes=None, cmap="gray"):
    """Show images [N, C, H, W] in [0, 1] (grey or RGB) on a row of axes, one per image."""
    import matplotlib.pyplot as plt

    images = images.detach().cpu() if hasattr(images, "detach") else images
    if axes is None:
        _, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 1.9))
    for i, (ax, im) in enumerate(zip(np.atleast_1d(axes), images)):
        arr = np.asarray(im).transpose(1, 2, 0)
        ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap=cmap, vmin=0, vmax=1)
        ax.set(xticks=[], yticks=[])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    return axes


def theta_bands(summary: pd.DataFrame, ax=None, title: str | None = None, x=None, degrees: bool = True):
    """The paper's Figure 5: θ(n) per step, min–max light band, Q1–Q3 dark band, median line,
    mean as red dots. ``summary`` comes from :func:`curvlib.measure.angles.theta_summary`;
    ``x`` optionally replaces step numbers (e.g. the ε of each step)."""
    ax = new_axes(ax, (4.2, 3))
    k = 180 / np.pi if degrees else 1.0
    xs = summary["step"].to_numpy() if x is None else np.asarray(x)
    ax.fill_between(xs, summary["min"] * k, summary["max"] * k, color="0.85", lw=0, label="min–max")
    ax.fill_between(xs, summary["q1"] * k, summary["q3"] * k, color="0.55", lw=0, label="Q1–Q3")
    ax.plot(xs, summary["median"] * k, color="black", lw=1.2, label="median")
    ax.plot(xs, summary["mean"] * k, "o", color="#d62728", ms=2.5, label="mean")
    ax.set(xlabel="step n" if x is None else "ε", ylabel="θ (degrees)" if degrees else "θ (rad)")
    ax.update_datalim([(xs[0], 0)])  # θ from 0, keeping autoscale on (shared y axes take every panel's max)
    ax.autoscale_view()
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def interval_lines(data: pd.DataFrame, x: str, y: str, lo: str, hi: str, ax=None, hue: str = "model",
                   palette: dict | None = None, **kw):
    """``y`` against ``x`` from a tidy frame, one line per ``hue`` value in its model colour
    (:func:`model_colors`), with precomputed intervals [``lo``, ``hi``] (e.g. bootstrap) as error bars;
    ``kw`` goes to :func:`seaborn.lineplot` (e.g. ``style``)."""
    ax = new_axes(ax, (4.5, 3.4))
    palette = palette or model_colors(data[hue].unique())
    sns.lineplot(data=data, x=x, y=y, hue=hue, palette=palette, marker="o", ax=ax, **kw)
    for name, g in data.groupby(hue, sort=False):
        ax.errorbar(g[x], g[y], yerr=[g[y] - g[lo], g[hi] - g[y]], fmt="none", color=palette[name], capsize=3,
                    lw=1)
    return ax


def dynamics_figure(dyn, axes=None):
    """Curvedness against training epoch: ``dyn`` is :func:`curvlib.claims.ablations.training_dynamics`
    frames concatenated (columns model, epoch, theta_*, ece, sece, eps_median, accuracy).
    Four panels (2 × 2, shared epoch axis), one colour per model: mean θ with its 95 % bootstrap
    interval and the Q1–Q3 band; ECE and sECE; median ε* (all images, confidence ≤ 0.9); accuracy."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
    axes = np.ravel(axes)
    a_th, a_cal, a_eps, a_acc = axes
    pal = model_colors(dyn.model.unique())
    interval_lines(dyn, "epoch", "theta_mean", "theta_ci_lo", "theta_ci_hi", ax=a_th, palette=pal)
    for name, g in dyn.sort_values("epoch").groupby("model", sort=False):
        a_th.fill_between(g.epoch, g.theta_q1, g.theta_q3, color=pal[name], alpha=0.15, lw=0)
    for ax, measures in ((a_cal, {"ece": "ECE", "sece": "sECE"}),
                         (a_eps, {"eps_median": "all", "eps_median_low": "conf ≤ 0.9"})):
        long = dyn.melt(["model", "epoch"], list(measures), var_name="measure")
        sns.lineplot(data=long.assign(measure=long.measure.map(measures)), x="epoch", y="value", hue="model",
                     style="measure", palette=pal, markers=True, ax=ax)
    sns.lineplot(data=dyn, x="epoch", y="accuracy", hue="model", palette=pal, marker="o", ax=a_acc)
    a_cal.axhline(0, color="k", lw=0.6)
    for ax, t, yl in [(a_th, "θ along FGSM, |ε| > 0.01\n(mean ± 95 % CI, band Q1–Q3)", "θ (degrees)"),
                      (a_cal, "calibration", "ECE / sECE"), (a_eps, "median ε* (FGSM)", "ε* (pixels)"),
                      (a_acc, "test accuracy", "accuracy")]:
        ax.set(title=t, xlabel="epoch", ylabel=yl, xscale="log")
    epochs = sorted(dyn.epoch.unique())
    ticks = epochs[:1]
    for e in epochs[1:]:  # on the log axis, only labels far enough apart not to collide
        if e >= 1.4 * ticks[-1]:
            ticks.append(e)
    for ax in axes:
        ax.set_xticks(ticks, [str(e) for e in ticks])
        ax.minorticks_off()
    a_eps.set_yscale("log")
    return axes


def swap_figure(table, axes=None, boundary=None):
    """Component swaps: mean θ and median ε* per row of ``ablations.component_swaps`` as bars with
    95 % bootstrap intervals, one colour per model (:func:`model_colors`; a parent's other seeds
    hatched, labelled by seed); with ``boundary`` (``ablations.swap_boundary``) a wide panel below: median ε* per
    confidence band, one line per row (colour: model, line style: parent / replicate / variant)."""
    import matplotlib.pyplot as plt

    if axes is None:
        h = 0.5 * len(table) + 1.2
        fig = plt.figure(figsize=(9, h if boundary is None else h + 3.8), layout="constrained")
        grid = [["theta", "eps"]] + ([] if boundary is None else [["bnd", "bnd"]])
        ax = fig.subplot_mosaic(grid, height_ratios=[h, 3.8][:len(grid)])
        axes = [ax[k] for k in ("theta", "eps", "bnd") if k in ax]
    pal = model_colors(table.model.unique())
    ticks = [lab if r != "variant" else f"{lab}\n{s}" for lab, r, s in zip(table.label, table.role, table.swap)]
    y = np.arange(len(table))
    for ax, col, title, unit in ((axes[0], "theta", "mean θ along FGSM, |ε| > 0.01", "θ (degrees)"),
                                 (axes[1], "eps", "median ε* (FGSM)", "ε* (pixels)")):
        mid = table[f"{col}_mean" if col == "theta" else "eps_median"]
        ax.barh(y, mid, xerr=[mid - table[f"{col}_ci_lo"], table[f"{col}_ci_hi"] - mid], capsize=3,
                color=[pal[m] for m in table.model], edgecolor="white", alpha=0.85,
                hatch=["//" if r == "replicate" else "" for r in table.role])
        ax.set(title=f"{title}\n(95 % bootstrap CI)", xlabel=unit, ylim=(len(table) - 0.5, -0.5))
        ax.set_yticks(y, ticks if ax is axes[0] else [])
    if boundary is not None:
        rows = table.set_index("label")[["model", "role"]]
        b = boundary.join(rows, on="label")
        sns.lineplot(data=b.assign(band=b.band.astype(str)), x="band", y="median", hue="model", style="role",
                     palette=pal, dashes={"parent": "", "replicate": (1, 1.5), "variant": (4, 1.5)}, marker="o",
                     sort=False, ax=axes[2])
        axes[2].set(title="median ε* (FGSM) by confidence", xlabel="confidence band", ylabel="ε* (pixels)",
                    yscale="log")
        sns.move_legend(axes[2], "center left", bbox_to_anchor=(1.01, 0.5))
    return axes


def _model_lines(data: pd.DataFrame, x: str, y: str, ax, **kw):
    """One line per model of a tidy frame: its colour from :func:`model_colors`, dashed for variants."""
    names = list(dict.fromkeys(data.model))
    sns.lineplot(data=data, x=x, y=y, hue="model", style="model", palette=model_colors(names),
                 dashes=model_dashes(names), markers=dict.fromkeys(names, "o"), markersize=4, ax=ax, **kw)
    ax.grid(alpha=0.3, which="both")
    return ax


def step_sweep_figure(steps: pd.DataFrame, omega: dict | None = None, axes=None):
    """θ against the step Δ of the local measure (``claims.curvature.step_table``): left mean θ in degrees,
    right θ/Δ in radians per unit ε, with each model's median step-free turning rate ω (``omega``:
    model → value) as a dotted line of its colour: a smooth path's θ/Δ settles on ω as Δ → 0."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharex=True)
    _model_lines(steps, "delta", "mean", axes[0])
    _model_lines(steps, "delta", "rate", axes[1], legend=False)
    pal = model_colors(dict.fromkeys(steps.model))
    for name, w in (omega or {}).items():
        if name in pal and w > 0:  # ω = 0 (piecewise linear) has no place on a log axis
            axes[1].axhline(w, color=pal[name], ls=":", lw=1)
    axes[0].set(xscale="log", yscale="log", xlabel="step Δ", ylabel="mean θ (degrees)")
    axes[1].set(xscale="log", yscale="log", xlabel="step Δ", ylabel="mean θ / Δ (rad per unit ε)")
    sns.move_legend(axes[0], "best", ncol=2)
    return axes


def block_omega_figure(blocks: pd.DataFrame, ax=None):
    """Median step-free turning rate ω of every residual block's output against the block's
    relative depth 0 … 1 (``claims.curvature.block_omega_table``), one line per model."""
    ax = new_axes(ax, (6, 3.8))
    _model_lines(blocks, "depth", "omega_median", ax)
    ax.set(yscale="log", xlabel="block (relative depth)", ylabel="median ω (rad per unit ε)")
    sns.move_legend(ax, "best", ncol=2)
    return ax


def component_heatmap(values: pd.DataFrame, ax=None, title: str | None = None, vmin: float = 1e-7,
                      vmax: float = 1.0, split: int | None = None):
    """Components (rows) × models (columns) of positive values (e.g. median bends) on a log colour
    scale, each cell annotated; model labels in their colours (:func:`model_colors`); missing cells blank ("–").
    ``split``: draw a separator before that column (e.g. between the models and their variants)."""
    from matplotlib.colors import LogNorm

    ax = new_axes(ax, (1.1 * values.shape[1] + 2, 0.42 * values.shape[0] + 1.2))
    v = values.to_numpy(dtype=float)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    im = ax.imshow(np.ma.masked_invalid(np.clip(v, vmin, vmax)), cmap="magma_r", norm=norm, aspect="auto")
    for (i, j), val in np.ndenumerate(v):
        dark = np.isfinite(val) and norm(np.clip(val, vmin, vmax)) > 0.6
        ax.text(j, i, "–" if not np.isfinite(val) else f"{val:.1e}", ha="center", va="center", fontsize=7.5,
                color="white" if dark else "black")
    ax.set_xticks(range(v.shape[1]), values.columns, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    for lab, c in zip(ax.get_xticklabels(), model_colors(values.columns).values()):
        lab.set_color(c)
    ax.set_yticks(range(v.shape[0]), values.index, fontsize=8)
    if split is not None:
        ax.axvline(split - 0.5, color="black", linewidth=1.5)
    if title:
        ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    return ax
