"""Plot functions on small constructed tidy frames: one line / bar colour per model, at most two panels per row."""
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex

from curvlib import plots
from curvlib.claims.curvature import block_omega_table

MODELS = ["resnet", "mobilenetv2", "vit", "swin"]


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def drawn(ax):
    """The data lines of an Axes (not seaborn's empty legend lines, not error bar caps)."""
    return [ln for ln in ax.lines if len(ln.get_xdata()) and ln.get_linestyle() != "None"]


def colours(lines):
    return [to_hex(ln.get_color()) for ln in lines]


def check_layout(axes):
    fig = np.ravel(axes)[0].figure
    assert fig.get_figwidth() <= 9
    assert all(ax.get_subplotspec().get_geometry()[1] <= 2 for ax in fig.axes if ax.get_subplotspec())


def test_importing_curvlib_applies_no_theme():
    """Importing the library changes no matplotlib setting: a chapter applies the theme itself."""
    code = ("import matplotlib; before = dict(matplotlib.rcParams)\n"
            "import curvlib.plots, curvlib.widgets, curvlib.claims\n"
            "changed = [k for k, v in matplotlib.rcParams.items() if before[k] != v]\n"
            "assert not changed, changed\n"
            "curvlib.plots.use_theme(); assert not matplotlib.rcParams['axes.spines.top']")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert r.returncode == 0, r.stderr


def test_theme_is_idempotent():
    plots.use_theme()
    first = dict(matplotlib.rcParams)
    plots.use_theme()
    assert dict(matplotlib.rcParams) == first
    assert not matplotlib.rcParams["axes.spines.top"] and matplotlib.rcParams["figure.dpi"] == 100


def test_model_colours_distinct_within_a_family():
    cols = plots.model_colors(MODELS + ["resnet_gelu"])
    assert len(set(cols.values())) == 5 and cols["resnet_gelu"] in plots.FAMILY_PALETTE["CNN"]


def test_dynamics_figure_one_colour_per_model():
    dyn = pd.DataFrame([{"model": m, "epoch": e, "theta_mean": t, "theta_ci_lo": t - 1, "theta_ci_hi": t + 1,
                         "theta_q1": t - 2, "theta_q3": t + 2, "ece": 0.05, "sece": -0.02, "eps_median": 0.05 * e,
                         "eps_median_low": 0.02 * e, "accuracy": 0.5 + 0.04 * e}
                        for m, t in (("resnet", 10.0), ("vit", 5.0)) for e in (1, 2, 5, 10)])
    axes = plots.dynamics_figure(dyn)
    check_layout(axes)
    want = [plots.model_colors(["resnet", "vit"])[m] for m in ("resnet", "vit")]
    assert colours(drawn(axes[3])) == want  # accuracy: one line per model
    assert colours(drawn(axes[0])) == want and len(axes[0].collections) >= 2  # θ: Q1–Q3 bands (+ error bars)
    assert len(drawn(axes[1])) == 4 + 1  # ECE and sECE per model, and sECE = 0
    assert axes[0].get_legend() is not None


def test_swap_figure_bars_and_lines_per_model():
    rows = [("resnet", "resnet", "parent", "— (parent)", "resnet"),
            ("resnet", "resnet", "replicate", "— (parent, seed 1)", "resnet seed 1"),
            ("resnet_gelu", "resnet", "variant", "ReLU → GELU", "resnet_gelu"),
            ("vit", "vit", "parent", "— (parent)", "vit")]
    table = pd.DataFrame([{"model": m, "parent": p, "role": r, "swap": s, "label": lab, "theta_mean": 10.0 + i,
                           "theta_ci_lo": 9.0 + i, "theta_ci_hi": 11.0 + i, "eps_median": 0.05, "eps_ci_lo": 0.04,
                           "eps_ci_hi": 0.06} for i, (m, p, r, s, lab) in enumerate(rows)])
    bands = ["[0, 0.5]", "(0.5, 0.9]", "(0.9, 1]"]
    boundary = pd.DataFrame([{"label": lab, "parent": p, "band": b, "median": 0.01 * (j + 1), "n": 5}
                             for _, p, _, _, lab in rows for j, b in enumerate(bands)])
    axes = plots.swap_figure(table, boundary=boundary)
    check_layout(axes)
    pal = plots.model_colors(["resnet", "resnet_gelu", "vit"])
    assert [to_hex(p.get_facecolor()[:3]) for p in axes[0].patches] == [pal[m] for m in table.model]
    assert [p.get_hatch() or "" for p in axes[0].patches] == ["", "//", "", ""]
    lines = drawn(axes[2])
    assert len(lines) == 4 and set(colours(lines)) == set(pal.values())
    assert axes[2].get_legend() is not None


def test_step_sweep_and_block_figures_one_line_per_model():
    names = ["resnet", "resnet_gelu", "vit"]
    d = np.array([1e-4, 1e-3, 1e-2])
    steps = pd.DataFrame({"model": np.repeat(names, 3), "delta": np.tile(d, 3), "mean": np.tile(30 * d, 3),
                          "rate": np.tile([1.0, 1.1, 1.3], 3)})
    axes = plots.step_sweep_figure(steps, omega={"resnet": 0.0, "resnet_gelu": 1.0, "vit": 2.0})
    check_layout(axes)
    pal = plots.model_colors(names)
    assert colours(drawn(axes[0])) == [pal[n] for n in names]
    assert [ln.get_linestyle() for ln in drawn(axes[0])] == ["-", "--", "-"]  # the variant dashed
    assert len(drawn(axes[1])) == 3 + 2  # lines + ω of the two smooth models (ω = 0 is left out)
    res = {n: {"block_names": [f"b{i}" for i in range(k)], "block_omega": torch.rand(k, 2, 5)}
           for n, k in (("resnet", 4), ("vit", 6))}
    blocks = block_omega_table(res)
    assert blocks.groupby("model", sort=False).depth.agg(["min", "max", "size"]).to_numpy().tolist() == [
        [0, 1, 4], [0, 1, 6]]
    ax = plots.block_omega_figure(blocks)
    assert colours(drawn(ax)) == list(plots.model_colors(["resnet", "vit"]).values())


