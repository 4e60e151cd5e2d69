"""The second-order forward pass (curvlib.measure.jet) against nested forward-mode AD and float64 finite
differences, and the LayerNorm second derivative that nested AD gets wrong."""
import pytest
import torch
from torch import nn
from torch.func import jvp

from curvlib import data, models
from curvlib.config import PAPER_MODELS, get_profile
from curvlib.measure import jet
from curvlib.measure.curvature import _turning, curvature, jet_agrees, primitive_norms, unfused

EMB = get_profile("embedded", env={}, device="cpu")
EPS = torch.tensor([0.0, 0.01, 0.05])


def _lines(model, n=2, seed=0):
    x, _ = data.test_set(EMB, n=n)
    d = torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)))
    return x, d


@pytest.mark.parametrize("name", models.list_models())
def test_jet_matches_nested_ad_on_every_embedded_model(name):
    """ω, speed and per-block ω of the jet equal nested AD's (LayerNorm from primitive ops) to float32 rounding;
    "auto" picks the jet on these models."""
    m = models.load(name, EMB, device="cpu")
    assert jet.supports(m)
    x, d = _lines(m)
    ref = curvature(m, x, d, EPS, method="jvp", blocks=True)
    got = curvature(m, x, d, EPS, method="jet", blocks=True)
    auto = curvature(m, x, d, EPS, blocks=True)
    torch.testing.assert_close(got["speed"], ref["speed"], rtol=1e-5, atol=1e-5)
    for key in ("omega", "block_omega"):
        big = ref[key].abs() > 1e-2  # (a ReLU network's ω is 0 up to rounding)
        rel = ((got[key] - ref[key]).abs() / ref[key].abs().clamp_min(1e-2))
        assert rel.max() < 1e-3, (key, rel.max())
        assert (got[key][~big].abs() < 1e-2).all()
    torch.testing.assert_close(auto["omega"], got["omega"])


def test_piecewise_linear_networks_run_two_streams(monkeypatch):
    """The ReLU / ReLU6 CNNs (and only they) drop the third stream: their f and f′ equal the three-stream jet's, whose
    f″ is exactly 0 there; a GELU or LayerNorm network keeps three streams, and a smooth rule refuses two."""
    pl = {n: jet._piecewise_linear(jet._checked_plan(models.load(n, EMB, device="cpu"))[0])
          for n in models.list_models()}
    assert pl["resnet"] and pl["mobilenetv2"]
    assert not any(pl[n] for n in ("vit", "swin", "resnet_gelu", "resnet_ln"))
    for name in ("resnet", "mobilenetv2"):
        m = models.load(name, EMB, device="cpu")
        x, d = _lines(m)
        two = jet.jet_features(m, x, d, EPS[1:], [m.net.get_submodule(n) for n in ("layer1",)
                                                   if hasattr(m.net, n)])
        with monkeypatch.context() as mp:
            mp.setattr(jet, "_piecewise_linear", lambda ruled: False)
            three = jet.jet_features(m, x, d, EPS[1:], [m.net.get_submodule(n) for n in ("layer1",)
                                                         if hasattr(m.net, n)])
        for a, b in zip(two, three):
            torch.testing.assert_close(a[0], b[0], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-5)
            assert (a[2] == 0).all() and (b[2] == 0).all()
    token = jet._N.set(2)
    try:
        with torch.no_grad(), pytest.raises(RuntimeError, match="piecewise-linear"):
            jet.RULES["GELU"](nn.GELU(), torch.zeros(2, 4))
    finally:
        jet._N.reset(token)


def test_layer_norm_second_derivative_matches_finite_differences():
    """A LayerNorm path u(t) = a + t b + t² c in float64: the jet's rule and the primitive-op LayerNorm under
    nested AD both give the second derivative of the central difference (h = 1e-4) to 1e-6 of its size."""
    torch.manual_seed(0)
    ln = nn.LayerNorm(8).double()
    with torch.no_grad():
        ln.weight.normal_()
        ln.bias.normal_()
    a, b, c = torch.randn(3, 4, 8, dtype=torch.float64).unbind(0)

    def path(t):
        return ln(a + t * b + t * t * c)

    h = 1e-4
    with torch.no_grad():
        fd = (path(torch.tensor(h)) - 2 * path(torch.tensor(0.0)) + path(torch.tensor(-h))) / h ** 2
    with torch.no_grad():
        rule = 2 * jet.RULES["LayerNorm"](ln, torch.cat([a, b, c]))[8:]  # streams: u, u′, u″/2 = c
    one = torch.ones((), dtype=torch.float64)
    with primitive_norms(ln):
        _, nested = jvp(lambda t: jvp(path, (t,), (one,))[1], (torch.zeros((), dtype=torch.float64),), (one,))
    scale = fd.abs().max()
    assert (rule - fd).abs().max() < 1e-6 * scale
    assert (nested - fd).abs().max() < 1e-6 * scale


