import math

import numpy as np
import pytest
import torch

from curvlib.measure import search as search_module
from curvlib.measure.direction import direction, normalize
from curvlib.measure.search import max_passes, min_passes
from curvlib.measure.travel import positions, travel


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
    assert min_passes() == 1 + math.ceil(math.log2(1 / (1e-4 - 2.0 ** -20) + 1)) == 15
    assert df.passes.max() <= max_passes() == 26  # the default budget (issue #27)
    assert max_passes(budget=15) == 15
    with pytest.raises(ValueError, match="budget must be an integer ≥ 15"):
        max_passes(budget=14)
    with pytest.raises(ValueError, match="budget must be"):
        travel(m, x, y, d, budget=10, progress=False)


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


# crossings near ε = 0.9: the march needs ~9 probes to get there in steps ≤ eps_max / 8
@pytest.mark.parametrize("g, max_mean", [
    (lambda u: u, 14),                                    # linear margin
    (lambda u: u.sign() * u.abs() ** 0.15, 23),           # steep near the root: about bisection
    (lambda u: torch.tanh(40 * u) + 0.5 * u, 17),
])
def test_refinement_is_exact(g, max_mean):
    x0 = torch.linspace(0.0, 0.02, 50, dtype=torch.float64).float().view(-1, 1, 1, 1)
    c = torch.tensor(0.9)
    m = _Curve(c, g)
    y = torch.ones(50, dtype=torch.long)
    d = torch.ones_like(x0)
    df = travel(m, x0, y, d, eps_max=1.0, tol=1e-4, progress=False)
    truth = (c - x0.flatten()).double().numpy()
    assert (df.status == "crossed").all()
    assert np.all(df.eps.to_numpy() >= truth - 1e-6) and np.all(df.eps.to_numpy() - truth <= 1e-4 + 1e-6)
    assert np.all(df.eps - df.eps_lo <= 1e-4)
    assert df.passes.max() <= max_passes() and df.passes.mean() <= max_mean


class Path(torch.nn.Module):
    """Toy model on 1×1×4 images: pixel 0 is the position ε along the path (start 0, direction +1),
    pixels 1–3 carry per-sample parameters p (direction 0); class 1 while margin(ε, p) > 0."""

    num_classes = 2

    def __init__(self, margin):
        super().__init__()
        self.margin = margin

    def forward(self, x):
        v = x.flatten(1).double()
        m = self.margin(v[:, 0], v[:, 1], v[:, 2], v[:, 3])
        return torch.stack([torch.zeros_like(m), m], 1).float()

    @staticmethod
    def inputs(*params):
        """Images [N, 1, 1, 4] at ε = 0 with parameters params (three tensors [N] in [0, 1]), labels, directions."""
        p = torch.stack([torch.as_tensor(q, dtype=torch.float32) for q in params], 1)
        x = torch.cat([torch.zeros(len(p), 1), p], 1).view(-1, 1, 1, 4)
        d = torch.zeros_like(x)
        d[..., 0] = 1.0
        return x, torch.ones(len(p), dtype=torch.long), d


def _touch(e, c, w, a):
    """Falls at slope s towards ε = c, dips below 0 only on [c − w, c + w] (rounded over 0.01) and rises
    again at slope s: the shape the dense scan found behind the old grid's misses (FGSM paths that touch
    the boundary; the prediction reverts within 1e-3 to 1e-2)."""
    s = 5 + 30 * a
    r = 0.01
    return s * (torch.sqrt((e - c) ** 2 + r ** 2) - torch.sqrt(w ** 2 + r ** 2))


def _old_grid_travel(model, x, y, d):
    """The previous search's coarse walk (1/256, 1/64, 1/16, 1/4, 1/2, 3/4, 1): the first wrong grid point or None."""
    with torch.inference_mode():
        for e in (1 / 256, 1 / 64, 1 / 16, 1 / 4, 1 / 2, 3 / 4, 1.0):
            wrong = model(positions(x, d, torch.full((len(x),), e))).argmax(-1) != y
            yield e, wrong


