"""The trajectories chapter's library side: the shared mesh grid, the flatness verdict per plane and
its words, single lines and their figures — on synthetic frames and toy models."""
import types

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import data, models
from curvlib.claims import trajectories as traj
from curvlib.measure import views
from curvlib.measure.probe import grid_step
from curvlib.plots import trajectories as tplots


def _travel(eps):
    return pd.DataFrame({"eps": list(eps) + [np.nan], "status": ["crossed"] * len(eps) + ["never"]})


def test_mesh_grid_shares_the_smallest_step_and_reaches_every_median():
    travel = {"resnet": _travel([0.02, 0.04, 0.06]), "vit": _travel([0.08, 0.1, 0.12])}
    g = traj.mesh_grid(travel, fraction=0.25)
    assert g.step == min(grid_step(df, 0.25) for df in travel.values()) == pytest.approx(0.01)
    assert g.eps_median == pytest.approx({"resnet": 0.04, "vit": 0.1})
    assert all(g.step <= 0.25 * e for e in g.eps_median.values())
    assert g.n_steps == 10 and g.n_steps * g.step >= max(g.eps_median.values())  # ceil(0.1 / 0.01)
    assert list(g.table.index) == ["resnet", "vit"] and list(g.table.family) == ["CNN", "Transformer"]
    assert list(g.table.crossed) == [3, 3] and g.table.ratio.tolist() == pytest.approx([0.25, 0.1])
    text = traj.mesh_grid_markdown(g)
    assert "**0.01** pixel units" in text and "every model." in text
    short = traj.mesh_grid(travel, fraction=0.25, max_steps=5)  # ±0.05 reaches resnet's median only
    assert short.n_steps == 5 and "of resnet only." in traj.mesh_grid_markdown(short)
    assert "median ε*" in tplots.mesh_grid_table(g.table).to_html()


def _flat(rho_cnn, rho_vit, plane):
    n = len(rho_cnn)
    return pd.DataFrame({"model": ["resnet"] * n + ["vit"] * n, "image": list(range(n)) * 2,
                         "rho": list(rho_cnn) + list(rho_vit), "rho_input": 0.3 if plane == "clipped" else 0.0,
                         "moving": 0.5, "plane": plane})


def test_flatness_claim_judges_each_plane_and_words_it():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.2, 12)
    flat = pd.concat([_flat(base, base + 0.3, "clipped"), _flat(base, base, "interior")])
    table = traj.flatness_table(flat)
    assert table.loc["vit", "rho_clipped"] == pytest.approx(np.median(base) + 0.3)
    assert table.loc["resnet", "rho_input_clipped"] == 0.3 and table.loc["vit", "moving_interior"] == 0.5
    rows = {p: traj.flatness_claim(flat, p, n_boot=200, seed=0) for p in traj.PLANES}
    assert rows["clipped"]["verdict"] == "holds" and rows["clipped"]["estimate"] == pytest.approx(0.3)
    assert rows["interior"]["verdict"] == "inconclusive"  # no difference at all
    assert rows["clipped"]["n"] == 12 and rows["clipped"]["transformer"] - rows["clipped"]["cnn"] == pytest.approx(0.3)
    text = traj.flatness_markdown(rows, table)
    assert text.count("**holds**") == 1 and "**inconclusive**" in text and "**do not**" in text
    assert "+0.300" in text and "n = 12" in text and "ρ ≈ 0.300" in text
    summary = traj.flatness_summary(rows, types.SimpleNamespace(name="toy"))
    assert summary.endswith("clipped plane **holds**; interior plane **inconclusive**.") and "(toy)" in summary
    with pytest.raises(ValueError, match="unknown plane"):
        traj.flatness_claim(flat, "tilted")
    fig = tplots.flatness_figure(flat)
    assert len(fig.axes) == 2 and fig.axes[0].get_ylim() == (0, 1)
    plt.close(fig)
    assert "pixels moving (interior)" in tplots.flatness_table_style(table).to_html()


def test_plane_flatness_on_models():
    torch.manual_seed(0)
    ms = {"resnet": models.build("resnet").eval(), "vit": models.build("vit").eval()}
    x = torch.rand(2, 1, 32, 32)
    flat = views.plane_flatness(ms, x, torch.tensor([1, 2]), 0.01, 1)
    assert len(flat) == 2 * 2 * 2 and set(flat.plane) == set(views.PLANES)
    assert (flat[flat.plane == "interior"].rho_input < 1e-4).all() and flat.rho.between(0, 1).all()


class Lines(torch.nn.Module):
    """features = (w·x, c·(w·x)²): a straight path for c = 0, a parabola otherwise."""

    def __init__(self, c):
        super().__init__()
        self.w = torch.linspace(-1, 1, 16)
        self.c = c

    def features(self, x):
        s = x.flatten(1) @ self.w
        return torch.stack([s, self.c * s ** 2, torch.zeros_like(s)], -1)

    def head(self, f):
        return f[:, :2]


def test_single_lines_turn_only_where_the_features_bend():
    x = torch.full((1, 1, 4, 4), 0.5)
    d = torch.stack([torch.sign(torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(s)))
                     for s in range(3)])
    eps = torch.linspace(-0.1, 0.1, 9)  # no pixel leaves [0, 1]
    paths, thetas = views.single_lines({"resnet": Lines(0.0), "vit": Lines(5.0)}, x, d, eps)
    assert len(paths) == 2 * 3 * 9 and len(thetas) == 2 * 3
    at_image = paths[paths.eps.abs() < 1e-9]
    assert np.allclose(at_image[["x", "y"]], 0) and paths[["x", "y"]].abs().max().max() <= 1 + 1e-6
    th = thetas.set_index("model").theta
    assert (th["resnet"] < 0.1).all() and (th["vit"] > 1).all()  # degrees
    text = traj.line_theta_markdown(thetas)
    assert "Over these 3 lines" in text and f"{th['vit'].mean():.1f}° for the Transformers" in text
    fig = tplots.single_lines_figure(paths, thetas)
    assert [ax.get_title() for ax in fig.axes] == ["resnet (CNN)", "vit (Transformer)"]
    plt.close(fig)


def test_mesh_experiment_caches_plane_flatness_and_needs_the_grid(tmp_cache):
    from curvlib.config import get_profile
    from curvlib.experiments.mesh import mesh_experiment

    p = get_profile("smoke").replace(n_theta_images=2)
    flat = mesh_experiment("resnet", p, step=0.01, n_steps=1)
    assert len(flat) == 2 * 2 and set(flat.plane) == set(views.PLANES) and flat.image.tolist() == [0, 1, 0, 1]
    x, y = data.test_set(p, n=2)
    direct = views.plane_flatness({"resnet": models.load("resnet", p)}, x, y, 0.01, 1)
    assert np.allclose(flat.sort_values(["plane", "image"]).rho.to_numpy(),
                       direct.sort_values(["plane", "image"]).rho.to_numpy())
    with pytest.raises(ValueError, match="shared grid"):
        mesh_experiment("resnet", p)
