"""Meshes of the input plane: the flatness measure ρ, the ε*-tied grid step, class legends."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import models, plots
from curvlib.config import get_profile
from curvlib.data import FASHION_CLASSES
from curvlib.measure.mesh import affine_residual, interior_directions
from curvlib.measure.probe import grid_step
from curvlib.measure.views import mesh_flatness, plane_view, plane_views
from curvlib.plots import explorer as widgets


def _grid(n=5, h=0.1):
    t = torch.arange(-n, n + 1, dtype=torch.float64) * h
    A, B = torch.meshgrid(t, t, indexing="ij")
    return t, A, B


def test_affine_image_of_the_grid_is_flat():
    t, A, B = _grid()
    g = torch.Generator().manual_seed(0)
    f0, u, v = (torch.randn(64, generator=g, dtype=torch.float64) for _ in range(3))
    mesh = f0 + A[..., None] * u + B[..., None] * v  # [A, B, 64]
    assert affine_residual(mesh, t, t).item() < 1e-7  # ρ = √(residual² / variance): float64 floor ~1e-8
    # uneven grid coordinates: still an affine image of *that* grid
    a = torch.tensor([-0.3, -0.1, 0.0, 0.05, 0.4], dtype=torch.float64)
    b = torch.tensor([-0.2, 0.1, 0.3], dtype=torch.float64)
    Aa, Bb = torch.meshgrid(a, b, indexing="ij")
    assert affine_residual(f0 + Aa[..., None] * u + Bb[..., None] * v, a, b).item() < 1e-7


def _moments(n, h):
    """Means of t², t⁴ over the grid t = k·h, k = −n … n (closed forms)."""
    m2 = h ** 2 * n * (n + 1) / 3
    m4 = h ** 4 * n * (n + 1) * (3 * n ** 2 + 3 * n - 1) / 15
    return m2, m4


@pytest.mark.parametrize("c", [0.5, 2.0, 10.0])
def test_paraboloid_matches_closed_form(c):
    # f = (a, b, c(a² + b²)): a, b fit exactly; a² + b² is orthogonal to a and b on a symmetric grid,
    # so the residual is c(a² + b² − mean) and ρ² = c² Var(t²) / (Var(t) + c² Var(t²)).
    n, h = 6, 0.2
    t, A, B = _grid(n, h)
    mesh = torch.stack([A, B, c * (A ** 2 + B ** 2)], -1)
    m2, m4 = _moments(n, h)
    expected = math.sqrt(c ** 2 * (m4 - m2 ** 2) / (m2 + c ** 2 * (m4 - m2 ** 2)))
    assert affine_residual(mesh, t, t).item() == pytest.approx(expected, rel=1e-9)


def test_sphere_patch_and_extent():
    # a sphere patch of radius R: ρ ≈ the paraboloid's with c = 1 / (2R) for a small patch, and ρ grows with extent
    R = 1.0
    rhos = []
    for h in (0.01, 0.02, 0.04):
        t, A, B = _grid(4, h)
        mesh = torch.stack([A, B, (R ** 2 - A ** 2 - B ** 2).sqrt()], -1)
        m2, m4 = _moments(4, h)
        c = 1 / (2 * R)
        approx = math.sqrt(c ** 2 * (m4 - m2 ** 2) / (m2 + c ** 2 * (m4 - m2 ** 2)))
        rho = affine_residual(mesh, t, t).item()
        assert rho == pytest.approx(approx, rel=0.02)  # higher-order terms: 1.2 % at the largest patch
        rhos.append(rho)
    assert rhos[0] < rhos[1] < rhos[2]
    assert rhos[1] / rhos[0] == pytest.approx(2, rel=0.01)  # ∝ extent for a small patch


def test_no_affine_part_gives_one_and_invariances():
    t, A, B = _grid(3, 1.0)
    assert affine_residual((A * B)[..., None], t, t).item() == pytest.approx(1.0)
    g = torch.Generator().manual_seed(1)
    mesh = torch.stack([A, B, A ** 2, torch.sin(3 * B)], -1)
    rho = affine_residual(mesh, t, t).item()
    Q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))
    moved = 7.0 * torch.nn.functional.pad(mesh, (0, 6)) @ Q.T + 3.0  # rotate into 10-D, scale, shift
    assert affine_residual(moved, t, t).item() == pytest.approx(rho, rel=1e-9)
    assert affine_residual(mesh, 5 * t, 5 * t - 1).item() == pytest.approx(rho, rel=1e-9)  # input units
    batch = affine_residual(torch.stack([torch.nn.functional.pad(mesh, (0, 6)), moved]), t, t)  # separate meshes
    assert batch.shape == (2,) and torch.allclose(batch, torch.full((2,), rho, dtype=torch.float64))
    assert 0 < rho < 1
    assert math.isnan(affine_residual(torch.ones(7, 7, 3), t, t).item())  # a single point: undefined


def test_affine_residual_rejects_bad_input():
    t, A, B = _grid(2)
    with pytest.raises(ValueError, match=r"\[..., A, B, F\]"):
        affine_residual(torch.rand(5, 4, 3), t, t)
    with pytest.raises(ValueError, match="two distinct"):
        affine_residual(torch.rand(5, 1, 3), t, t[:1])
    with pytest.raises(ValueError, match="NaN"):
        affine_residual(torch.full((5, 5, 2), float("nan")), t, t)


def test_grid_step_is_a_quarter_of_the_median_or_less():
    e = np.array([0.01, 0.02, 0.03, np.nan, 0.5])
    assert grid_step(e, nice=False) == pytest.approx(0.25 * 0.025)
    assert grid_step(e) == pytest.approx(0.0062) and grid_step(e) <= 0.25 * 0.025
    assert grid_step([0.02]) == pytest.approx(0.005)  # exact values are not rounded down further
    df = pd.DataFrame({"eps": [0.02, 0.04, np.nan, 0.001], "status": ["crossed", "crossed", "never",
                                                                       "misclassified_at_start"]})
    assert grid_step(df, nice=False) == pytest.approx(0.25 * 0.03)  # crossed rows only
    rng = np.random.default_rng(0)
    for _ in range(200):
        v = rng.lognormal(-4, 2, size=9)
        s = grid_step(v, fraction=0.3)
        assert 0.9 * 0.3 * np.median(v) <= s <= 0.3 * np.median(v)
    with pytest.raises(ValueError, match="positive ε"):
        grid_step([np.nan])
    with pytest.raises(ValueError, match="fraction"):
        grid_step([0.1], fraction=0)


def test_interior_directions_never_clip():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 8, 8, generator=g)
    x[0, :3] = 0.0  # a black band: any pixel there that moves down would clip
    d1 = torch.sign(torch.randn(1, 8, 8, generator=g))
    d2 = torch.randn(1, 8, 8, generator=g)
    t = torch.linspace(-0.1, 0.1, 5)
    e1, e2 = interior_directions(x, d1, d2, 0.1)
    pts = x[None, None] + t.view(-1, 1, 1, 1, 1) * e1 + t.view(1, -1, 1, 1, 1) * e2
    assert pts.min() >= 0 and pts.max() <= 1  # nothing to clip: the plane is exactly affine
    assert affine_residual(pts.flatten(2), t, t).item() < 1e-6
    kept = e1 != 0
    assert torch.equal(e1[kept], d1[kept]) and torch.equal(e2[kept], d2[kept])  # no renormalisation
    assert not kept[0, :3].any() and 0 < kept.float().mean() < 1
    clipped = (x[None, None] + t.view(-1, 1, 1, 1, 1) * d1 + t.view(1, -1, 1, 1, 1) * d2).clamp(0, 1)
    assert affine_residual(clipped.flatten(2), t, t).item() > 0.05  # clipping bends the input plane
    e1b, _ = interior_directions(x, d1, d2, 0.1, 0.0)  # a narrower second axis frees more pixels
    assert (e1b != 0).sum() >= kept.sum()
    with pytest.raises(ValueError, match="same number of pixels"):
        interior_directions(x[:, :4], d1, d2, 0.1)


def test_plane_view_flatness_and_figure_legend():
    torch.manual_seed(0)
    ms = {"resnet": models.build("resnet").eval(), "vit": models.build("vit").eval()}
    x = torch.rand(1, 1, 32, 32) * 0.5 + 0.25  # away from 0 and 1: small steps are not clipped
    v = plane_view(ms["resnet"], x, torch.tensor([3]), 0.01, 2)
    assert 0 <= v["rho"] <= 1 and v["rho_input"] == pytest.approx(0.0, abs=1e-6)
    black = x.clone()
    black[..., :8] = 0.0
    vc = plane_view(ms["resnet"], black, torch.tensor([3]), 0.01, 2)
    vi = plane_view(ms["resnet"], black, torch.tensor([3]), 0.01, 2, interior=True)
    assert vc["rho_input"] > 0.05 and vi["rho_input"] < 1e-4 and vi["moving"] < vc["moving"]
    names = widgets.class_names(get_profile("smoke"))
    assert names == FASHION_CLASSES
    fig = widgets.explorer_figure(plane_views(ms, x, torch.tensor([3]), 0.01, 2), 0.01, 2, names=names,
                                  eps_median={"resnet": 0.04, "vit": 0.05})
    legend = fig.legends[0]
    shown = [t.get_text() for t in legend.get_texts()]
    preds = {int(k) for m in ms.values() for k in plane_view(m, x, torch.tensor([3]), 0.01, 2)["pred"].ravel()}
    assert shown == [FASHION_CLASSES[k] for k in sorted(preds)] + ["the image x"]
    titles = [ax.get_title() for ax in fig.axes]
    assert any("flatness ρ = " in t for t in titles) and any("0.25 × median ε*" in t for t in titles)
    assert len(fig.axes) == 4 and all(ax.get_subplotspec().get_geometry()[1] == 2 for ax in fig.axes)
    plt.close(fig)
    tab = mesh_flatness(ms, x.repeat(2, 1, 1, 1), torch.tensor([3, 3]), 0.01, 1)
    assert list(tab.columns) == ["model", "image", "rho", "rho_input", "moving"] and len(tab) == 4
    assert tab.rho.between(0, 1).all()


def test_class_colours_and_model_colours():
    c10 = widgets.class_colors([3, 1, 3], 10)
    assert list(c10) == [1, 3] and c10[3] == plt.get_cmap("tab10")(3)  # fixed per class
    c1000 = widgets.class_colors([907, 5, 999], 1000)  # only the occurring classes, distinct colours
    assert list(c1000) == [5, 907, 999] and len(set(c1000.values())) == 3
    cols = plots.model_colors(["resnet", "mobilenetv2", "vit", "swin"])
    assert len(set(cols.values())) == 4
    assert cols["resnet"] == plots.FAMILY_PALETTE["CNN"][0] and cols["vit"] == plots.FAMILY_PALETTE["Transformer"][0]
