"""The random-jump chapter's library code: the jump-size sweep, the route summary, the example images,
the verdict sentences and the figures and tables that show them (synthetic frames and a toy model)."""

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import toys
from curvlib.claims import random_jump as jc
from curvlib.config import get_profile
from curvlib.experiments import examples as ex
from curvlib.plots import random_jump as jp

N = 200
FAMS = {"resnet": "CNN", "mobilenetv2": "CNN", "vit": "Transformer", "swin": "Transformer"}


def _jump_frame(ratio_eps=0.5, ratio_total=0.8, ctrl_direction=1.2, seed=0, n=N):
    """A jump frame whose routes are fixed multiples of the direct one, per image."""
    g = np.random.default_rng(seed)
    direct = g.uniform(0.05, 0.2, n)
    return pd.DataFrame({
        "index": np.arange(n), "eps_direct": direct, "eps_jump": ratio_eps * direct,
        "eps_ctrl_point": direct, "eps_ctrl_direction": direct,
        "total_direct": direct, "total_jump": ratio_total * direct, "total_ctrl_direction": ctrl_direction * direct,
        "psnr_direct": np.full(n, 20.0), "psnr_jump": np.full(n, 22.0), "psnr_jump_only": np.full(n, 26.0),
        "status_direct": np.where(np.arange(n) < 3, "misclassified_at_start", "crossed"),
        "jump_correct": np.arange(n) >= 10,  # rows 0-9: the jump alone flipped the label
    })


def test_jump_sweep_is_tidy_and_finds_the_ratios():
    frames = {"resnet": {0.01: _jump_frame(0.9, 0.95), 0.05: _jump_frame(0.5, 0.7)},
              "vit": {0.01: _jump_frame(0.8, 1.1)}}
    sweep = jc.jump_sweep(frames, n_boot=50, seed=0)
    assert len(sweep) == 3 * 2 and list(sweep.columns) == ["model", "eps_r", "ratio of", "median ratio", "lo", "hi",
                                                          "PSNR jump only (dB)"]
    got = sweep.set_index(["model", "eps_r", "ratio of"])["median ratio"]
    assert got[("resnet", 0.05, "ε*")] == pytest.approx(0.5) and got[("resnet", 0.05, "total")] == pytest.approx(0.7)
    assert got[("vit", 0.01, "total")] == pytest.approx(1.1)
    assert (sweep.lo <= sweep["median ratio"] + 1e-12).all() and (sweep["median ratio"] <= sweep.hi + 1e-12).all()
    assert (sweep["PSNR jump only (dB)"] == 26.0).all()


def test_direction_only_ratios_and_their_sentence():
    jumps = {"resnet": _jump_frame(ctrl_direction=0.6), "vit": _jump_frame(ctrl_direction=0.8)}
    ratios = jc.direction_only_ratios(jumps)
    assert ratios == pytest.approx({"resnet": 0.6, "vit": 0.8})
    assert "resnet 0.60×, vit 0.80×" in jc.direction_only_markdown(ratios, "embedded")
    assert "shorter for every model" in jc.direction_only_markdown(ratios, "embedded")
    assert "longer for every model" in jc.direction_only_markdown({"a": 1.2, "b": 1.5}, "p")
    assert "shorter for some models and longer for others" in jc.direction_only_markdown({"a": 0.9, "b": 1.5}, "p")


def test_route_summary_counts_only_labels_the_jump_flipped():
    routes = jc.route_summary({"resnet": _jump_frame(ratio_total=0.5)})
    row = routes.loc["resnet"]
    assert row["jump flipped the label"] == 7  # rows 3-9: rows 0-2 were wrong at x already
    assert row["median total, jump route"] == pytest.approx(0.5 * row["median total, direct"])
    assert row["PSNR of the jump alone (dB)"] == 26.0


