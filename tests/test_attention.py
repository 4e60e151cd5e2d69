import numpy as np
import pytest
import torch
from torch import nn

from curvlib import models
from curvlib.config import get_profile
from curvlib.measure import attention as at


def test_score_identity_float64():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 7, 16, generator=g, dtype=torch.float64)
    P = torch.randn(3, 7, 16, generator=g, dtype=torch.float64)
    Wq, Wk = (torch.randn(16, 8, generator=g, dtype=torch.float64) for _ in range(2))
    r = at.score_residual(X, P, Wq, Wk)
    assert (r["A_XP"] - (r["A_X"] + r["A_P"] + r["R"])).abs().max() < 1e-10
    assert r["R"].abs().max() > 1  # the cross term is really there
    torch.testing.assert_close(r["A_X"], X @ Wq @ Wk.T @ X.transpose(-1, -2))


def test_linear_maps_are_additive_attention_is_not():
    torch.manual_seed(0)
    X, P = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    conv = nn.Conv2d(3, 5, 3, padding=1).double()
    assert at.additivity_defect(conv, X, P).max() < 1e-12
    assert at.midpoint_defect(conv, X, P).max() < 1e-12
    lin = nn.Linear(8, 4).double()
    assert at.additivity_defect(lin, X, P).max() < 1e-12
    attn = models.build("vit").net.blocks[0].attn.double().eval()
    T = torch.randn(2, 65, 96, dtype=torch.float64)
    dT = torch.randn(2, 65, 96, dtype=torch.float64)
    assert at.additivity_defect(attn, T, dT).min() > 1e-3
    assert at.midpoint_defect(attn, T, dT).min() > 1e-3


@pytest.mark.parametrize("name", ["vit", "swin"])
def test_reimplementation_matches_timm(name):
    torch.manual_seed(1)
    net = models.build(name).net.eval()
    attn = net.blocks[0].attn if name == "vit" else net.layers[0].blocks[0].attn
    T = 65 if name == "vit" else attn.window_area
    X = torch.randn(3, T, attn.qkv.in_features)
    with torch.no_grad():
        torch.testing.assert_close(at.attention_parts(attn, X)["out"], attn(X), rtol=1e-4, atol=1e-5)
    resp = at.attention_response(attn.double(), X.double(), 0.01 * torch.randn_like(X).double())
    torch.testing.assert_close(resp["R"], resp["cross"], rtol=1e-8, atol=1e-10)
    # for a small perturbation the cross term (linear in P) dominates A(P) (quadratic in P)
    assert ((resp["share"] - 1).abs() < 0.05).all()


def test_layer_defects_on_trained_models():
    x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    d = torch.sign(torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(1)))
    r = at.layer_defects(models.load("resnet", get_profile("embedded", env={}), device="cpu"), x, d, 0.05)
    assert r.loc[r.component == "conv", "defect"].max() < 1e-4
    assert r.loc[r.component == "relu", "defect"].median() > 1e-3
    v = at.layer_defects(models.load("vit", get_profile("embedded", env={}), device="cpu"), x, d, 0.05)
    assert {"attention", "attention scores", "softmax", "layernorm", "gelu", "linear"} <= set(v.component)
    assert v.loc[v.component == "attention", "defect"].min() > 1e-4
    assert v.loc[v.component == "linear", "defect"].max() < 1e-3


def test_bad_shapes():
    X = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="same shape"):
        at.score_residual(X, X[:, :4], torch.randn(8, 4), torch.randn(8, 4))
    with pytest.raises(ValueError, match=r"Wq and Wk must both be \[D=8, D_k\]"):
        at.score_residual(X, X, torch.randn(6, 4), torch.randn(6, 4))
    with pytest.raises(ValueError, match="NaN"):
        at.score_residual(X * float("nan"), X, torch.randn(8, 4), torch.randn(8, 4))
    attn = models.build("vit").net.blocks[0].attn
    with pytest.raises(ValueError, match=r"X must be \[B, T, 96\]"):
        at.attention_parts(attn, torch.randn(2, 5, 8))
    with pytest.raises(TypeError, match="timm attention module"):
        at.attention_parts(nn.Linear(3, 3), torch.randn(1, 2, 3))
    with pytest.raises(ValueError, match="same shape"):
        at.additivity_defect(nn.Identity(), torch.randn(2, 3), torch.randn(2, 4))


# --- measured on the input each module really receives -------------------------------------------------------------