def test_vit_curvature_matches_float64_finite_differences():
    """The embedded ViT in float64: ω from curvature (jet and nested AD) equals ω from central differences
    (h = 1e-4) to 1e-4 relative; with F.layer_norm under nested AD it was off by up to ~10 %."""
    m = models.load("vit", EMB, device="cpu").double()
    x, d = _lines(m, n=3)
    x, d = x.double(), d.double()
    e = torch.full((3,), 0.02, dtype=torch.float64)

    def g(t):
        return m.features((x + t.view(-1, 1, 1, 1) * d).clamp(0, 1))

    h = 1e-4
    with torch.no_grad():
        fd1, fd2 = (g(e + h) - g(e - h)) / (2 * h), (g(e + h) - 2 * g(e) + g(e - h)) / h ** 2
    want = _turning(fd1, fd2)[1]
    for method in ("jet", "jvp"):
        got = torch.stack([curvature(m, x[i:i + 1], d[i:i + 1], e[:1], method=method)["omega"][0, 0]
                           for i in range(3)]).double()
        torch.testing.assert_close(got, want, rtol=1e-4, atol=0)


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_jet_on_the_paper_models_random_init(name):
    """The paper's timm models at 224 px (random init), float64: f′ equals first-order forward AD; ReLU networks
    have f″ = 0 exactly, and the Transformers' ω equals ω from central differences (h = 1e-4)."""
    torch.manual_seed(0)
    m = models.load(name, get_profile("paper", env={}, device="cpu").replace(weights="random"), device="cpu")
    assert jet.supports(m)
    m = m.double()
    x = torch.rand(1, 3, 224, 224, dtype=torch.float64) * 0.8 + 0.1
    d = torch.sign(torch.randn(x.shape, dtype=torch.float64))
    e = torch.tensor([0.01], dtype=torch.float64)
    _, f1, f2 = jet.jet_features(m, x, d, e)[0]

    def g(t):
        return m.features((x + t.view(-1, 1, 1, 1) * d).clamp(0, 1))

    with unfused(m), torch.no_grad():
        _, ref1 = jvp(g, (e,), (torch.ones_like(e),))
    torch.testing.assert_close(f1, ref1, rtol=1e-9, atol=1e-9 * ref1.abs().max().item())
    if name in ("resnet50", "mobilenetv2_100"):
        assert (f2 == 0).all()
    else:
        h = 1e-4
        with torch.no_grad():
            fd2 = (g(e + h) - 2 * g(e) + g(e - h)) / h ** 2
        torch.testing.assert_close(_turning(f1, f2)[1], _turning(ref1, fd2)[1], rtol=1e-4, atol=0)


def test_unsupported_models_fall_back_and_say_why():
    m = models.load("resnet", EMB, device="cpu")
    x, d = _lines(m)
    tanh = models.load("resnet", EMB, device="cpu")
    tanh.net.act1 = nn.Tanh()  # a leaf the jet has no rule for
    assert not jet.supports(tanh)
    with pytest.raises(jet.JetUnsupported, match=r"act1 \(Tanh\)"):
        curvature(tanh, x, d, EPS, method="jet")
    torch.testing.assert_close(curvature(tanh, x, d, EPS)["omega"], curvature(tanh, x, d, EPS, method="jvp")["omega"])
    with pytest.raises(ValueError, match="method must be one of"):
        curvature(m, x, d, EPS, method="jets")


def test_a_hidden_functional_nonlinearity_is_caught_by_the_first_point_check():
    """A non-linearity in forward code (not a module) is invisible to the module scan: the check against nested
    AD on the first point sends "auto" to nested AD, while "jet" would be wrong."""
    m = models.load("vit", EMB, device="cpu")
    head = m.net.forward_head
    m.net.forward_head = lambda z, pre_logits=False: torch.tanh(3 * head(z, pre_logits=pre_logits))
    x, d = _lines(m)
    assert jet.supports(m) and not jet_agrees(m, x[:1], d[:1], EPS[1:2])
    ref = curvature(m, x, d, EPS, method="jvp")["omega"]
    torch.testing.assert_close(curvature(m, x, d, EPS)["omega"], ref)  # (the fallback keeps primitive norms)
    with primitive_norms(m):
        with primitive_norms(m):
            pass
        assert all("forward" in mod.__dict__ for mod in m.modules() if type(mod).__name__ == "LayerNorm")
    assert not torch.allclose(curvature(m, x, d, EPS, method="jet")["omega"], ref, rtol=1e-2)


