import math

import numpy as np
import pytest
import torch

from curvlib.direction import direction, normalize
from curvlib.travel import DEFAULT_GRID, max_passes, travel


class Linear(torch.nn.Module):
    """Two-class linear model on 1×4×4 images: logit gap z(x) = w·x + b."""

    num_classes = 2
    name = "linear"

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(16, generator=g))
        self.b = torch.nn.Parameter(torch.tensor(0.3))

    def gap(self, x):
        return x.flatten(1) @ self.w + self.b

    def forward(self, x):
        z = self.gap(x)
        return torch.stack([-z / 2, z / 2], 1)


class Threshold(torch.nn.Module):
    """Class 1 while mean pixel < t, class 0 above: monotone along any direction raising pixels."""

    num_classes = 2
    name = "threshold"

    def __init__(self, t):
        super().__init__()
        self.t = torch.nn.Parameter(torch.as_tensor(t, dtype=torch.float32))

    def forward(self, x):
        m = x.flatten(1).mean(1)
        return torch.stack([(m - self.t) * 100, (self.t - m) * 100], 1)


@pytest.fixture
def linear_data():
    torch.manual_seed(1)
    m = Linear().requires_grad_(False)
    x = torch.rand(64, 1, 4, 4) * 0.2 + 0.4
    y = m(x).argmax(-1)
    return m, x, y


def test_direction_norms_and_kinds(linear_data):
    m, x, y = linear_data
    ref = direction(m, x, y, "fgsm")
    for kind in ("fgsm", "random", "random_sign", "perp", "target"):
        d = direction(m, x, y, kind, seed=3, reference=ref, target=torch.rand_like(x))
        assert d.shape == x.shape
        torch.testing.assert_close(d.flatten(1).norm(dim=1), torch.full((len(x),), 4.0))
    perp = direction(m, x, y, "perp", reference=ref)
    assert (perp.flatten(1) * ref.flatten(1)).sum(1).abs().max() < 1e-4
    assert torch.equal(direction(None, x, kind="random", seed=5), direction(None, x, kind="random", seed=5))
    shared = direction(None, x, kind="random", shared=True)
    assert torch.equal(shared[0], shared[-1])
    assert set(direction(None, x, kind="random_sign").unique().tolist()) == {-1.0, 1.0}


def test_fgsm_is_sign_of_gradient_and_leaves_parameters_alone(linear_data):
    m, x, y = linear_data
    m.requires_grad_(True)
    d = direction(m, x, y, "fgsm")
    assert m.w.grad is None
    # for class 1 the loss falls as the gap grows: FGSM moves against sign(w)
    s = torch.where(y == 1, -1.0, 1.0)[:, None] * torch.sign(m.w)[None]
    torch.testing.assert_close(d.flatten(1), s)


def test_linear_closed_form(linear_data):
    m, x, y = linear_data
    d = direction(m, x, y, "fgsm")
    df = travel(m, x, y, d, eps_max=0.2, tol=1e-6, progress=False)
    z, dz = m.gap(x), d.flatten(1) @ m.w
    exact = (-z / dz).numpy()  # gap reaches 0; x + εd stays inside [0, 1] for ε ≤ 0.2
    crossed = df.status == "crossed"
    assert crossed.mean() > 0.5
    err = df.eps[crossed].to_numpy() - exact[crossed.to_numpy()]
    assert (err >= -1e-6).all() and (err <= 1e-6 + 1e-6).all()
    assert (np.abs(df.eps_lo[crossed] - df.eps[crossed]) <= 1e-6 + 1e-9).all()
    assert (df.new_class[crossed] != df.label[crossed]).all()
    assert (exact[(df.status == "never").to_numpy()] > 0.2 - 1e-6).all()


def test_passes_budget(linear_data):
    m, x, y = linear_data
    d = direction(m, x, y, "fgsm")
    df = travel(m, x, y, d, eps_max=1.0, tol=1e-4, progress=False)
    assert df.passes.max() <= max_passes() == 1 + 7 + math.ceil(math.log2(0.25 / 1e-4)) == 20


@pytest.mark.parametrize("t", [0.3, 0.55, 0.8])
def test_monotone_toy(t):
    m = Threshold(t).requires_grad_(False)
    x = torch.full((5, 1, 4, 4), 0.2)
    y = torch.ones(5, dtype=torch.long)
    d = torch.ones_like(x) * torch.tensor([1.0, 0.5, 2.0, 1.0, 1.0]).view(-1, 1, 1, 1)
    df = travel(m, x, y, d, eps_max=1.0, tol=1e-5, progress=False)
    expected = (t - 0.2) / d.flatten(1)[:, 0].numpy()
    for i, e in enumerate(expected):
        if e <= 1.0 and 0.2 + e * d[i, 0, 0, 0] <= 1.0:
            assert df.status[i] == "crossed" and 0 <= df.eps[i] - e <= 1e-5 + 1e-6
        else:
            assert df.status[i] == "never" and np.isnan(df.eps[i])