def test_boundary_scatter_and_interval_lines():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"confidence": rng.uniform(0.3, 1, 200), "eps": rng.uniform(0, 0.2, 200),
                       "status": ["crossed"] * 190 + ["never"] * 10})
    ax = plots.boundary_scatter(df, color="#2ca02c", eps_max=0.3)
    (mean,) = drawn(ax)
    assert to_hex(mean.get_color()) == "#000000" and len(mean.get_xdata()) <= 10
    assert len(ax.collections) == 2 and ax.get_legend() is not None  # crossed dots, never triangles
    ax = plots.boundary_scatter(df, eps_max=0.3, log=True)
    assert ax.get_yscale() == "log" and any(list(ln.get_ydata()) == [1 / 255, 1 / 255] for ln in ax.lines)
    assert ax.get_yscale() == "log" and "grey level" in " ".join(t.get_text() for t in ax.get_legend().texts)
    sens = pd.DataFrame({"model": np.repeat(MODELS, 2), "x": np.tile([1, 2], 4), "y": 1.0, "lo": 0.9, "hi": 1.2})
    ax = plots.interval_lines(sens, "x", "y", "lo", "hi")
    assert colours(drawn(ax)) == list(plots.model_colors(MODELS).values())
    assert len(ax.containers) == 4  # one set of error bars per model


def test_heatmap_labels_in_model_colours():
    grid = pd.DataFrame(np.full((2, 4), 1e-3), index=["attention", "gelu"], columns=MODELS)
    ax = plots.component_heatmap(grid)
    assert [to_hex(t.get_color()) for t in ax.get_xticklabels()] == list(plots.model_colors(MODELS).values())


def test_theta_bands_on_shared_axes_show_every_panel():
    fig, axes = plt.subplots(1, 2, sharey=True)
    for ax, top in zip(axes, (0.1, 0.5)):
        s = pd.DataFrame({"step": [1, 2, 3], "min": 0.01, "q1": 0.02, "median": 0.03, "q3": 0.04, "max": top,
                          "mean": 0.03})
        plots.theta_bands(s, ax=ax)
    assert axes[0].get_ylim()[0] <= 0 and axes[0].get_ylim()[1] >= np.degrees(0.5)


def test_status_text_words_and_unknown_status():
    from curvlib import plots

    assert plots.status_text("never") == "no crossing up to ε = 1"
    assert plots.status_text("misclassified_at_start") == "wrong at the start"
    assert plots.status_text("misclassified_at_start", after_jump=True) == "wrong right after the jump"
    with pytest.raises(ValueError, match="unknown travel status 'lost'"):
        plots.status_text("lost")


def test_theta_at_step_and_jump_pairs_draw_one_colour_per_model():
    rng = np.random.default_rng(0)
    sweeps = {m: pd.DataFrame([{"delta": d, "image": i, "eps": e, "theta": abs(rng.normal(1e-2, 1e-3)) * (d / 1e-3)}
                               for d in (1e-3, 1e-2) for i in range(3) for e in (0.01, 0.02, 0.03)])
              for m in ("resnet", "vit")}
    fig = plots.theta_at_step(sweeps, 1e-2, limits=plots.theta_step_limits(sweeps))
    colours = {to_hex(line.get_color()) for line in fig.axes[0].get_lines() if len(line.get_xdata()) == 3}
    assert colours == set(plots.model_colors(["resnet", "vit"]).values())
    with pytest.raises(ValueError, match="no step Δ = 0.5"):
        plots.theta_at_step(sweeps, 0.5)
    plt.close("all")
    frame = pd.DataFrame({"eps_direct": [0.1, 0.2, np.nan], "eps_jump": [0.05, 0.1, 0.3]})
    with pytest.raises(ValueError, match="at least one"):
        plots.jump_pairs({})
    with pytest.raises(ValueError, match="no column.*eps_jump"):
        plots.jump_pairs({"resnet": frame.drop(columns="eps_jump")})
    fig = plots.jump_pairs({"resnet": frame, "vit": frame})
    assert [ax.get_title() for ax in fig.axes] == [f"{m}: median ratio 0.50, 2 pairs" for m in ("resnet", "vit")]
    plt.close("all")


def test_a_model_keeps_its_colour_in_every_figure():
    alone = plots.model_colors(["resnet_gelu", "vit_bn"])
    together = plots.model_colors(["resnet", "mobilenetv2", "vit", "swin", "resnet_gelu", "vit_bn"])
    assert alone["resnet_gelu"] == together["resnet_gelu"] and alone["vit_bn"] == together["vit_bn"]
    assert len(set(together.values())) == len(together)  # distinct within a figure
    assert plots.model_colors(["resnet50"])["resnet50"] == together["resnet"]


def test_page_table_renames_formats_and_names_missing_columns():
    df = pd.DataFrame({"model": ["resnet"], "theta_mean": [1.234567], "sece": [-0.0123456]})
    html = plots.page_table(df, ["model", "theta_mean", "sece"]).to_html()
    assert "mean θ (°)" in html and "sECE" in html and "1.235" in html and "theta_mean" not in html
    with pytest.raises(ValueError, match="no column.*eps_median"):
        plots.page_table(df, ["model", "eps_median"])
