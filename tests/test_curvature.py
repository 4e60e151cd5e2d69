"""The rulers of the curvature chapter on paths whose answer is known by hand."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from curvlib.claims import curvature as tj
from curvlib.measure.angles import theta, theta_local
from curvlib.measure.curvature import curvature, residual_blocks
from curvlib.measure.direction import saturation_aware
from curvlib.measure.kinks import kinks
from curvlib.measure.probe import eps_grid, line_points


class Toy(nn.Module):
    """A stand-in with ``features``: a map of the pixels through ``body``."""

    def __init__(self, body):
        super().__init__()
        self.body = body
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the model a device

    def features(self, x):
        return self.body(x.flatten(1))

    def head(self, f):
        return f


class Circle(nn.Module):
    """f(x) = R (cos s, sin s) with s = ⟨w, x⟩: along x + εd the path is a circle of radius R."""

    def __init__(self, w, R):
        super().__init__()
        self.w, self.R = w, R

    def forward(self, z):
        s = z @ self.w
        return self.R * torch.stack([s.cos(), s.sin()], -1)


def _circle_setup(R=2.0):
    D = 16
    w = torch.linspace(0, 0.2, D, dtype=torch.float32)
    x = torch.full((3, 1, 4, 4), 0.5)
    d = torch.ones(3, 1, 4, 4)
    return Toy(Circle(w, R)), x, d, float(w.sum())  # w·d = Σ w (d = 1 per pixel, ‖d‖ = √D)


def test_theta_on_a_line_a_circle_and_a_kinked_path():
    t = torch.linspace(0, 1, 9)[:, None]
    line = torch.cat([t, 2 * t, -t], 1)
    assert theta(line).abs().max() < 1e-6
    S = 10
    a = torch.arange(S) * 2 * math.pi / S
    circle = torch.stack([a.cos(), a.sin()], -1)
    torch.testing.assert_close(theta(circle), torch.full((S - 2,), 2 * math.pi / S), rtol=1e-5, atol=1e-6)
    # a piecewise-linear path turning 90° at the point 3 and again at point 6
    pts = torch.tensor([[0, 0], [1, 0], [2, 0], [3, 0], [3, 1], [3, 2], [3, 3], [4, 3], [5, 3]], dtype=torch.float)
    th = np.degrees(theta(pts).numpy())
    assert np.allclose(th, [0, 0, 90, 0, 0, 90, 0], atol=1e-4)


def test_eps_grids():
    g = eps_grid("oneway", 0.1, 4)
    torch.testing.assert_close(g, torch.tensor([0.0, 0.025, 0.05, 0.075, 0.1]))
    torch.testing.assert_close(eps_grid("symmetric", 0.1, 4), torch.tensor([-0.1, -0.05, 0.0, 0.05, 0.1]))
    with pytest.raises(ValueError, match="protocol must be one of oneway, symmetric"):
        eps_grid("both", 0.1, 4)
    with pytest.raises(ValueError, match="n_steps must be an integer"):
        eps_grid("oneway", 0.1, 1)
    with pytest.raises(ValueError, match="eps_range must be positive"):
        eps_grid("oneway", float("nan"), 4)


def test_saturation_aware_direction_keeps_the_input_path_straight():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 8, 8, generator=g) * 0.6 + 0.2
    x[:, :, :2] = 0.0  # a saturated border, as Fashion-MNIST's background
    d = torch.randn(2, 1, 8, 8, generator=g)
    s = saturation_aware(d, x)
    assert (s[:, :, :2] == 0).all() and torch.allclose(s.flatten(1).norm(dim=1), torch.full((2,), 8.0))
    eps = eps_grid("symmetric", 0.02, 8)
    plain = theta(line_points(x, d[None], eps).flatten(3))
    aware = theta(line_points(x, s[None], eps).flatten(3))
    assert plain.max() > math.radians(20)  # the clipping kink at ε = 0
    assert aware.max() < 1e-3  # no pixel reaches 0 or 1 on this grid: a straight line
    with pytest.raises(ValueError, match="no pixel inside"):
        saturation_aware(d, torch.zeros_like(x))


def test_step_free_curvature_of_a_circle_is_one_over_its_radius():
    R = 2.0
    model, x, d, wd = _circle_setup(R)
    eps = torch.linspace(0, 0.05, 6)
    c = curvature(model, x, d, eps, batch_size=7)
    torch.testing.assert_close(c["kappa"], torch.full((3, 6), 1 / R), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c["speed"], torch.full((3, 6), R * abs(wd)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(c["omega"], torch.full((3, 6), abs(wd)), rtol=1e-4, atol=1e-4)
    # the authors' finite measure on the same circle: θ = ω Δ exactly (equal arcs)
    delta = 1e-2
    th = theta_local(model, x, d, eps[1:], delta, batch_size=5)
    torch.testing.assert_close(th, torch.full_like(th, abs(wd) * delta), rtol=1e-3, atol=1e-5)


def test_relu_network_has_no_smooth_curvature_and_its_kinks_are_counted():
    """f = ReLU(x_i − (0.5 + t_i)) for 3 pixels: along d = 1 each unit switches once, at ε = t_i."""
    D = 16
    lin = nn.Linear(D, 3)
    with torch.no_grad():
        lin.weight.zero_()
        for i in range(3):
            lin.weight[i, i] = 1.0
        lin.bias.copy_(-(0.5 + torch.tensor([0.013, 0.047, 0.048])))
    model = Toy(nn.Sequential(lin, nn.ReLU(inplace=True), nn.Linear(3, 4)))
    x, d = torch.full((2, 1, 4, 4), 0.5), torch.ones(2, 1, 4, 4)
    eps = eps_grid("oneway", 0.1, 10)  # steps of 0.01: switches in steps 1, 4 and 4
    k = kinks(model, x, d, eps, batch_size=11)
    expect = torch.zeros(10, dtype=torch.long)
    expect[1], expect[4] = 1, 2
    assert k.shape == (2, 10) and (k == expect).all()
    c = curvature(model, x, d, torch.tensor([0.03, 0.07]))  # (before 0.013 nothing moves: κ undefined)
    assert c["kappa"].abs().max() < 1e-6  # piecewise linear: no smooth bending between kinks
    with pytest.raises(ValueError, match="directions must have shape"):
        curvature(model, x, d[:1], eps)


def test_curvature_of_a_real_network_matches_finite_differences_and_names_its_blocks():
    from curvlib import models
    from curvlib.config import get_profile

    m = models.load("vit", get_profile("embedded", env={}), device="cpu")
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    d = torch.sign(torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1)))
    eps = torch.tensor([0.004])
    c = curvature(m, x, d, eps, blocks=True)
    assert c["block_names"] == [f"blocks.{i}" for i in range(4)] and c["block_omega"].shape == (4, 2, 1)
    h = 1e-3
    with torch.no_grad():
        f = [m.features((x + e * d).clamp(0, 1)).double() for e in (0.004 - h, 0.004, 0.004 + h)]
    f1, f2 = (f[2] - f[0]) / (2 * h), (f[2] - 2 * f[1] + f[0]) / h ** 2
    u = f1 / f1.norm(dim=1, keepdim=True)
    kappa_fd = (f2 - (f2 * u).sum(1, keepdim=True) * u).norm(dim=1) / f1.norm(dim=1) ** 2
    torch.testing.assert_close(c["kappa"][:, 0].double(), kappa_fd, rtol=0.05, atol=1e-4)
    assert all(getattr(mod, "fused_attn", False) is not False or not hasattr(mod, "fused_attn")
               for mod in m.modules())  # fused attention restored after the measurement
    names = [n for n, _ in residual_blocks(models.load("resnet", get_profile("embedded", env={}), device="cpu"))]
    assert names == ["layer1.0", "layer2.0", "layer3.0", "layer4.0"]


def test_ruler_step_and_curvature_tables():
    eps = eps_grid("symmetric", 0.1, 10)
    th = torch.zeros(1, 2, 9)
    th[..., 4] = math.radians(90)  # a spike at ε = 0 only
    res = {("resnet", "fgsm", "symmetric", False): {"theta": th, "input_theta": th, "eps": eps}}
    t = tj.ruler_table(res).set_index("ruler")
    assert t.loc["symmetric", "theta"] == pytest.approx(10.0) and t.loc["symmetric, |ε| > 0.01", "theta"] == 0
    import pandas as pd

    sweep = pd.DataFrame({"delta": [1e-3, 1e-3, 1e-2], "image": [0, 1, 0], "eps": [0.1] * 3,
                          "theta": [1e-3, 3e-3, 1e-2]})
    s = tj.step_table({"vit": sweep}).set_index("delta")
    assert s.loc[1e-3, "rate"] == pytest.approx(2.0) and s.loc[1e-2, "mean"] == pytest.approx(math.degrees(1e-2))
    c = {"omega": torch.ones(1, 2, 3), "kappa": torch.ones(1, 2, 3), "kinks": torch.full((1, 2, 2), 4),
         "eps": torch.tensor([0.0, 0.1, 0.2]),
         "block_omega": torch.stack([torch.ones(1, 2, 3), 3 * torch.ones(1, 2, 3)]),
         "block_names": ["a", "b"]}
    row = tj.curvature_table({"vit": c}).iloc[0]
    assert row.kinks_per_eps == pytest.approx(40.0) and row.top_block == "b" and row.omega_median == 1.0


def test_step_exponent_separates_smooth_bending_from_dense_kinks():
    import pandas as pd

    d = np.array([1e-4, 1e-3, 1e-2])
    steps = pd.DataFrame({"model": ["vit"] * 3 + ["resnet"] * 3, "delta": np.tile(d, 2),
                          "mean": np.concatenate([30 * d, 5 * d ** 0.5])})
    e = tj.step_exponent(steps)
    assert e["vit"] == pytest.approx(1.0) and e["resnet"] == pytest.approx(0.5)
    from curvlib import plots

    assert plots.model_dashes(["resnet", "resnet_gelu", "vit"]) == {"resnet": "", "resnet_gelu": (4, 1.5), "vit": ""}