def test_the_model_is_restored_after_a_jet_pass():
    m = models.load("vit", EMB, device="cpu")
    x, d = _lines(m)
    before = [(n, type(mod).__name__) for n, mod in m.named_modules()]
    with torch.no_grad():
        f = m.features(x)
    jet.jet_features(m, x, d, EPS[:2])
    assert [(n, type(mod).__name__) for n, mod in m.named_modules()] == before
    assert "_pos_embed" not in m.net.__dict__ and not any("forward" in mod.__dict__ for mod in m.modules())
    with torch.no_grad():
        torch.testing.assert_close(m.features(x), f)


@pytest.mark.parametrize("name", ["vit", "swin"])
def test_the_jet_ignores_an_enclosing_autocast(name):
    """Under bf16 autocast (as θ and calibration run on the paper profile) the jet still computes in the model's
    float32: the same f, f′, f″ as without it."""
    m = models.load(name, EMB, device="cpu")
    x, d = _lines(m)
    want = jet.jet_features(m, x, d, EPS[:2])[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = jet.jet_features(m, x, d, EPS[:2])[0]
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b)


def test_refusals_name_the_module_without_a_rule():
    """A BatchNormAct2d whose activation has no rule, a tanh-approximated GELU and attention with a q/k norm
    are refused (never applied to the derivative streams as if linear)."""
    import timm

    from curvlib.models import CurvModel

    net = timm.create_model("mobilenetv2_035", pretrained=False, act_layer=nn.SiLU, num_classes=10).eval()
    m = CurvModel(net, (0.5,) * 3, (0.25,) * 3, "silu_net", (3, 32, 32)).eval()
    assert "act (SiLU)" in jet.unsupported(m)
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(jet.JetUnsupported, match="SiLU"):
        jet.jet_features(m, x, torch.ones_like(x), torch.tensor([0.01]))
    with torch.no_grad(), pytest.raises(jet.JetUnsupported, match="tanh"):
        jet.RULES["GELU"](nn.GELU(approximate="tanh"), torch.zeros(3, 4))
    from timm.layers import Attention

    with torch.no_grad(), pytest.raises(jet.JetUnsupported, match="q/k/out norm"):
        qk = Attention(8, num_heads=2, qk_norm=True, norm_layer=nn.LayerNorm).eval()
        jet.RULES["Attention"](qk, torch.zeros(3, 5, 8))


def test_jet_features_refuses_bad_input():
    m = models.load("resnet", EMB, device="cpu")
    x, d = _lines(m)
    e = EPS[:2]
    for bad_x, match in ((x[:0], "empty"), (x * 2, r"\[0, 1\]"), (x[0], r"\[N, C, H, W\]"),
                         (x.masked_fill(x > 0.5, float("nan")), "NaN")):
        with pytest.raises(ValueError, match=match):
            jet.jet_features(m, bad_x, d[:len(bad_x)] if bad_x.ndim == 4 else d, e)
    with pytest.raises(ValueError, match="directions must be finite"):
        jet.jet_features(m, x, d[:1], e)
    with pytest.raises(ValueError, match="directions must be finite"):
        jet.jet_features(m, x, d.masked_fill(d > 0, float("inf")), e)
    with pytest.raises(ValueError, match="eps must be 2 finite values"):
        jet.jet_features(m, x, d, EPS)
    with pytest.raises(ValueError, match="eps must be 2 finite values"):
        jet.jet_features(m, x, d, torch.tensor([0.0, float("nan")]))


def test_the_relu_batchnorm_rule_carries_three_streams_as_two(monkeypatch):
    """A ReLU6 BatchNormAct2d in a network that needs f″ (three streams): f′ and f″ gated like f′ in the
    two-stream pass of a piecewise-linear network, f″ zero (the path's p″ is)."""
    m = models.load("mobilenetv2", EMB, device="cpu")
    x, d = _lines(m)
    eps = EPS[1:2].expand(len(x))
    two = jet.jet_features(m, x, d, eps)[0]
    monkeypatch.setattr(jet, "_piecewise_linear", lambda ruled: False)
    three = jet.jet_features(m, x, d, eps)[0]
    torch.testing.assert_close(three[0], two[0], rtol=0, atol=0)
    torch.testing.assert_close(three[1], two[1], rtol=0, atol=0)
    assert torch.count_nonzero(three[2]) == 0 and three[1].abs().sum() > 0