def test_family_ratios_and_the_claim_sentence():
    jumps = {m: _jump_frame(0.5 if f == "Transformer" else 0.9, seed=i) for i, (m, f) in enumerate(FAMS.items())}
    by_family = jc.family_jump_ratios(jumps, FAMS, n_boot=50, seed=0)
    assert list(dict.fromkeys(by_family.group)) == ["CNN", "Transformer"]
    eps = by_family.set_index(["group", "ratio"])["median"]
    assert eps[("Transformer", "eps")] == pytest.approx(0.5) and eps[("CNN", "eps")] == pytest.approx(0.9)
    claim = {"verdict": "holds", "rule": "the rule"}
    text = jc.claim_markdown(by_family, claim, 0.05)
    assert text.startswith("At ε_r = 0.05,") and text.count("\n- **") == 2
    assert "- **Transformers**: total perturbation 0.800 [" in text and text.endswith("**holds** (rule: the rule).")
    assert jc.summary_markdown(claim, "embedded") == ("On this profile (embedded), the verdict on the paper's claim "
                                                      "for the Transformers is **holds**.")
    with pytest.raises(ValueError, match="both families"):
        jc.family_jump_ratios({"resnet": jumps["resnet"]}, FAMS, n_boot=10)


def test_toy_sentence_reads_the_row():
    row = pd.Series({"total_jump": 0.0714, "total_direct": 0.4, "total_ctrl_direction": 0.0714})
    text = jc.toy_markdown(row)
    assert "total perturbation of 0.071 per pixel instead of 0.400" in text and "gets there with 0.071" in text