def _fashion(n=8):
    from curvlib import data
    from curvlib.measure.direction import direction

    p = get_profile("embedded", env={}, device="cpu")
    x, y = data.test_set(p, n=n)
    return p, x, y, direction


def test_captured_relu_inputs_of_the_shipped_resnet_have_both_signs():
    """timm's ResNet runs ReLU(inplace=True): a pre-hook that keeps a reference sees the ReLU's
    output, not its input. The capture must hold the input as it was (negative entries included)."""
    p, x, _, _ = _fashion(4)
    model = models.load("resnet", p)
    caps = {k: c for k, c in at.layer_inputs(model, x).items() if type(c[0]).__name__ == "ReLU"}
    assert len(caps) >= 2
    for name, c in caps.items():
        assert (c[1] < 0).float().mean() > 0.05, name
    # the loaded model itself is left as it was (in place), the capture ran on a copy
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))


def test_relu_bends_a_finite_fgsm_segment():
    """Fed its true inputs, a ReLU bends the FGSM segment wherever units switch sign: its median
    bend is far above float rounding (it was ≈ 1e-7 when in-place ReLUs overwrote the inputs)."""
    p, x, y, direction = _fashion(8)
    for name in ("resnet", "mobilenetv2"):
        model = models.load(name, p)
        r = at.layer_defects(model, x, direction(model, x, y, "fgsm"), 0.02)
        assert r.loc[r.component == "relu", "bend"].median() > 1e-3, name
        assert r.loc[r.component.isin(at.AFFINE), "defect"].max() < 1e-3, name


def test_in_place_modules_leave_the_measured_tensors_alone():
    torch.manual_seed(0)
    X, P = torch.randn(3, 4, 5, 5, dtype=torch.float64), torch.randn(3, 4, 5, 5, dtype=torch.float64)
    X0, P0 = X.clone(), P.clone()
    for fn in (at.midpoint_defect, at.additivity_defect):
        torch.testing.assert_close(fn(nn.ReLU(inplace=True), X, P), fn(nn.ReLU(), X0, P0))
        assert torch.equal(X, X0) and torch.equal(P, P0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Sequential(nn.ReLU6(inplace=True)))
    copy = at.without_inplace(net)
    assert copy is not net and not any(getattr(m, "inplace", False) for m in copy.modules())
    assert net[1].inplace and net[2][0].inplace
    assert at.without_inplace(copy) is copy


def test_variants_swapped_components_are_measured():
    """The swap variants' own module types (timm LayerNorm2d, TokenBatchNorm) are components too."""
    p, x, _, _ = _fashion(2)
    kinds = {name: {at.COMPONENTS[type(c[0]).__name__] for c in at.layer_inputs(models.load(name, p), x).values()}
             for name in ("resnet_ln", "vit_bn")}
    assert "layernorm" in kinds["resnet_ln"] and "batchnorm" not in kinds["resnet_ln"]
    assert "batchnorm" in kinds["vit_bn"] and "layernorm" not in kinds["vit_bn"]


def _shifted_swin():
    p = get_profile("embedded", env={}, device="cpu")
    model = models.load("swin", p)
    name, block = next((n, b) for n, b in model.named_modules()
                       if type(b).__name__ == "SwinTransformerBlock" and max(b.shift_size) > 0)
    return p, model, name, block


def test_swin_shifted_window_mask_is_captured_and_used():
    """The second block of Swin's first stage attends within shifted windows: timm passes it
    ``mask=`` as a keyword. The capture keeps it; with it the re-implementation equals the
    module's own output inside the real forward pass (without it, it does not)."""
    from curvlib import data

    p, model, name, block = _shifted_swin()
    x = data.test_set(p, n=3)[0]
    seen = {}
    h = block.attn.register_forward_hook(lambda m, i, o: seen.setdefault("out", o.detach().clone()))
    try:
        caps = at.layer_inputs(model, x)
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    cap = caps[f"{name}.attn"]
    mask = cap[2]["mask"]
    assert mask is not None and (mask < 0).any()
    torch.testing.assert_close(at.attention_parts(cap[0], cap[1], mask)["out"], seen["out"], rtol=1e-4, atol=1e-5)
    assert (at.attention_parts(cap[0], cap[1])["out"] - seen["out"]).abs().max() > 1e-2
    # the defect measures evaluate the module with its mask: the masked score entries stay at ≈ −100
    P = 1e-2 * torch.randn_like(cap[1])
    resp = at.attention_response(cap[0], cap[1], P, mask)
    assert resp["A_X"].min() < -50
    torch.testing.assert_close(resp["R"], resp["cross"], rtol=1e-3, atol=1e-4)


