"""The hand-checkable toys: their formulas agree with curvlib's numerical measurements."""
import math

import numpy as np
import pytest
import torch

from curvlib import toys
from curvlib.exercises import check
from curvlib.measure.angles import theta
from curvlib.measure.direction import direction
from curvlib.measure.random_jump import jump_travel
from curvlib.measure.travel import travel

W = torch.tensor([[1.0, 2.0, -1.0, 0.5], [0.0, 1.0, 1.0, -0.5], [-1.0, 0.0, 0.5, 1.0]])
B = torch.tensor([0.1, 0.0, -0.2])
X = torch.tensor([0.6, 0.5, 0.2, 0.4])


def brackets(df, eps, slack=1e-6):
    """travel's bracket (eps_lo, eps] holds the exact ε* (pixels are float32: a 1e-6 slack)."""
    return df.eps_lo[0] - slack <= eps <= df.eps[0] + slack


def test_linear_eps_star_is_margin_over_l1_gap_along_the_sign_direction():
    margin = float((W[0] - W[1]) @ X + B[0] - B[1])
    d = torch.sign(W[1] - W[0])
    eps, j = toys.linear_eps_star(W, B, X, 0, d)
    assert j == 1 and eps == pytest.approx(margin / float((W[0] - W[1]).abs().sum()))
    df = travel(toys.Linear(W, B), X.view(1, 1, 1, 4), torch.tensor([0]), d.view(1, 1, 1, 4), progress=False)
    assert df.status[0] == "crossed" and df.new_class[0] == 1 and brackets(df, eps)


def test_linear_eps_star_picks_the_first_class_to_overtake_and_refuses_bad_input():
    d = torch.tensor([-1.0, -1.0, 1.0, 1.0])
    eps, j = toys.linear_eps_star(W, B, X, 0, d)
    df = travel(toys.Linear(W, B), X.view(1, 1, 1, 4), torch.tensor([0]), d.view(1, 1, 1, 4), progress=False)
    assert df.new_class[0] == j and brackets(df, eps)
    assert toys.linear_eps_star(W, B, X, 0, torch.zeros(4)) == (math.inf, None)
    with pytest.raises(ValueError, match="not classified as 1"):
        toys.linear_eps_star(W, B, X, 1, d)
    with pytest.raises(ValueError, match="need W's 4 values"):
        toys.linear_eps_star(W, B, X[:3], 0, d[:3])
    with pytest.raises(ValueError, match="must be finite"):
        toys.linear_eps_star(W, B, X, 0, torch.tensor([1.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(ValueError, match="must be finite"):
        toys.Linear(W, torch.tensor([0.0, float("inf"), 0.0]))


def test_kinked_toy_fgsm_sees_the_flat_side_the_jump_the_steep_side():
    m = toys.Kinked()
    x, y = torch.full((1, 1, 1, 2), 0.5), torch.tensor([0])
    assert np.allclose(direction(m, x, y, "fgsm").flatten(), [-1.0, 1.0])
    direct = travel(m, x, y, direction(m, x, y, "fgsm"), progress=False)
    assert brackets(direct, 0.16 / 0.4)
    xr = x + 0.05
    dr = direction(m, xr, y, "fgsm")
    assert np.allclose(dr.flatten(), [1.0, 1.0])
    after = travel(m, xr, y, dr, progress=False)
    exact = (0.16 - 0.3 * 0.05 + 0.1 * 0.05 - 4 * 0.03) / 4.2
    assert brackets(after, exact)
    # the library's random jump on four copies: the jumps to the right of the kink are the near ones
    df = jump_travel(m, x.repeat(4, 1, 1, 1), y.repeat(4), eps_r=0.05, index=torch.arange(4))
    right = df.total_jump < 0.1
    assert right.any() and (df.total_jump[~right] > 0.3).all()
    assert np.allclose(df.total_jump[right], df.total_ctrl_direction[right], atol=2e-4)


def test_polygon_and_bent_line_angles():
    assert np.allclose(np.degrees(theta(toys.polygon_path(12)).numpy()), 30.0)
    th = np.degrees(theta(toys.bent_line(3, 4, 25.0)).numpy())
    assert th.shape == (6,) and np.isclose(th[2], 25.0) and np.allclose(np.delete(th, 2), 0.0, atol=1e-6)
    with pytest.raises(ValueError):
        toys.polygon_path(2)
    with pytest.raises(ValueError):
        toys.bent_line(0, 3, 10.0)


def test_exercise_check(capsys):
    out = (check(None, 0.4, "ε*"), capsys.readouterr().out)
    assert out[0] is None and "not attempted" in out[1] and "within 0.1% of the solution" in out[1]
    assert check(0.4001, 0.4) is True
    assert check([1, 2], [1, 2.5]) is False and "not yet" in capsys.readouterr().out
    assert check("vit", "vit") is True and check("vit", "resnet") is False
    with pytest.raises(ValueError, match="reference solution is None"):
        check(1.0, None)