def test_finds_narrow_islands_the_old_grid_stepped_over():
    c = torch.tensor([0.08, 0.1, 0.13, 0.18, 0.1, 0.16, 0.21, 0.3])
    w = torch.tensor([0.002, 0.005, 0.003, 0.01, 0.001, 0.002, 0.004, 0.02])
    a = torch.tensor([0.0, 0.3, 1.0, 0.5, 0.1, 0.8, 0.2, 0.6])
    model = Path(_touch)
    x, y, d = Path.inputs(c, w, a)
    # the old coarse grid sees no wrong point on any of these paths: it reported "never"
    assert not any(wrong.any() for _, wrong in _old_grid_travel(model, x, y, d))
    df = travel(model, x, y, d, eps_max=1.0, tol=1e-4, progress=False)
    first = (c - w).double().numpy()
    assert (df.status == "crossed").all(), df
    assert np.all(df.eps.to_numpy() >= first - 1e-6) and np.all(df.eps.to_numpy() <= first + 1e-4 + 1e-6), df
    assert df.passes.max() <= max_passes()


def _sawtooth(e, c, depth, unused):
    """Falls at slope 10 to 0 at ε = c, wrong on (c, c + 0.005), correct again on (c + 0.005, c + 0.015)
    with a peak of 10·depth·0.005, then wrong for good."""
    peak = 10 * (0.5 + depth) * 0.005
    first = 10 * (c - e)
    dip = -10 * (0.0025 - (e - c - 0.0025).abs())
    bump = peak - 10 * (0.5 + depth) * (e - c - 0.01).abs()
    after = -10 * (e - c - 0.015)
    return torch.where(e <= c, first, torch.where(e <= c + 0.005, dip, torch.where(e <= c + 0.015, bump, after)))


def test_several_sign_changes_in_a_bracket_give_the_first():
    c = torch.tensor([0.05, 0.1, 0.2, 0.37])
    model = Path(_sawtooth)
    x, y, d = Path.inputs(c, torch.tensor([0.0, 0.25, 0.5, 0.1]), torch.zeros(4))
    df = travel(model, x, y, d, eps_max=1.0, tol=1e-4, progress=False)
    assert (df.status == "crossed").all()
    first = c.double().numpy()
    assert np.all(df.eps.to_numpy() >= first - 1e-6) and np.all(df.eps.to_numpy() <= first + 1e-4 + 1e-6), df


def _wiggle(e, f, phase, offset):
    """Adversarial margins: fast oscillations around a small offset, crossing or nearly touching 0."""
    return torch.sin(2 * math.pi * (20 + 300 * f) * e + 6.3 * phase) * (0.2 + e) + (offset - 0.3)


def _slow_tangent(e, c, w, unused):
    """Touches 0 at c from above (never crosses), or barely crosses: the march's slowest approach."""
    return (e - c) ** 2 * 50 + (w - 0.5) * 1e-6


@pytest.mark.parametrize("budget, eps_max, tol", [(24, 1.0, 1e-4), (15, 1.0, 1e-4), (20, 0.5, 1e-5)])
def test_pass_bound_holds_on_adversarial_margins(budget, eps_max, tol):
    g = torch.Generator().manual_seed(0)
    n = 200
    p = torch.rand(3, n, generator=g)
    for margin in (_wiggle, _slow_tangent, _touch, _sawtooth):
        model = Path(margin)
        x, y, d = Path.inputs(*p)
        df = travel(model, x, y, d, eps_max=eps_max, tol=tol, budget=budget, progress=False)
        assert df.passes.max() <= max_passes(eps_max, tol, budget) == budget
        ok = df.status == "crossed"
        assert (df.eps[ok] - df.eps_lo[ok] <= tol).all()
        assert (df.eps_lo[df.status == "never"] == eps_max).all()
        with torch.inference_mode():  # ε* is a verified wrong point
            wrong = model(positions(x[ok.to_numpy()], d[ok.to_numpy()], df.eps[ok].to_numpy())).argmax(-1) == 0
        assert wrong.all()


