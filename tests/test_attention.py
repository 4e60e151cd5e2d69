import pytest
import torch
from torch import nn

from curvlib import attention as at
from curvlib import models
from curvlib.config import get_profile


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
