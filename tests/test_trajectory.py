import math
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from curvlib import models, widgets
from curvlib.measure.angles import theta, theta_summary
from curvlib.measure.probe import probe_line, probe_plane, project_2d
from curvlib.measure.views import plane_view
from curvlib.plots.explorer import explorer_figure


class LinearFeatures(torch.nn.Module):
    """features = W·x (linear), head = a fixed linear map; name/num_classes like CurvModel."""

    name, num_classes = "linfeat", 3

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = torch.nn.Parameter(torch.randn(5, 16, generator=g))
        self.H = torch.nn.Parameter(torch.randn(3, 5, generator=g))

    def features(self, x):
        return x.flatten(1) @ self.W.T

    def head(self, f):
        return f @ self.H.T

    def forward(self, x):
        return self.head(self.features(x))


def test_theta_zero_on_linear_map():
    m = LinearFeatures()
    x = torch.full((3, 1, 4, 4), 0.5)
    d = torch.sign(torch.randn(3, 1, 4, 4))
    f = probe_line(m, x, d, torch.linspace(-0.2, 0.2, 9))["features"]  # stays inside [0, 1]: no clipping
    assert theta(f).abs().max() < 1e-3


def test_theta_on_circle_and_right_angle():
    S = 16
    t = torch.arange(S) * 2 * math.pi / S
    circle = torch.stack([t.cos(), t.sin(), torch.zeros(S)], -1)
    torch.testing.assert_close(theta(circle), torch.full((S - 2,), 2 * math.pi / S), atol=1e-5, rtol=0)
    corner = torch.tensor([[0.0, 0], [1, 0], [1, 1]])
    assert theta(corner).item() == pytest.approx(math.pi / 2)
    batched = theta(torch.stack([circle, circle]).unsqueeze(0))
    assert batched.shape == (1, 2, S - 2)
    s = theta_summary(batched)
    assert len(s) == S - 2 and np.allclose(s["median"], 2 * math.pi / S, atol=1e-5)


def test_theta_of_a_stationary_step_is_nan():
    f = torch.tensor([[0.0, 0], [0, 0], [1, 0]])
    assert torch.isnan(theta(f)).all()


def test_probe_equals_plain_loop():
    torch.manual_seed(0)
    m = models.build("vit").eval()
    x = torch.rand(2, 1, 32, 32)
    d = torch.stack([torch.sign(torch.randn(2, 1, 32, 32)) for _ in range(3)])
    eps = torch.linspace(-0.05, 0.05, 5)
    out = probe_line(m, x, d, eps, batch_size=7)
    with torch.no_grad():
        for k in range(3):
            for i in range(2):
                for s, e in enumerate(eps):
                    f = m.features((x[i:i + 1] + e * d[k, i:i + 1]).clamp(0, 1))
                    torch.testing.assert_close(out["features"][k, i, s], f[0], rtol=1e-4, atol=1e-5)
    assert out["pred"].shape == (3, 2, 5)
    plane = probe_plane(m, x[:1], d[0, 0], d[1, 0], eps[:3], eps[:4])
    with torch.no_grad():
        f = m.features((x[:1] + eps[1] * d[0, 0] + eps[2] * d[1, 0]).clamp(0, 1))
    torch.testing.assert_close(plane["features"][1, 2], f[0], rtol=1e-4, atol=1e-5)
    assert plane["features"].shape[:2] == (3, 4)


