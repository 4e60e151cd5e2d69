import math

import numpy as np
import pytest
import torch
from test_travel import Linear

from curvlib.measure.random_jump import jump_travel, median_ratio, psnr, random_jump, rms_distance


def test_psnr_hand_values():
    x = torch.full((3, 1, 8, 8), 0.5)
    step = torch.sign(torch.randn(3, 1, 8, 8)) * 0.05  # uniform sign step, no clipping
    torch.testing.assert_close(psnr(x, x + step), torch.full((3,), 26.0206), atol=1e-3, rtol=0)
    assert -20 * math.log10(0.05) == pytest.approx(26.0206, abs=1e-4)
    torch.testing.assert_close(psnr(x, x + 0.1), torch.full((3,), 20.0), atol=1e-3, rtol=0)
    assert torch.isinf(psnr(x, x.clone())).all()  # identical images: +inf, stated in the docstring
    assert psnr(x, x + 0.1, data_range=2.0)[0] == pytest.approx(20 + 20 * math.log10(2), abs=1e-3)


def test_jump_norm_and_clipping():
    x = torch.full((4, 1, 8, 8), 0.5)
    for kind in ("random_sign", "random"):
        xr = random_jump(x, 0.05, kind, seed=1)
        torch.testing.assert_close(rms_distance(x, xr), torch.full((4,), 0.05), atol=1e-6, rtol=0)
    edge = torch.zeros(2, 1, 8, 8)
    xr = random_jump(edge, 0.05)
    assert xr.min() >= 0 and rms_distance(edge, xr).max() < 0.05  # clipping only shortens
    assert torch.equal(random_jump(x, 0.05, seed=3), random_jump(x, 0.05, seed=3))
    assert not torch.equal(random_jump(x, 0.05, seed=3), random_jump(x, 0.05, seed=4))


def test_paired_results_keep_sample_identity():
    torch.manual_seed(0)
    m = Linear().requires_grad_(False)
    x = torch.rand(40, 1, 4, 4) * 0.2 + 0.4
    y = m(x).argmax(-1)
    df, (fin0, finr) = jump_travel(m, x, y, eps_r=0.02, eps_max=0.3, tol=1e-5, return_images=True)
    assert df["index"].tolist() == list(range(40)) and (df.label.to_numpy() == y.numpy()).all()
    both = df[(df.status_direct == "crossed") & (df.status_jump == "crossed")]
    assert len(both) > 10
    # each final image really is misclassified and its PSNR matches its distance
    # (the refinement can land within float noise of the boundary, so allow a tie-level margin)
    for i in both.index:
        for img in (fin0[i:i + 1], finr[i:i + 1]):
            z = m(img)[0]
            assert z.argmax().item() != y[i] or (z.max() - z[1 - y[i]]).item() < 1e-6
    rms = both.total_direct.to_numpy()
    np.testing.assert_allclose(both.psnr_direct, -20 * np.log10(rms), rtol=1e-4)
    # shuffling the samples permutes the rows, nothing else
    perm = torch.randperm(40)
    df2 = jump_travel(m, x[perm], y[perm], eps_r=0.02, eps_max=0.3, tol=1e-5)
    np.testing.assert_allclose(df2.eps_direct.to_numpy(), df.eps_direct.to_numpy()[perm.numpy()], equal_nan=True)
    r = median_ratio(df, n_boot=200)
    assert r["lo"] <= r["median_ratio"] <= r["hi"] and r["n_pairs"] == len(both)


def test_bad_input():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="eps_r must be a positive"):
        random_jump(x, 0)
    with pytest.raises(ValueError, match="eps_r must be a positive"):
        random_jump(x, float("nan"))
    with pytest.raises(ValueError, match="kind must be"):
        random_jump(x, 0.05, kind="fgsm")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        random_jump(x + 2, 0.05)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(x, x[:1])
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="non-empty"):
        psnr(torch.rand(0, 3), torch.rand(0, 3))


def test_controls_separate_the_start_point_from_the_direction():
    # on a linear model FGSM(x_r) = FGSM(x) = sign(±w): the control with x_r's direction from x is the
    # direct travel, the control from x_r with x's direction is the jump route — nothing curved to find
    torch.manual_seed(0)
    m = Linear().requires_grad_(False)
    x = torch.rand(30, 1, 4, 4) * 0.2 + 0.4
    y = m(x).argmax(-1)
    df = jump_travel(m, x, y, eps_r=0.02, eps_max=0.5, tol=1e-6)
    for route in ("direct", "jump", "ctrl_point", "ctrl_direction"):
        assert {f"eps_{route}", f"status_{route}", f"total_{route}", f"psnr_{route}"} <= set(df.columns)
    np.testing.assert_allclose(df.eps_ctrl_direction, df.eps_direct, atol=2e-6, equal_nan=True)
    np.testing.assert_allclose(df.eps_ctrl_point, df.eps_jump, atol=2e-6, equal_nan=True)
    # total perturbation counts the jump: it is at least the jump's own (unclipped here) size minus ε*
    ok = df.status_jump == "crossed"
    assert (df.total_jump[ok] >= 0.02 - df.eps_jump[ok] - 1e-6).all()
    r = median_ratio(df, "total_jump", "total_direct", n_boot=100)
    assert r["n_pairs"] == int((ok & (df.status_direct == "crossed")).sum())
    with pytest.raises(ValueError, match="no column 'eps_nowhere'"):
        median_ratio(df, "eps_nowhere")


def test_a_jump_that_flips_the_label_counts_as_its_own_route():
    torch.manual_seed(0)
    m = Linear().requires_grad_(False)
    x = torch.rand(60, 1, 4, 4) * 0.2 + 0.4
    y = m(x).argmax(-1)
    df = jump_travel(m, x, y, eps_r=0.3, eps_max=0.5, tol=1e-5)  # a large jump flips some labels by itself
    flipped = (df.status_jump == "misclassified_at_start") & (df.status_direct == "crossed")
    assert flipped.any()
    xr = random_jump(x, 0.3)
    np.testing.assert_allclose(df.total_jump[flipped], rms_distance(x, xr).numpy()[flipped.to_numpy()], rtol=1e-5)
    assert df.eps_jump[flipped].isna().all()  # ε* of the second leg stays undefined: there is none
