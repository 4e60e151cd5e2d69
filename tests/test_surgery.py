"""curvlib.measure.surgery: a model with one kind of component linearised at the image (issue #26).

Each test would fail on a wrong expansion: a missed module, a dropped keyword input (Swin's shift
mask), anchors matched by batch position, or an expansion at the wrong point."""
import pytest
import torch
from torch import nn
from torch.func import jvp

from curvlib import config, data, models
from curvlib.claims.surgery import claim_rows, eps_ratios, omega_shares
from curvlib.config import get_profile
from curvlib.experiments.surgery import canonical, path_experiment, travel_experiment, turning_experiment
from curvlib.measure import curvature as trajectory
from curvlib.measure import surgery, travel
from curvlib.measure.kinks import kinks
from curvlib.measure.probe import probe_line

EMBEDDED = ("resnet", "mobilenetv2", "vit", "swin")
PROFILE = get_profile("embedded", env={}, device="cpu")


@pytest.fixture(scope="module")
def images():
    x, y = data.test_set(PROFILE, n=4)
    return x, y


@pytest.fixture(scope="module")
def loaded():
    return {m: models.load(m, PROFILE, device="cpu") for m in EMBEDDED}


def _direction(x, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(x.shape, generator=g)
    return d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * x[0].numel() ** 0.5


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _unfused_features(model):
    """The whole model's features with timm's fused attention off (forward-mode AD needs it)."""
    def f(z):
        with trajectory.unfused(model):
            return model.features(z)
    return f


# ---------------------------------------------------------------------------------------------
# identities at the anchor


@pytest.mark.parametrize("name", EMBEDDED)
def test_no_kind_linearised_gives_the_original_outputs(loaded, images, name):
    model, (x, _) = loaded[name], images
    lin = surgery.linearized(model, x, ())
    assert lin.replaced == []
    xe = (x + 0.05 * _direction(x)).clamp(0, 1)
    with torch.no_grad():
        got, want = lin(xe), _unfused_features(model)(xe)
        want = model.head(want)
    assert torch.allclose(got, want, rtol=0, atol=1e-5 * float(want.abs().max()))


@pytest.mark.parametrize("name", EMBEDDED)
def test_every_surgery_keeps_value_and_first_order_response_at_the_image(loaded, images, name):
    model, (x, _) = loaded[name], images
    d = _direction(x)
    f = _unfused_features(model)
    with torch.no_grad():
        f0, t0 = jvp(f, (x,), (d,))
    for kinds in (("attention",), ("norm",), ("activation",), ("all",)):
        lin = surgery.linearized(model, x, kinds)
        with torch.no_grad():
            g0, s0 = jvp(lin.features, (x,), (d,))
        assert float((g0 - f0).abs().max()) <= 1e-6 * max(1.0, float(f0.abs().max())), kinds
        assert _rel(s0, t0) < 1e-4, kinds


@pytest.mark.parametrize("name", EMBEDDED)
def test_all_is_the_tangent_of_the_whole_model_along_the_clipped_path(loaded, images, name):
    model, (x, _) = loaded[name], images
    d = _direction(x, seed=1)
    lin = surgery.linearized(model, x, ("all",))
    f = _unfused_features(model)
    for eps in (0.02, 0.1):
        xe = (x + eps * d).clamp(0, 1)
        with torch.no_grad():
            f0, t = jvp(f, (x,), (xe - x,))
            got, orig = lin.features(xe), f(xe)
        assert _rel(got, f0 + t) < 1e-4, eps
        assert _rel(orig, f0 + t) > 1e-3  # the original does bend: the check has something to catch


@pytest.mark.parametrize("name", ("vit", "swin"))
def test_all_has_zero_step_free_curvature_and_the_original_does_not(loaded, images, name):
    model, (x, _) = loaded[name], images
    d, eps = _direction(x[:2], seed=2), torch.linspace(0, 0.05, 3)
    lin = surgery.linearized(model, x[:2], ("all",))
    w_lin = trajectory.curvature(lin, x[:2], d, eps)["omega"]
    w = trajectory.curvature(model, x[:2], d, eps)["omega"]
    assert float(w.min()) > 1.0  # radians per unit ε: the embedded Transformers bend
    assert float(w_lin.abs().max()) < 1e-3 * float(w.min())


# ---------------------------------------------------------------------------------------------
# a piecewise-linear network: unchanged until the first switch


class _Tiny(nn.Module):
    """Conv → BatchNorm → ReLU ×2 → mean pool → linear, with timm's forward_features/forward_head."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                                  nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
        self.fc = nn.Linear(4, 3)

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, x, pre_logits=False):
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def get_classifier(self):
        return self.fc

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def _tiny():
    torch.manual_seed(0)
    net = _Tiny()
    for bn in (net.body[1], net.body[4]):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    return models.CurvModel(net, (0.5,), (0.25,), "tiny", (1, 8, 8)).eval()


def test_batchnorm_in_eval_mode_is_already_affine_and_layernorm_is_not():
    torch.manual_seed(0)
    bn = _tiny().net.body[1]
    z, v = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    assert surgery.is_affine(bn, z, v)
    assert not surgery.is_affine(nn.LayerNorm(5).eval(), z, v)
    assert "BatchNorm2d" in surgery.AFFINE_IN_EVAL and not any(
        "BatchNorm2d" in t for t in surgery.KIND_TYPES.values())


def test_relu_network_linearised_on_activations_is_unchanged_until_the_first_switch():
    model = _tiny()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 1, 8, 8, generator=g) * 0.6 + 0.2
    d = torch.randn(1, 1, 8, 8, generator=g)
    eps = torch.linspace(0, 0.02, 81)
    lin = surgery.linearized(model, x, ("activation",))
    assert len(lin.replaced) == 2
    switches = kinks(model, x, d, eps)[0]  # [S − 1]
    first = int(torch.nonzero(switches).flatten()[0])  # the step (first, first + 1] holds the first switch
    assert 1 <= first < len(eps) - 2
    f_lin = probe_line(lin, x, d, eps)["features"][0]
    f = probe_line(model, x, d, eps)["features"][0]
    diff = (f_lin - f).norm(dim=-1) / f.norm(dim=-1)
    assert float(diff[: first + 1].max()) < 1e-5  # inside the linear region: the same map
    assert float(diff[first + 2:].max()) > 1e-4  # past a switch the gate kept from the anchor differs


# ---------------------------------------------------------------------------------------------
# Swin: the shift mask and the relative-position bias are carried


def test_swin_window_attention_keeps_its_shift_mask_and_bias(loaded, images):
    from curvlib.measure import attention as at

    model, (x, _) = loaded["swin"], images
    caps = at.layer_inputs(model, x, ("WindowAttention",))
    name, cap = next((n, c) for n, c in caps.items() if c.kwargs.get("mask") is not None)  # a shifted block
    assert hasattr(cap.module, "relative_position_bias_table")
    lin = surgery.linearized(model, x, ("attention",))
    expanded = lin.model.get_submodule(name)
    assert isinstance(expanded, surgery._Expanded) and expanded.kwargs["mask"] is not None
    lin.select(len(x))
    with torch.no_grad():
        want = cap.call()(cap.input)
        got = expanded(cap.input)
        assert torch.allclose(got, want, atol=1e-6)
        # near the anchor: first-order agreement with the masked attention, not with an unmasked one
        delta = 1e-3 * torch.randn_like(cap.input)
        err = _rel(expanded(cap.input + delta) - want, cap.call()(cap.input + delta) - want)
        unmasked = _rel(expanded.inner(cap.input + delta), cap.call()(cap.input + delta))
        # the written-out attention tangent against forward-mode AD of the module (with its mask)
        assert expanded.mode == "attention"
        written = expanded(cap.input + delta)
        expanded.mode = "jvp"
        by_jvp = expanded(cap.input + delta)
        expanded.mode = "attention"
    assert _rel(written - want, by_jvp - want) < 1e-4
    assert err < 1e-2
    assert unmasked > 1e-2  # dropping the mask would be visible


# ---------------------------------------------------------------------------------------------
# anchors follow the sample, not the batch position


def test_travel_hands_each_probe_its_own_anchor(loaded, images):
    model, (x, y) = loaded["resnet"], images
    d = _direction(x, seed=4)
    lin = surgery.linearized(model, x, ("activation",))
    kw = dict(tol=1e-3, progress=False)
    together = travel.travel(lin, x, y, d, **kw)
    alone = [travel.travel(surgery.linearized(model, x[i:i + 1], ("activation",)), x[i:i + 1], y[i:i + 1],
                           d[i:i + 1], **kw) for i in range(len(x))]
    assert (together.status == "crossed").sum() >= 2
    assert together.passes.nunique() > 1  # samples finish at different times: later probes are subsets
    for i, a in enumerate(alone):
        assert together.status[i] == a.status[0]
        if a.status[0] == "crossed":
            assert abs(together.eps[i] - a.eps[0]) < 1e-5  # float rounding of other batch sizes only
    # the surgered model's own distance differs from the original's somewhere (the check can fail)
    orig = travel.travel(model, x, y, d, **kw)
    assert (orig.eps - together.eps).abs().max() > 1e-3


def test_probes_and_curvature_use_each_points_image(loaded, images):
    model, (x, _) = loaded["swin"], images
    d = torch.stack([_direction(x, seed=5), _direction(x, seed=6)])  # [M = 2, N, …]
    eps = torch.linspace(0, 0.1, 4)
    lin = surgery.linearized(model, x, ("norm",))
    f = probe_line(lin, x, d, eps, batch_size=5)["features"]  # batches cut across images
    w = trajectory.curvature(lin, x[:2], d[:, :2], eps[:2], batch_size=3)["omega"]
    for i in range(2):
        one = surgery.linearized(model, x[i:i + 1], ("norm",))
        assert torch.allclose(f[:, i], probe_line(one, x[i:i + 1], d[:, i:i + 1], eps)["features"][:, 0],
                              atol=1e-5)
        assert torch.allclose(w[:, i], trajectory.curvature(one, x[i:i + 1], d[:, i:i + 1], eps[:2])["omega"][:, 0],
                              rtol=1e-3)


@pytest.mark.parametrize("name,kind", [("vit", "attention"), ("vit", "norm"), ("vit", "activation"),
                                       ("swin", "attention"), ("swin", "norm"), ("resnet", "pooling"),
                                       ("mobilenetv2", "all")])
def test_the_jet_on_a_linearised_model_equals_nested_ad(loaded, images, name, kind):
    """Each expansion's jet rule (f through the expansion, f′ and f″ through its Jacobian) gives nested AD's ω,
    with batches that cut across anchors (every point expanded around its own image)."""
    from curvlib.measure import jet

    model, (x, _) = loaded[name], images
    lin = surgery.linearized(model, x[:3], (kind,))
    assert jet.supports(lin)
    d, eps = _direction(x[:3], seed=7), torch.linspace(0, 0.05, 3)
    ref = trajectory.curvature(lin, x[:3], d, eps, method="jvp", batch_size=7)
    got = trajectory.curvature(lin, x[:3], d, eps, method="jet", batch_size=7)
    torch.testing.assert_close(got["speed"], ref["speed"], rtol=1e-5, atol=1e-5)
    assert float(((got["omega"] - ref["omega"]).abs() / ref["omega"].abs().clamp_min(1e-2)).max()) < 1e-3
    auto = trajectory.curvature(lin, x[:3], d, eps, batch_size=7)
    torch.testing.assert_close(auto["omega"], got["omega"])


def test_the_surgery_travels_use_a_fifth_of_the_travel_images_at_least_4_at_most_all():
    from curvlib.experiments.travel import few_travel_images

    assert [few_travel_images(PROFILE.replace(n_travel=n)) for n in (2, 4, 19, 40, 500)] == [2, 4, 4, 8, 100]


@pytest.mark.parametrize("part", [0, -2, 2.5, True, None])
def test_a_share_of_the_travel_images_needs_a_positive_whole_part(part):
    from curvlib.experiments.travel import travel_share

    with pytest.raises(ValueError, match="part must be a positive integer"):
        travel_share(PROFILE, part)


def test_bad_inputs_are_refused_with_clear_messages(loaded, images):
    model, (x, _) = loaded["resnet"], images
    with pytest.raises(TypeError, match="tuple of names"):
        surgery.linearized(model, x, "attention")
    with pytest.raises(ValueError, match="unknown kind"):
        surgery.linearized(model, x, ("softmax",))
    with pytest.raises(ValueError, match="anchors must be images"):
        surgery.linearized(model, x[0], ("all",))
    lin = surgery.linearized(model, x, ("all",))
    with pytest.raises(ValueError, match="pass index="):
        lin(x[:2])
    with pytest.raises(ValueError, match="anchor numbers"):
        lin(x[:2], index=torch.tensor([0, 7]))
    assert torch.allclose(lin(x[1:3], index=torch.tensor([1, 2])), lin(x)[1:3], atol=1e-6)
    with pytest.raises(ValueError, match="eval mode"):
        surgery.linearized(models.build("resnet").train(), x, ("all",))


# ---------------------------------------------------------------------------------------------
# the paper's timm models (small, random init)


def _paper_small(name):
    import timm

    small = {"resnet50": dict(layers=(1, 1, 1, 1)), "mobilenetv2_100": {},
             "vit_base_patch16_224": dict(img_size=32, depth=2),
             "swin_tiny_patch4_window7_224": dict(img_size=56, depths=(2, 2), num_heads=(3, 6))}[name]
    size = {"vit_base_patch16_224": 32, "swin_tiny_patch4_window7_224": 56}.get(name, 48)
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, **small)
    return models.CurvModel(net, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), name, (3, size, size)).eval()


@pytest.mark.parametrize("name", config.PAPER_MODELS)
def test_paper_models_small_random_init(name):
    model = _paper_small(name)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, *model.input_size, generator=g)
    d = _direction(x, seed=7)
    f = _unfused_features(model)
    lin = surgery.linearized(model, x, ("all",))
    kinds = {type(m.inner).__name__ for m in lin.model.modules() if isinstance(m, surgery._Expanded)}
    if name == "resnet50":
        assert "MaxPool2d" in kinds  # the pooling kind exists here
    if name.startswith("swin"):
        assert "WindowAttention" in kinds
    xe = (x + 0.05 * d).clamp(0, 1)
    with torch.no_grad():
        f0, t = jvp(f, (x,), (xe - x,))
        assert _rel(lin.features(xe), f0 + t) < 1e-4
        assert _rel(lin.features(x), f0) < 1e-6


def test_gelu_toy_distances_and_bend_follow_the_pencil_formulas():
    import math

    phi1 = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # GELU(1) = Φ(1): the original crosses at u = 1, ε = ¼
    model = surgery.gelu_toy(phi1)
    x, y, d = torch.full((1, 1, 1, 1), 0.5), torch.zeros(1, dtype=torch.long), torch.ones(1, 1, 1, 1)
    lin = surgery.linearized(model, x, ("activation",))
    assert abs(travel.travel(model, x, y, d, progress=False).eps[0] - 0.25) < 1e-4
    assert abs(travel.travel(lin, x, y, d, progress=False).eps[0] - phi1 / 2) < 1e-4  # the tangent (4ε, 2ε)
    w = trajectory.curvature(model, x, d, torch.tensor([0.0]))["omega"]
    assert abs(float(w) - 4 * 2 / math.sqrt(2 * math.pi) / 1.25) < 1e-4  # 4·GELU''(0)/(1 + GELU'(0)²)
    assert float(trajectory.curvature(lin, x, d, torch.tensor([0.0, 0.1]))["omega"].abs().max()) == 0
    with pytest.raises(ValueError, match="threshold"):
        surgery.gelu_toy(0.0)


# ---------------------------------------------------------------------------------------------
# verdicts (synthetic results: known answers) and the cached experiments


def _path(omega, index=(0, 1, 2, 3), replaced=("m",)):
    o = torch.as_tensor(omega, dtype=torch.float32)
    return {"omega": o, "theta": torch.zeros(len(o), 3), "index": torch.tensor(index), "replaced": list(replaced)}


def test_omega_shares_are_one_minus_the_ratio_of_means_with_a_paired_interval():
    g = torch.Generator().manual_seed(0)
    w = 1 + torch.rand(20, 4, generator=g)
    paths = {("vit", "none"): _path(w, range(20)), ("vit", "attention"): _path(0.25 * w, range(20))}
    t = omega_shares(paths, n_boot=200)
    r = t.iloc[0]
    assert r.surgery == "attention" and abs(r.share - 0.75) < 1e-6 and r.lo <= 0.75 <= r.hi
    assert r.hi - r.lo < 1e-5  # paired: the same factor on every image leaves no spread
    paths[("vit", "norm")] = _path(w, range(1, 21))
    with pytest.raises(ValueError, match="other images"):
        omega_shares(paths)


def _frame(eps, conf, status=None):
    import pandas as pd

    eps = list(eps)
    status = status or ["crossed"] * len(eps)
    return pd.DataFrame({"index": range(len(eps)), "eps": eps, "confidence": conf,
                         "status": pd.Categorical(status, categories=travel.STATUSES)})


def test_eps_ratios_pair_images_and_read_the_interval_against_one():
    import numpy as np

    rng = np.random.default_rng(0)
    n = 40
    conf = np.r_[np.full(20, 0.6), np.full(20, 0.995)]
    frames = {}
    for m, factor in (("vit", 0.5), ("swin", 0.5), ("resnet", 1.0), ("mobilenetv2", 1.0)):
        e = rng.uniform(0.01, 0.05, n)
        frames[(m, "none", "fgsm")] = _frame(e, conf)
        frames[(m, "all", "fgsm")] = _frame(e * factor, conf)
    t = eps_ratios(frames, n_boot=200).set_index(["family", "band"])
    assert abs(t.loc[("Transformer", "all"), "median"] - 0.5) < 1e-9
    assert t.loc[("Transformer", "all"), "verdict"] == "holds"
    assert t.loc[("CNN", "all"), "verdict"] == "inconclusive"  # ratio 1 exactly: no effect
    assert t.loc[("Transformer", "(0.5, 0.7]"), "n_pairs"] == 40  # 20 images × 2 models in the band
    rows = claim_rows({}, frames, n_boot=200)
    by = {r["claim"]: r for r in rows}
    assert by["surgery (distance)"]["verdict"] == "holds" and by["surgery (control)"]["verdict"] == "holds"
    assert by["surgery (what bends)"]["verdict"] == "no data"  # no ω given
    # a surgered path that never crosses counts as farther than any measured one (ratio +inf), not as missing
    frames[("vit", "all", "fgsm")] = _frame([np.nan] * n, conf, ["never"] * n)
    t = eps_ratios(frames, n_boot=200).set_index(["family", "band"])
    assert t.loc[("Transformer", "all"), "n_pairs"] == 2 * n


def test_cached_experiments_run_on_the_smoke_profile(tmp_cache):
    prof = get_profile("smoke")
    p = path_experiment("vit", prof, surgery="attention")
    assert p["omega"].shape == (prof.n_theta_images, 4) and p["theta"].shape == (prof.n_theta_images, prof.n_steps - 1)
    assert len(p["replaced"]) == 4 and torch.isfinite(p["omega"]).all()
    t = travel_experiment("vit", prof, surgery="attention", kind="fgsm")
    t0 = travel_experiment("vit", prof, surgery="none", kind="fgsm")
    assert t["index"].tolist() == t0["index"].tolist() and (t.n_replaced == 4).all() and (t0.n_replaced == 0).all()
    assert (t.confidence - t0.confidence).abs().max() < 1e-4  # the same f(x)
    tu = turning_experiment("vit", prof, kind="fgsm")
    assert (tu.turning.dropna() > 0).all() and tu.turning.notna().sum() == (t0.status == "crossed").sum()
    n_files = len(list(tmp_cache.rglob("*.json")))
    path_experiment("vit", prof, surgery="attention")  # served from the cache
    assert len(list(tmp_cache.rglob("*.json"))) == n_files
    with pytest.raises(ValueError, match="unknown surgery"):
        travel_experiment("vit", prof, surgery="softmax", kind="fgsm")
    assert canonical(models.build("resnet").eval(), "activation") == "all"
    assert canonical(models.build("vit").eval(), "activation") == "activation"