def _deep_island(e, c, w, unused):
    """Gentle descent from 1.2 with one deep wrong island [c, c + w] (walls of slope 60)."""
    return torch.minimum(1.2 - 0.5 * e, 60 * ((e - c - w / 2).abs() - w / 2))


def test_never_check_finds_an_island_the_march_stepped_over():
    # the march's steps (≤ eps_max / 8) jump over these islands; before being declared "never" the sample
    # probes the middle of its riskiest accepted gap, which here lies inside the island
    c = torch.tensor([0.5, 0.75])
    x, y, d = Path.inputs(c, torch.full((2,), 0.06), torch.zeros(2))
    df = travel(Path(_deep_island), x, y, d, eps_max=1.0, tol=1e-4, progress=False)
    assert (df.status == "crossed").all(), df
    first = c.double().numpy()
    assert np.all(df.eps.to_numpy() >= first - 1e-6) and np.all(df.eps.to_numpy() <= first + 1e-4 + 1e-6), df
    assert df.passes.max() <= max_passes()


def _steep_island_then_crossing(e, c, w, unused):
    """Gentle descent from 2.4 crossing 0 at ε = 0.4, with an early wrong island [c, c + w] whose walls
    (slope 100) are far steeper than any slope seen around it: the shape behind mobilenetv2's misses."""
    return torch.minimum(2.4 - 6 * e, 100 * ((e - c - w / 2).abs() - w / 2))


def test_careful_search_finds_a_steep_island_the_default_steps_over():
    # the trade the frontier benchmark measures: the default march (16× growth) steps from 1/256 to 1/16 over the
    # island and crosses at 0.4; the public "careful" setting (3× growth, steps ≤ eps_max/32) lands inside it
    c = torch.tensor([0.033, 0.034])
    x, y, d = Path.inputs(c, torch.full((2,), 0.008), torch.zeros(2))
    model = Path(_steep_island_then_crossing)
    default = travel(model, x, y, d, eps_max=1.0, tol=1e-4, progress=False)
    assert np.allclose(default.eps.to_numpy(), 0.4, atol=1e-4), default  # the documented limit
    careful = travel(model, x, y, d, eps_max=1.0, tol=1e-4, progress=False, search="careful")
    first = c.double().numpy()
    assert np.all(careful.eps.to_numpy() >= first - 1e-6) and np.all(careful.eps.to_numpy() <= first + 1e-4 + 1e-6)
    assert careful.passes.max() <= search_module.SEARCHES["careful"].budget == 36


def test_search_settings_are_named_validated_and_the_default_budget_is_26():
    from curvlib.config import SEARCH_NAMES

    assert tuple(search_module.SEARCHES) == SEARCH_NAMES  # the profile's choices are the library's settings
    assert search_module.SEARCHES["default"].budget == search_module.DEFAULT_BUDGET == max_passes() == 26
    assert search_module.search_setting("careful") is search_module.SEARCHES["careful"]
    with pytest.raises(ValueError, match="unknown boundary search 'carefull'"):
        search_module.search_setting("carefull")
    with pytest.raises(ValueError, match="growth"):
        search_module.Search(growth=1.0)
    with pytest.raises(TypeError, match="budget must be an integer"):
        search_module.Search(budget=26.0)
    m = Linear()
    x = torch.rand(3, 1, 4, 4)
    y = m(x).argmax(-1)
    d = direction(m, x, y, "fgsm")
    with pytest.raises(ValueError, match="unknown boundary search"):
        travel(m, x, y, d, progress=False, search="fast")
    # an explicit budget overrides the setting's; a Search object works like its name
    a = travel(m, x, y, d, progress=False, search=search_module.SEARCHES["careful"])
    b = travel(m, x, y, d, progress=False, search="careful")
    assert a.equals(b)
