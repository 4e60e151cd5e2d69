"""The curvature chapter's library side: θ per ruler and its family ratios, the step table's ends, the
ω table, and the chapter's statements in words — on synthetic results of known size."""
import types

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib.claims import curvature as cc
from curvlib.constants import AWAY
from curvlib.experiments.theta import STEP_SWEEP
from curvlib.measure.angles import theta_summary
from curvlib.plots import curvature as cplots

MODELS = ("resnet", "vit")
RULERS = (("oneway", False), ("oneway", True), ("symmetric", False))


def _theta_results(scale=2.0, n=8, s=7):
    """θ [M=2, N=n, S=s] of 0.01 rad for resnet and ``scale``× that for vit; input θ 0.02 on the
    saturation-aware ruler, 0.01 on the others; the symmetric grid runs through ε = 0."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for m in MODELS:
        for kind in ("fgsm", "random"):
            for protocol, sat in RULERS:
                base = 0.01 * (scale if m == "vit" else 1.0)
                th = base * (1 + 0.1 * torch.rand(2, n, s, generator=g, dtype=torch.float64))
                eps = torch.linspace(-0.1, 0.1, s + 2) if protocol == "symmetric" else torch.linspace(0, 0.1, s + 2)
                out[(m, kind, protocol, sat)] = {"theta": th, "input_theta": torch.full_like(th, 0.02 if sat else 0.01),
                                                 "eps": eps, "summary": theta_summary(th)}
    return out


def test_ruler_ratios_judge_every_kind_and_ruler():
    res = _theta_results()
    ratios = cc.ruler_ratios(res, n_boot=200, seed=0)
    assert list(ratios.columns) == ["kind", "ruler", "ratio", "lo", "hi", "verdict", "n_images"]
    assert ratios.ruler.tolist()[:4] == ["oneway", "oneway, saturation-aware", f"symmetric, |ε| > {AWAY:g}",
                                         "symmetric"]
    assert ratios.kind.tolist() == ["fgsm"] * 4 + ["random"] * 4
    assert ratios.ratio.to_numpy() == pytest.approx(2.0, rel=0.05) and set(ratios.verdict) == {"holds"}
    lines = cc.theta_ratio_markdown(ratios)
    assert len(lines) == 8 and all(ln.endswith("the paper's ordering holds.") for ln in lines)
    flipped = cc.ruler_ratios(_theta_results(scale=0.5), n_boot=200, seed=0)
    assert set(flipped.verdict) == {"opposite"}
    assert cc.theta_ratio_markdown(flipped)[0].endswith("is reversed.")
    tally = cc.theta_tally(flipped, types.SimpleNamespace(name="toy", n_theta_images=8))
    assert "holds for 0 of the 8" in tally and "reversed for 8" in tally


def test_ruler_pivot_adds_the_input_path_and_names_the_straighter_ruler():
    rulers = cc.ruler_table(_theta_results())
    table = cc.ruler_pivot(rulers)
    assert table.index[-1] == ("input path", "") and table.shape == (3, 8)
    assert table.loc[("input path", ""), ("fgsm", "oneway")] == pytest.approx(np.degrees(0.01))
    assert table.loc[("vit", "Transformer"), ("fgsm", "oneway")] > table.loc[("resnet", "CNN"), ("fgsm", "oneway")]
    text = cc.ruler_baseline_markdown(rulers)
    assert "is not the straighter one" in text and f"{np.degrees(0.02):.2f}°" in text
    assert "font-size: 0.75em" in cplots.ruler_pivot_style(table).to_html()
    fig = cplots.theta_bands_figure(_theta_results(), "fgsm")
    assert [ax.get_title() for ax in fig.axes] == ["resnet (CNN), fgsm", "vit (Transformer), fgsm"]
    plt.close(fig)


def _sweeps():
    """θ = ω·Δ (smooth, slope 1) for vit and vit_relu, θ = 0.1·√Δ (kinks, slope ½) for resnet and resnet_gelu."""
    out = {}
    for m in ("resnet", "vit", "resnet_gelu"):
        rows = [{"delta": d, "eps": e, "theta": (2.0 * d if m == "vit" else 0.1 * np.sqrt(d)) * (1 + 0.01 * e)}
                for d in (1e-4, 1e-3, 1e-2) for e in range(5)]
        out[m] = pd.DataFrame(rows)
    return out


def _curvature(omega, kinks, m=2, n=6, s=5):
    blocks = ["b0", "b1"]
    return {"omega": torch.full((m, n, s), omega, dtype=torch.float64) * (1 + torch.arange(n).view(1, n, 1) / 10),
            "kappa": torch.full((m, n, s), 1.0), "kinks": torch.full((m, n, s), kinks),
            "eps": torch.linspace(0, 0.1, s), "block_names": blocks,
            "block_omega": torch.stack([torch.full((m, n, s), omega * k) for k in (0.5, 1.0)])}


def test_step_ends_and_omega_tables_and_statements():
    steps = cc.step_table(_sweeps())
    ends = cc.step_ends_table(steps)
    assert list(ends.index) == ["resnet", "vit", "resnet_gelu"]
    assert ends.columns.tolist()[0] == "mean θ (°), Δ = 0.0001"
    assert ends["slope of log θ on log Δ"].to_numpy() == pytest.approx([0.5, 1.0, 0.5])
    fgsm = {"resnet": _curvature(0.0, 4), "vit": _curvature(3.0, 0), "resnet_gelu": _curvature(1.0, 2)}
    random = {"resnet": _curvature(0.0, 6), "vit": _curvature(2.0, 0)}
    table = cc.omega_table(fgsm, random)
    assert list(table.index) == ["resnet", "vit", "resnet_gelu"] and "omega_mean" not in table
    assert table.loc["resnet", "top_block"] == "— (no smooth bending)" and table.loc["vit", "top_block"] == "b1"
    assert table.loc["resnet_gelu", "swap"] != "—" and table.loc["vit", "swap"] == "—"
    assert np.isnan(table.loc["resnet_gelu", "omega_median (random)"])
    assert table.loc["resnet", "kinks_per_eps"] == pytest.approx(4 / 0.025)
    assert cc.no_line_markdown(table).startswith("No line for resnet:")
    assert cc.no_line_markdown(table.drop(index="resnet")) == ""
    html = cplots.omega_table_style(table).to_html()
    assert "ω median (FGSM)" in html and "–" in html
    ratios = cc.ruler_ratios(_theta_results(), n_boot=200, seed=0)
    text = cc.curvature_markdown(ratios, table, steps, fgsm, random, n_boot=200, seed=0)
    lines = text.split("\n")
    assert len(lines) == 8 + 1 + 2 + 3 + 1  # θ rows, ω, two ω gaps, switches, steps and order by step, one swap
    assert "do not bend smoothly at all" in lines[8] and "gives ω 1.25–1.25" in lines[8]
    assert "**holds** by this ruler — but not as a test" in lines[9]
    assert "slope of log θ on log Δ is 0.50 for the CNNs and 1.00 for the Transformers" in lines[12]
    assert lines[13].startswith("- **Order by step:**")
    assert lines[14].startswith("- **resnet → resnet_gelu**") and "slope 0.50 → 0.50" in lines[14]


def test_step_order_names_the_family_that_turns_more_at_each_step():
    steps = pd.DataFrame({"model": ["resnet", "vit"] * 3, "delta": [1e-4, 1e-4, 1e-2, 1e-2, 5e-2, 5e-2],
                          "mean": [1.0, 0.2, 1.0, 0.9, 1.0, 3.0], "median": 0.0, "rate": 0.0})
    o = cc.step_order(steps, ["resnet", "vit"])
    assert o.larger.tolist() == ["CNN", "CNN", "Transformer"]
    md = cc.step_order_markdown(steps, ["resnet", "vit"])
    assert "larger at Δ = 0.05; the CNNs' at Δ = 0.0001, 0.01 (the order flips 1×" in md


def test_before_boundary_keeps_only_the_steps_below_each_paths_crossing():
    eps = torch.linspace(0, 0.1, 11)  # 11 points, θ at the 9 interior points
    th = torch.arange(9, dtype=torch.float64).repeat(2, 1)[None] * 0.01  # θ grows along the path
    om = torch.arange(11, dtype=torch.float64).repeat(2, 1)[None]
    travel = pd.DataFrame({"status": ["crossed", "never"], "eps": [0.045, np.nan]})
    t = cc.before_boundary_table({"vit": {"theta": th, "eps": eps}}, {"vit": {"omega": om, "eps": eps}},
                                 {"vit": travel})
    # image 0 crosses at 0.045: θ at points 1..3 (last point 0.04 < 0.045), ω at 0, .01, .02, .03, .04; image 1 all
    theta0, theta1 = np.arange(3) * 0.01, np.arange(9) * 0.01
    assert t.loc["vit", "θ before ε* (°)"] == pytest.approx(np.degrees(np.concatenate([theta0, theta1]).mean()))
    assert t.loc["vit", "ω before ε*"] == pytest.approx(np.concatenate([np.arange(5), np.arange(11)]).mean())
    assert t.loc["vit", "share of θ steps before ε*"] == pytest.approx(12 / 18)
    both = pd.concat([t, t.rename(index={"vit": "resnet"}).assign(**{"θ before ε* (°)": 1.0, "θ all (°)": 2.0})])
    assert "ratio" in cc.before_boundary_markdown(both)


def test_a_swap_is_compared_with_its_parent_trained_as_long():
    steps = pd.DataFrame({"model": ["vit", "vit_gelu_relu"] * 2, "delta": [1e-4, 1e-4, 1e-2, 1e-2],
                          "mean": [0.4, 0.3, 4.0, 3.0], "median": 0.0, "rate": 0.0})
    table = pd.DataFrame({"omega_median": [30.0, 10.0], "kinks_per_eps": [1.0, 2.0]},
                         index=pd.Index(["vit", "vit_gelu_relu"], name="model"))
    variant = next(v for v in cc.models.variants() if cc.models.spec(v).parent == "vit")
    steps.loc[steps.model == "vit_gelu_relu", "model"] = variant
    table = table.rename(index={"vit_gelu_relu": variant})
    sweep = pd.DataFrame({"delta": [1e-4, 1e-2], "theta": np.radians([0.2, 2.0])})
    parents = {variant: {"label": "vit_ep15", "sweep": sweep, "omega_median": 20.0}}
    line = cc.step_markdown(table, steps, ["vit"], parents)[-1]
    assert line.startswith(f"- **vit_ep15 → {variant}**") and "0.200° → 0.300°" in line and "median ω 20 →" in line
    shipped = cc.step_markdown(table, steps, ["vit"])[-1]
    assert shipped.startswith(f"- **vit → {variant}**") and "0.400° → 0.300°" in shipped


def test_own_length_parents_measure_the_vit_snapshot_and_reuse_the_shipped_resnet(tmp_cache):
    from curvlib.claims.ablations import own_length_parents
    from curvlib.config import get_profile

    p = get_profile("smoke").replace(n_theta_images=1, n_steps=6)
    vit_v = next(v for v in cc.models.variants() if cc.models.spec(v).parent == "vit")
    res_v = next(v for v in cc.models.variants() if cc.models.spec(v).parent == "resnet")
    out = own_length_parents([vit_v, res_v], p, eps_range=0.1)
    assert out[vit_v]["label"] == f"vit_ep{cc.models.spec(vit_v).recipe['epochs']}" != "vit"
    assert out[vit_v]["weights"].parent == p.checkpoint_dir
    assert out[res_v]["label"] == "resnet" and out[res_v]["omega_median"] == 0.0  # ReLU + BatchNorm: no bend
    assert out[vit_v]["omega_median"] > 0 and set(out[vit_v]["sweep"].delta) == set(STEP_SWEEP)


def test_before_boundary_refuses_travel_of_other_images():
    eps = torch.linspace(0, 0.1, 11)
    th, om = torch.zeros(1, 2, 9, dtype=torch.float64), torch.zeros(1, 2, 11, dtype=torch.float64)
    travel = pd.DataFrame({"status": ["crossed"] * 3, "eps": [0.05] * 3})  # three images for two paths
    with pytest.raises(ValueError, match="same images"):
        cc.before_boundary_table({"vit": {"theta": th, "eps": eps}}, {"vit": {"omega": om, "eps": eps}},
                                 {"vit": travel})


def test_step_order_refuses_a_table_without_the_models():
    steps = pd.DataFrame({"model": ["resnet"], "delta": [1e-4], "mean": [1.0], "median": 0.0, "rate": 0.0})
    with pytest.raises(ValueError, match="none of the models"):
        cc.step_order(steps, ["vit"])
