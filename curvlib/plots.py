"""Plot functions: each takes the data a compute function returned and draws it on an Axes."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import models

FAMILY_COLOR = {"CNN": "#1f77b4", "Transformer": "#d62728"}


def model_color(name: str) -> str:
    return FAMILY_COLOR.get(models.family(name, default=None), "#444444")


#: Distinct colours per model within a family's hue (blues/greens for CNNs, reds/oranges for Transformers).
FAMILY_PALETTE = {"CNN": ("#1f77b4", "#17becf", "#2ca02c", "#0b3d91"),
                  "Transformer": ("#d62728", "#ff7f0e", "#9467bd", "#8c564b")}


def model_colors(names) -> dict[str, str]:
    """One distinct colour per model for figures that compare models: the models of a family get
    that family's palette in order (so a CNN is always bluish, a Transformer reddish); unknown
    families get greys."""
    used: dict[str, int] = {}
    out = {}
    for name in names:
        fam = models.family(name, default=None)
        pal = FAMILY_PALETTE.get(fam, ("#444444", "#888888", "#bbbbbb"))
        i = used.get(fam, 0)
        used[fam] = i + 1
        out[name] = pal[i % len(pal)]
    return out


def to_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure (for widgets whose content must survive a static build)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _axes(ax, figsize=(4, 4)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


def reliability_diagram(table: pd.DataFrame, ax=None, title: str | None = None, color: str = "#1f77b4",
                        show_stats: bool = True):
    """Accuracy per confidence bin as bars whose opacity is the bin's share of the data (as in the
    paper), the diagonal of perfect calibration, the gap to each bin's mean confidence, and
    ECE / sECE in the corner. ``table`` comes from :func:`curvlib.calibration.calibration_table`.
    """
    from matplotlib.colors import to_rgba

    from .calibration import ece, sece

    missing = {"lo", "hi", "share", "confidence", "accuracy", "is_empty"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks columns {sorted(missing)}; pass calibration_table(...)'s result")
    ax = _axes(ax)
    t = table[~table["is_empty"]]
    share = t["share"].to_numpy()
    alpha = 0.15 + 0.85 * share / share.max() if len(t) else []
    width = (t["hi"] - t["lo"]).to_numpy()
    ax.bar(t["lo"], t["accuracy"], width=width, align="edge", color=[to_rgba(color, a) for a in alpha],
           edgecolor=color, linewidth=0.8, label="accuracy")
    # gap between accuracy and mean confidence, drawn at each bin's centre
    centre = (t["lo"] + t["hi"]).to_numpy() / 2
    ax.vlines(centre, t["accuracy"], t["confidence"], colors="black", linewidth=1.2, label="gap")
    ax.plot(centre, t["confidence"], "k_", markersize=8)
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1, label="perfect")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", aspect="equal")
    if title:
        ax.set_title(title)
    if show_stats:
        ax.text(0.04, 0.96, f"ECE  {ece(table):.4f}\nsECE {sece(table):+.4f}", transform=ax.transAxes,
                va="top", ha="left", family="monospace", fontsize=9,
                bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))
    return ax


def confidence_histogram(confidence, correct=None, ax=None, title: str | None = None, bins: int = 20,
                         color: str = "#1f77b4"):
    """Histogram of confidences (share of samples), split into correct / wrong when given."""
    ax = _axes(ax, (4, 3))
    conf = np.asarray(confidence.detach().cpu() if hasattr(confidence, "detach") else confidence, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    w = np.full(conf.shape, 1.0 / max(1, conf.size))
    if correct is None:
        ax.hist(conf, bins=edges, weights=w, color=color)
    else:
        corr = np.asarray(correct.detach().cpu() if hasattr(correct, "detach") else correct, dtype=bool)
        ax.hist([conf[corr], conf[~corr]], bins=edges, weights=[w[corr], w[~corr]], stacked=True,
                color=[color, "#bbbbbb"], label=["correct", "wrong"])
        ax.legend(loc="upper left", fontsize=8)
    ax.set(xlim=(0, 1), xlabel="confidence", ylabel="share of samples")
    ax.set_yscale("log")
    if title:
        ax.set_title(title)
    return ax


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


def boundary_scatter(df: pd.DataFrame, ax=None, title: str | None = None, n_bins: int = 10,
                     color: str = "#1f77b4", eps_max: float | None = None):
    """ε* (distance to the boundary) against confidence at x for the crossed samples of one
    :func:`curvlib.travel.travel` frame, with the mean ε* per confidence bin as a black line
    (the paper's Figure 3). Samples that never crossed are drawn as triangles at ``eps_max``.
    """
    ax = _axes(ax, (4, 3.2))
    ok = df[df.status == "crossed"]
    ax.scatter(ok.confidence, ok.eps, s=6, alpha=0.35, color=color, linewidths=0)
    never = df[df.status == "never"]
    if len(never) and eps_max is not None:
        ax.scatter(never.confidence, np.full(len(never), eps_max), marker="^", s=10, color="gray",
                   label=f"never within ε ≤ {eps_max:g} ({len(never)})")
        ax.legend(loc="upper left", fontsize=7)
    edges = np.linspace(0, 1, n_bins + 1)
    if len(ok):
        b = np.clip(np.digitize(ok.confidence, edges[1:-1], right=True), 0, n_bins - 1)
        means = pd.Series(ok.eps.to_numpy()).groupby(b).mean()
        centres = (edges[:-1] + edges[1:]) / 2
        ax.plot(centres[means.index], means.to_numpy(), "k-o", ms=3, lw=1.5, label="mean per bin")
    ax.set(xlabel="confidence at x", ylabel="ε* (pixel units)", xlim=(0, 1.02))
    if title:
        ax.set_title(title, fontsize=10)
    return ax


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
    mean as red dots. ``summary`` comes from :func:`curvlib.trajectory.theta_summary`;
    ``x`` optionally replaces step numbers (e.g. the ε of each step)."""
    ax = _axes(ax, (4.2, 3))
    k = 180 / np.pi if degrees else 1.0
    xs = summary["step"].to_numpy() if x is None else np.asarray(x)
    ax.fill_between(xs, summary["min"] * k, summary["max"] * k, color="0.85", lw=0, label="min–max")
    ax.fill_between(xs, summary["q1"] * k, summary["q3"] * k, color="0.55", lw=0, label="Q1–Q3")
    ax.plot(xs, summary["median"] * k, color="black", lw=1.2, label="median")
    ax.plot(xs, summary["mean"] * k, "o", color="#d62728", ms=2.5, label="mean")
    ax.set(xlabel="step n" if x is None else "ε", ylabel="θ (degrees)" if degrees else "θ (rad)")
    ax.set_ylim(bottom=0)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def dynamics_figure(dyn, axes=None):
    """Curvedness against training epoch: ``dyn`` is :func:`curvlib.ablations.training_dynamics`
    frames concatenated (columns model, epoch, theta_*, ece, sece, eps_median, accuracy).
    Four panels: θ (mean with its 95 % bootstrap interval, Q1–Q3 band), ECE and sECE, median ε*, accuracy."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    a_th, a_cal, a_eps, a_acc = axes
    for name, g in dyn.groupby("model", sort=False):
        g = g.sort_values("epoch")
        c = model_color(name)
        a_th.fill_between(g.epoch, g.theta_q1, g.theta_q3, color=c, alpha=0.2)
        a_th.errorbar(g.epoch, g.theta_mean, yerr=[g.theta_mean - g.theta_ci_lo, g.theta_ci_hi - g.theta_mean],
                      fmt="o-", capsize=2, color=c, label=f"{name} mean ± 95 % CI (band Q1–Q3)")
        a_cal.plot(g.epoch, g.ece, "o-", color=c, label=f"{name} ECE")
        a_cal.plot(g.epoch, g.sece, "s--", color=c, label=f"{name} sECE")
        a_eps.plot(g.epoch, g.eps_median, "o-", color=c, label=f"{name} all")
        a_eps.plot(g.epoch, g.eps_median_low, "s--", color=c, label=f"{name} conf ≤ 0.9")
        a_acc.plot(g.epoch, g.accuracy, "o-", color=c, label=name)
    a_cal.axhline(0, color="k", lw=0.6)
    for ax, t, yl in [(a_th, "θ along FGSM, |ε| > 0.01", "degrees"), (a_cal, "calibration", "ECE / sECE"),
                      (a_eps, "median ε* (FGSM)", "ε (pixels)"), (a_acc, "test accuracy", "accuracy")]:
        ax.set(title=t, xlabel="epoch", ylabel=yl, xscale="log")
        ax.legend(fontsize=7)
    a_eps.set_yscale("log")
    return axes


def swap_figure(table, axes=None, boundary=None):
    """Component swaps: mean θ and median ε* per row of ``ablations.component_swaps`` with 95 %
    bootstrap intervals, coloured by parent (the parent's other seeds hatched); with ``boundary``
    (``ablations.swap_boundary``) a third panel: median ε* per confidence band, one line per row."""
    import textwrap

    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2 if boundary is None else 3, figsize=(11 if boundary is None else 16, 3.6))
    labels = [lab if r != "variant" else f"{lab}\n" + textwrap.fill(s, 16)
              for lab, r, s in zip(table.label, table.role, table.swap)]
    colors = [model_color(p) for p in table.parent]
    hatch = ["//" if r == "replicate" else "" for r in table.role]
    x = list(range(len(table)))
    for ax, col, title, unit in ((axes[0], "theta", "mean θ along FGSM, |ε| > 0.01", "degrees"),
                                 (axes[1], "eps", "median ε* (FGSM)", "ε (pixels)")):
        mid = table[f"{col}_mean" if col == "theta" else "eps_median"]
        err = [mid - table[f"{col}_ci_lo"], table[f"{col}_ci_hi"] - mid]
        ax.bar(x, mid, color=colors, yerr=err, capsize=3, alpha=0.8, hatch=hatch)
        ax.set(title=f"{title} (95 % bootstrap CI)", ylabel=unit)
        ax.set_xticks(x, labels, fontsize=7, rotation=35, ha="right", rotation_mode="anchor")
    if boundary is not None:
        role_of = table.set_index("label").role
        n_variants: dict[str, int] = {}
        for label, g in boundary.groupby("label", sort=False):
            role, parent = role_of.get(label, "variant"), g.parent.iloc[0]
            if role != "variant":
                ls = "-" if role == "parent" else ":"
            else:  # the family's variants: dashed, dash-dot, …
                n_variants[parent] = n_variants.get(parent, -1) + 1
                ls = ["--", "-.", (0, (5, 1, 1, 1, 1, 1))][n_variants[parent] % 3]
            axes[2].plot(g.band.astype(str), g["median"], linestyle=ls, marker="o", color=model_color(parent),
                         label=label)
        axes[2].set(title="median ε* (FGSM) by confidence", xlabel="confidence band", ylabel="ε (pixels)",
                    yscale="log")
        axes[2].tick_params(axis="x", labelsize=7)
        axes[2].legend(fontsize=7)
    return axes


def model_style(name: str, models_in_figure) -> dict:
    """Line style of ``name`` among ``models_in_figure``: its colour from :func:`model_colors`,
    dashed for component-swap variants."""
    fam = models.family(name, default=None)
    variant = fam is not None and models.spec(name).parent is not None
    return {"color": model_colors(list(models_in_figure))[name], "ls": "--" if variant else "-"}


def step_sweep_figure(steps: pd.DataFrame, omega: dict | None = None, axes=None):
    """θ against the step Δ of the local measure (``trajectory.step_table``): left mean θ in degrees,
    right θ/Δ in radians per unit ε, with each model's median step-free turning rate ω (``omega``:
    model → value) as a dotted line of its colour: a smooth path's θ/Δ settles on ω as Δ → 0."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(dict.fromkeys(steps.model))
    for name in names:
        g, st = steps[steps.model == name], model_style(name, names)
        axes[0].plot(g.delta, g["mean"], marker="o", ms=3, label=name, **st)
        axes[1].plot(g.delta, g["rate"], marker="o", ms=3, label=name, **st)
        if omega is not None and omega.get(name, 0) > 0:  # ω = 0 (piecewise linear) has no place on a log axis
            axes[1].axhline(omega[name], color=st["color"], ls=":", lw=1)
    axes[0].set(xscale="log", yscale="log", xlabel="step Δ", ylabel="mean θ (degrees)")
    axes[1].set(xscale="log", yscale="log", xlabel="step Δ", ylabel="mean θ / Δ (rad per unit ε)")
    axes[0].legend(fontsize=7, ncol=2)
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    return axes


def block_omega_figure(results: dict, ax=None):
    """Median step-free turning rate ω of every residual block's output (from
    ``trajectory.curvature_experiment`` results, model → result), one line per model, blocks in
    forward order (relative depth 0 … 1)."""
    ax = _axes(ax, (5, 3.4))
    names = list(results)
    for name in names:
        r = results[name]
        bw = np.nanmedian(r["block_omega"].double().numpy().reshape(len(r["block_names"]), -1), axis=1)
        depth = np.linspace(0, 1, len(bw)) if len(bw) > 1 else np.zeros(len(bw))
        ax.plot(depth, bw, marker="o", ms=3, label=name, **model_style(name, names))
    ax.set(yscale="log", xlabel="block (relative depth)", ylabel="median ω (rad per unit ε)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")


def component_heatmap(values: pd.DataFrame, ax=None, title: str | None = None, vmin: float = 1e-7,
                      vmax: float = 1.0, split: int | None = None):
    """Components (rows) × models (columns) of positive values (e.g. median bends) on a log colour
    scale, each cell annotated; model labels coloured by family; missing cells blank ("–").
    ``split``: draw a separator before that column (e.g. between the models and their variants)."""
    from matplotlib.colors import LogNorm

    ax = _axes(ax, (1.1 * values.shape[1] + 2, 0.42 * values.shape[0] + 1.2))
    v = values.to_numpy(dtype=float)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    im = ax.imshow(np.ma.masked_invalid(np.clip(v, vmin, vmax)), cmap="magma_r", norm=norm, aspect="auto")
    for (i, j), val in np.ndenumerate(v):
        dark = np.isfinite(val) and norm(np.clip(val, vmin, vmax)) > 0.6
        ax.text(j, i, "–" if not np.isfinite(val) else f"{val:.1e}", ha="center", va="center", fontsize=7.5,
                color="white" if dark else "black")
    ax.set_xticks(range(v.shape[1]), values.columns, rotation=30, ha="right", rotation_mode="anchor", fontsize=8)
    for lab in ax.get_xticklabels():
        lab.set_color(model_color(lab.get_text()))
    ax.set_yticks(range(v.shape[0]), values.index, fontsize=8)
    if split is not None:
        ax.axvline(split - 0.5, color="black", linewidth=1.5)
    if title:
        ax.set_title(title, fontsize=10)
    ax.figure.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    return ax