def test_jump_examples_travel_the_profile_images(monkeypatch):
    g = torch.Generator().manual_seed(0)
    model = toys.Linear(torch.randn(3, 4, generator=g, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    x = torch.rand(3, 1, 2, 2, generator=g)
    y = model(x).argmax(1)
    monkeypatch.setattr(ex.data, "test_set", lambda profile, n: (x[:n], y[:n]))
    monkeypatch.setattr(ex.models, "load", lambda name, profile: model)
    profile = get_profile("embedded", env={}, device="cpu").replace(models=("a", "b"), search="careful")
    searches = []
    real = ex.jump_travel
    monkeypatch.setattr(ex, "jump_travel", lambda *a, **kw: searches.append(kw["search"]) or real(*a, **kw))
    shown, examples = ex.jump_examples(profile, n=2, eps_r=0.05)
    assert searches == ["careful", "careful"]  # the profile's boundary search, not a default
    assert torch.equal(shown, x[:2]) and list(examples) == ["a", "b"]
    df, x_direct, x_jump = examples["a"]
    assert len(df) == 2 and x_direct.shape == x_jump.shape == (2, 1, 2, 2)
    crossed = torch.tensor((df.status_direct == "crossed").to_numpy())
    assert crossed.any()
    # the direct route's final image is misclassified (it lies just past the boundary)
    assert (model(x_direct[crossed]).argmax(1) != y[:2][crossed]).all()
    fig = jp.jump_images_figure(shown, examples)
    assert len(fig.axes) == 2 * 3 * 2 and fig.axes[0].get_title() == "original"
    plt.close(fig)


def test_tables_and_sweep_figure():
    jumps = {m: _jump_frame(seed=i) for i, m in enumerate(("vit", "resnet"))}
    rows = jc.jump_ratios(jumps, n_boot=20, seed=0)
    table = jp.ratio_table(rows)
    assert list(table.index) == ["vit", "resnet"] and list(table.columns) == list(jc.JUMP_RATIOS)
    assert table.index.name == "model" and table.loc["vit", "eps"].startswith("0.500 [")
    html = jp.route_table(jc.route_summary(jumps)).to_html()
    assert "26.0" in html and ">7<" in html
    sweep = jc.jump_sweep({m: {e: _jump_frame(seed=i) for e in (0.01, 0.05)} for i, m in enumerate(jumps)}, n_boot=20)
    fig = jp.jump_sweep_figure(sweep)
    assert [ax.get_yscale() for ax in fig.axes[:2]] == ["log", "log"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.01", "0.05"]
    plt.close(fig)
    shown = jp.sweep_table(sweep).data
    assert list(shown.columns) == ["vit", "resnet"] and shown.loc[("ε*", 0.05), "vit"] == pytest.approx(0.5)


def _rel_frames(total_ratio: dict[str, float], fractions=(0.5, 1.0), n=60, seed=0):
    """Relative-jump frames: model m's jump route totals total_ratio[m] × the direct total, each model
    crossing a different subset of the n images."""
    g = np.random.default_rng(seed)
    out = {}
    for k, (m, r) in enumerate(total_ratio.items()):
        keep = np.sort(g.choice(n, n - 5 * k, replace=False))
        by = {}
        for f in fractions:
            direct = g.lognormal(-4, 0.3, len(keep))
            by[f] = pd.DataFrame({"index": keep, "eps_direct": direct, "total_direct": direct,
                                  "eps_jump": direct * r * 0.5,
                                  "total_jump": direct * r * g.lognormal(0, 0.05, len(keep)),
                                  "eps_ctrl_point": direct, "eps_ctrl_direction": direct,
                                  "total_ctrl_point": direct, "total_ctrl_direction": direct, "fraction": f})
        out[m] = by
    return out


def test_relative_sweep_pools_each_family_on_the_images_its_models_crossed():
    frames = _rel_frames({"resnet": 1.4, "mobilenetv2": 1.4, "vit": 0.6, "swin": 0.6})
    t = jc.relative_sweep(frames, n_boot=300)
    tot = t[t.ratio == "total"].set_index(["family", "fraction"])
    assert tot.loc[("Transformer", 0.5), "verdict"] == "holds" and tot.loc[("CNN", 1.0), "verdict"] == "opposite"
    assert tot.loc[("Transformer", 0.5), "median"] == pytest.approx(0.6, rel=0.05)
    assert tot.loc[("CNN", 0.5), "n_pairs"] == 60 + 55  # resnet crossed all 60 images, mobilenetv2 55
    md = jc.relative_markdown(t)
    assert md.count("- **") == 2 and "0.5·ε*: 0.60" in md
    fig = jp.relative_figure(t)
    assert len(fig.axes) == 2
    plt.close(fig)


def _paths(omega_x, omega_r, theta_x, theta_r, n=30, seed=0):
    g = np.random.default_rng(seed)

    def noisy(v, shape):
        return torch.from_numpy(v * g.lognormal(0, 0.1, shape))

    return {"omega_x": noisy(omega_x, (n, 4)), "omega_r": noisy(omega_r, (n, 4)),
            "theta_x": noisy(theta_x, (n, 10)), "theta_r": noisy(theta_r, (n, 10)), "index": torch.arange(n)}


def test_straighter_claim_reads_the_transformers_omega_and_reports_theta_for_both():
    paths = {"resnet": _paths(0.0, 0.0, 0.05, 0.05), "mobilenetv2": _paths(0.0, 0.0, 0.05, 0.05, seed=1),
             "vit": _paths(20.0, 5.0, 0.04, 0.02, seed=2), "swin": _paths(20.0, 5.0, 0.04, 0.02, seed=3)}
    row = jc.straighter_claim(paths, n_boot=300)
    assert row["claim"] == "random jump (straighter)" and row["verdict"] == "holds"
    assert row["estimate"] == pytest.approx(0.25, rel=0.1) and row["n"] == 60
    assert "Transformers 0.50 [" in row["note"] and re.search(r"CNNs (0\.9\d|1\.0\d) \[", row["note"])
    flat = {**paths, "vit": _paths(20.0, 30.0, 0.04, 0.02, seed=2), "swin": _paths(20.0, 30.0, 0.04, 0.02, seed=3)}
    assert jc.straighter_claim(flat, n_boot=300)["verdict"] == "opposite"
    t = jc.straighter_table(paths)
    assert t.loc["resnet", "ω from x"] == 0 and t.loc["vit", "ω from x_r"] < t.loc["vit", "ω from x"]
    with pytest.raises(ValueError, match="same images"):
        jc.straighter_claim({**paths, "vit": {**paths["vit"], "index": torch.arange(1, 31)}})


def test_relative_and_path_experiments_on_the_shipped_vit(tmp_cache):
    from curvlib.experiments.random_jump import jump_path_experiment, relative_jump_experiment

    p = get_profile("embedded").replace(n_travel=12, n_theta_images=3, n_steps=6)
    df = relative_jump_experiment("vit", p, fraction=0.5)
    assert len(df) <= 4 and (df.fraction == 0.5).all() and np.allclose(df.eps_r, 0.5 * df.eps_direct)
    r = jump_path_experiment("vit", p)
    assert r["omega_x"].shape == r["omega_r"].shape == (3, 4) and r["theta_x"].shape == (3, 5)
    assert (r["omega_x"] > 0).all()  # a smooth network bends


def test_new_jump_helpers_refuse_what_they_cannot_read():
    from curvlib.measure.random_jump import positive_pairs

    with pytest.raises(ValueError, match="no column"):
        positive_pairs(pd.DataFrame({"eps_jump": [0.1]}))
    with pytest.raises(ValueError, match="frames by jump fraction"):
        jc.relative_sweep({"vit": {}})