def test_project_2d_shapes_and_invariances():
    g = torch.Generator().manual_seed(0)
    pts = torch.randn(4, 6, 10, generator=g)
    xy, proj = project_2d(pts)
    assert xy.shape == (4, 6, 2)
    # translation-invariant; distances in the PCA plane never exceed the true ones
    xy2, _ = project_2d(pts + 5.0)
    torch.testing.assert_close(xy, xy2, atol=1e-4, rtol=0)
    flat, fxy = pts.reshape(-1, 10), xy.reshape(-1, 2)
    assert (torch.cdist(fxy, fxy) <= torch.cdist(flat, flat) + 1e-4).all()
    # points already in a plane are reproduced exactly (up to rotation): distances preserved
    planar = torch.zeros(20, 10)
    planar[:, :2] = torch.randn(20, 2, generator=g)
    pxy, _ = project_2d(planar)
    torch.testing.assert_close(torch.cdist(pxy, pxy), torch.cdist(planar, planar), atol=1e-4, rtol=0)
    # reuse of a projection; the plane method
    again, _ = project_2d(pts, basis=proj["basis"], center=proj["center"])
    torch.testing.assert_close(again, xy, atol=1e-5, rtol=0)
    pxy2, _ = project_2d(planar, "plane", basis=torch.eye(10)[:2] * 3)
    torch.testing.assert_close(pxy2, (planar[:, :2] - planar[:, :2].mean(0)).float(), atol=1e-5, rtol=0)


def test_bad_input():
    m = LinearFeatures()
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="S ≥ 3"):
        theta(torch.rand(2, 5))
    with pytest.raises(ValueError, match="directions must have shape"):
        probe_line(m, x, torch.rand(2, 1, 4, 5), [0.0, 0.1])
    with pytest.raises(ValueError, match="non-empty finite"):
        probe_line(m, x, torch.rand_like(x), [])
    with pytest.raises(ValueError, match="one image"):
        probe_plane(m, x, x[0], x[0], [0.0], [0.0])
    with pytest.raises(ValueError, match="method must be"):
        project_2d(torch.rand(5, 3), "tsne")
    with pytest.raises(ValueError, match="needs basis"):
        project_2d(torch.rand(5, 3), "plane")
    with pytest.raises(ValueError, match="NaN"):
        project_2d(torch.full((5, 3), float("nan")))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        probe_line(m, x + 3, torch.rand_like(x), [0.0])


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.inputs, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        elif tag == "input":
            self.inputs.append(a)
        elif tag == "script":
            self.scripts += 1


def test_static_viewer_holds_every_frame_and_needs_no_kernel():
    def render(s, c):
        fig, ax = plt.subplots()
        ax.plot([0, s], [0, c])
        return fig

    html_text = widgets.static_explorer(render, [0.01, 0.02, 0.05], [2, 4])
    p = _Collect()
    p.feed(html_text)
    assert p.scripts == 0
    assert sorted(i["data-k"] for i in p.imgs) == [f"{i}_{j}" for i in range(3) for j in range(2)]
    assert all(i["src"].startswith("data:image/png;base64,") for i in p.imgs)
    assert sum(i["style"].startswith("display:block") for i in p.imgs) == 1
    assert len(p.inputs) == 2 and all("oninput" in i and i["type"] == "range" for i in p.inputs)
    with pytest.raises(ValueError, match="at least one value"):
        widgets.static_explorer(render, [], [1])


def test_plane_view_on_a_model():
    torch.manual_seed(0)
    m = models.build("resnet").eval()
    x = torch.rand(1, 1, 32, 32)
    v = plane_view(m, x, torch.tensor([3]), 0.01, 2)
    assert v["rep"].shape == (5, 5, 2) and v["pred"].shape == (5, 5)
    with pytest.raises(ValueError, match="step must be positive"):
        plane_view(m, x, torch.tensor([3]), 0.0, 2)


def test_live_explorer_builds_and_redraws(monkeypatch):
    torch.manual_seed(0)
    ms = {"resnet": models.build("resnet").eval(), "vit": models.build("vit").eval()}
    calls = []
    real = explorer_figure

    def spy(sel, *a, **k):
        calls.append((tuple(sel), a[0:2]))
        return real(sel, *a, **k)

    monkeypatch.setattr(widgets.live, "explorer_figure", spy)  # where the live explorer looks it up
    x = torch.rand(1, 1, 32, 32)
    box = widgets.live_explorer(ms, x, torch.tensor([1]), steps=(0.01, 0.02), counts=(1, 2))
    box.children[0].children[1].value = 1  # moving the step-count slider redraws
    box.children[1].children[1].value = "resnet vs vit"
    assert calls == [(("resnet", "vit"), (0.02, 2)), (("resnet", "vit"), (0.02, 1))]