def test_layer_defects_evaluate_swin_attention_with_its_mask():
    import functools

    p, model, name, block = _shifted_swin()
    from curvlib import data
    from curvlib.measure.direction import direction

    x, y = data.test_set(p, n=2)
    d = direction(model, x, y, "fgsm")
    long = at.layer_defects(model, x, d, 0.02, per_sample=True)
    got = long[(long.layer == f"{name}.attn") & (long.component == "attention")].bend.to_numpy()
    a, b = at.layer_inputs(model, x), at.layer_inputs(model, (x + 0.02 * d).clamp(0, 1))
    cap = a[f"{name}.attn"]
    P = b[f"{name}.attn"][1] - cap[1]
    want = at.midpoint_defect(functools.partial(cap[0], mask=cap[2]["mask"]), cap[1], P).numpy()
    unmasked = at.midpoint_defect(cap[0], cap[1], P).numpy()
    assert got == pytest.approx(want, rel=1e-4, abs=1e-7)
    assert not got == pytest.approx(unmasked, rel=1e-2)


# --- the residual is linear in t, the bend quadratic ------------------------------------------------------------------

def test_score_line_random_block_float64():
    torch.manual_seed(0)
    attn = models.build("vit").net.blocks[0].attn.eval()
    with torch.no_grad():
        attn.qkv.bias.normal_()  # non-zero biases: they enter R, not the quadratic term
    X, P = torch.randn(2, 65, 96), torch.randn(2, 65, 96)
    ts = np.logspace(-3, 0, 4)
    f = at.score_line(attn, X, P, ts)
    assert list(f.columns) == ["sample", "t", "change", "linear", "quadratic", "bend", "bend_predicted",
                               "linear_share", "rel_bend", "identity_err"]
    assert len(f) == 2 * len(ts) and f.identity_err.max() < 1e-9
    np.testing.assert_allclose(f.bend, f.bend_predicted, rtol=1e-6)
    g = f.groupby("t")[["bend", "linear_share", "rel_bend"]].median()
    slope = np.polyfit(np.log(g.index), np.log(g.bend), 1)[0]
    assert slope == pytest.approx(2, abs=1e-3)
    assert g.linear_share.iloc[0] == pytest.approx(1, abs=1e-2) and g.rel_bend.is_monotonic_increasing
    assert attn.qkv.weight.dtype == torch.float32  # computed on a float64 copy
    with pytest.raises(ValueError, match="positive"):
        at.score_line(attn, X, P, [0.0, 1.0])


def test_score_line_on_the_shipped_vit_first_block():
    p, x, y, direction = _fashion(4)
    model = models.load("vit", p)
    d = direction(model, x, y, "fgsm")
    a, b = at.layer_inputs(model, x), at.layer_inputs(model, (x + 0.02 * d).clamp(0, 1))
    cap = a["net.blocks.0.attn"]
    P = b["net.blocks.0.attn"][1] - cap[1]
    P = P * (cap[1].flatten(1).norm(dim=1) / P.flatten(1).norm(dim=1)).view(-1, 1, 1)
    g = at.score_line(cap[0], cap[1], P, np.logspace(-3, 0, 4)).groupby("t").median()
    assert np.polyfit(np.log(g.index), np.log(g.bend), 1)[0] == pytest.approx(2, abs=0.01)
    assert g.linear_share.iloc[0] > 0.99 and g.rel_bend.iloc[0] < 1e-2 and g.rel_bend.iloc[-1] > 10 * g.rel_bend.iloc[0]


def test_component_bends_summary():
    import pandas as pd

    layers = pd.DataFrame({"model": ["a"] * 4 + ["b"] * 2,
                           "component": ["relu", "relu", "conv", "mlp", "gelu", "linear"],
                           "bend": [0.1, 0.3, 1e-7, 0.2, 0.05, 1e-7], "defect": [1.0, 1.0, 1e-7, 0.5, 0.1, 1e-7]})
    s = at.component_bends(layers)
    assert list(s.model) == ["a", "a", "a", "b", "b"] and list(s.component[:3]) == ["relu", "mlp", "conv"]
    row = s.iloc[0]
    assert row.bend == pytest.approx(0.2) and row.bend_max == pytest.approx(0.3) and row.n_layers == 2
    assert list(s.affine) == [False, False, True, False, True] and s.composite.sum() == 1
    with pytest.raises(ValueError, match="model"):
        at.component_bends(layers.drop(columns="model"))