def test_statuses_keep_every_sample():
    m = Threshold(0.5).requires_grad_(False)
    x = torch.cat([torch.full((2, 1, 4, 4), 0.2), torch.full((2, 1, 4, 4), 0.7)])
    y = torch.ones(4, dtype=torch.long)
    d = torch.cat([torch.ones(1, 1, 4, 4), -torch.ones(1, 1, 4, 4), torch.ones(2, 1, 4, 4)])
    df = travel(m, x, y, d, progress=False, batch_size=3)
    assert df["index"].tolist() == [0, 1, 2, 3]
    assert df.status.tolist() == ["crossed", "never", "misclassified_at_start", "misclassified_at_start"]
    assert df.eps[1:].isna().all() and df.eps_lo[2:].isna().all()


def test_chunking_does_not_change_results(linear_data):
    m, x, y = linear_data
    d = direction(None, x, kind="random", seed=2)
    a = travel(m, x, y, d, progress=False, batch_size=7)
    b = travel(m, x, y, d, progress=False, batch_size=1000)
    import pandas as pd

    # batched matmuls differ in the last bits, which moves the interpolated queries: ε* agree within tol
    cols = ["index", "label", "pred", "status", "new_class"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    np.testing.assert_allclose(a.eps, b.eps, atol=1e-4, rtol=0)
    np.testing.assert_allclose(a.confidence, b.confidence, rtol=1e-5)


def test_bad_input(linear_data):
    m, x, y = linear_data
    d = direction(m, x, y, "fgsm")
    with pytest.raises(ValueError, match="directions must have the images' shape"):
        travel(m, x, y, d[:, :, :2], progress=False)
    with pytest.raises(ValueError, match="direction is zero"):
        travel(m, x, y, torch.zeros_like(d), progress=False)
    with pytest.raises(ValueError, match="eps_max must be a positive"):
        travel(m, x, y, d, eps_max=0, progress=False)
    with pytest.raises(ValueError, match="tol must be"):
        travel(m, x, y, d, tol=0, progress=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        travel(m, x, y + 5, d, progress=False)
    with pytest.raises(ValueError, match="one label per image"):
        travel(m, x, y[:3], d, progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        travel(m, x * 10, y, d, progress=False)
    with pytest.raises(ValueError, match="zero direction"):
        normalize(torch.zeros(2, 1, 2, 2))
    with pytest.raises(ValueError, match="unknown direction kind 'pgd'"):
        direction(m, x, y, "pgd")
    with pytest.raises(ValueError, match="perp directions need reference"):
        direction(m, x, y, "perp")
    with pytest.raises(ValueError, match="fgsm directions need"):
        direction(None, x, None, "fgsm")


class _Curve(torch.nn.Module):
    """1-pixel toy: class 1 while g(c − x) > 0, so along d = +1 the crossing is at ε = c − x0."""

    def __init__(self, c, g):
        super().__init__()
        self.c, self.g, self.num_classes = c, g, 2

    def forward(self, x):
        v = self.g(self.c - x.flatten(1)[:, 0])
        return torch.stack([torch.zeros_like(v), v], 1)


@pytest.mark.parametrize("g, max_mean_refine", [
    (lambda u: u, 7),                                     # linear margin: ~half the bisection count
    (lambda u: u.sign() * u.abs() ** 0.15, 12),           # steep near the root: falls back to bisection
    (lambda u: torch.tanh(40 * u) + 0.5 * u, 12),
])
def test_refinement_is_exact_and_never_slower_than_bisection(g, max_mean_refine):
    x0 = torch.linspace(0.0, 0.02, 50, dtype=torch.float64).float().view(-1, 1, 1, 1)
    c = torch.tensor(0.9)
    m = _Curve(c, g)
    y = torch.ones(50, dtype=torch.long)
    d = torch.ones_like(x0)
    df = travel(m, x0, y, d, eps_max=1.0, tol=1e-4, progress=False)
    truth = (c - x0.flatten()).double().numpy()
    assert (df.status == "crossed").all()
    assert np.all(df.eps.to_numpy() >= truth - 1e-6) and np.all(df.eps.to_numpy() - truth <= 1e-4 + 1e-6)
    grid = np.array(DEFAULT_GRID)
    k = np.searchsorted(grid, truth)  # first grid point at or beyond the crossing
    width = grid[k] - np.where(k > 0, grid[np.maximum(k - 1, 0)], 0.0)
    refine = df.passes.to_numpy() - 1 - (k + 1)
    assert np.all(refine <= np.ceil(np.log2(width / 1e-4)))  # never more than bisection
    assert refine.mean() <= max_mean_refine
