r"""Second-order Taylor mode ("jet"): f, f′ and f″ of a feature path in one forward pass.

Along a path p(ε) = clip(x + ε d) the network's features f(ε) and their first two ε-derivatives
are carried together as three streams stacked on the batch axis, [f; f′; f″/2] of shape [3B, …] — Taylor
coefficients, so that the second coefficient of a bilinear product is a plain sum, (ab)₂ = a₀b₂ + a₁b₁ + a₂b₀,
and attention's score and value products are single matrix products over stacked streams (:func:`_attention`):

- a linear map L (convolution, linear layer, BatchNorm in eval mode, pooling, reshapes, residual
  sums) acts on every stream, and its constant offset L(0) (a bias, BatchNorm's shift, ViT's class
  token and position embedding) belongs to f alone: a hook subtracts it from the f′ and f″/2 streams;
- a non-linear module gets its chain rule written out (:data:`RULES`): an elementwise σ gives
  (σ(u), σ′(u) u₁, σ′(u) u₂ + ½σ″(u) u₁²) (u₁ = u′, u₂ = u″/2); LayerNorm, attention (bilinear scores, softmax,
  value mixing) and max-pooling theirs;
- in a network of piecewise-linear modules only (ReLU / ReLU6 CNNs) f″ is 0 between kinks, as the path's own
  p″ is: the third stream would stay zeros, so it is not carried (two streams, f″ returned as zeros).

This is what nested forward-mode AD (``torch.func.jvp`` twice, four streams, eager dual tensors)
computes, in three streams of plain tensors. The jet covers the module types of the embedded and
the paper's timm models, and the linearised modules of :mod:`curvlib.measure.surgery` (affine: f′ and f″
go through their Jacobian); :func:`supports` says whether a model is covered (every leaf module has a
rule or is linear), and :func:`jet_features` refuses one that is not. Functional non-linearities
hidden in a forward method cannot be seen that way, so :func:`curvlib.measure.curvature.curvature` first
compares the jet with nested AD on one point of each model (``jet_agrees``). Longer than 400 lines: one
chain rule per module type, kept beside the scan that decides which models the rules cover.
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import check_pixels

#: Leaf modules that are linear without offset in eval mode: they act on the stacked streams as they are.
PASS = ("Identity", "Dropout", "DropPath", "Flatten", "AdaptiveAvgPool2d", "FastAdaptiveAvgPool",
        "SelectAdaptivePool2d", "AvgPool2d")
#: Other affine modules (in eval mode): applied to every stream, then their offset L(0) is taken off the other streams
#: (convolutions, linear layers and BatchNorm2d have rules that add their offset to f alone).
AFFINE = ("BatchNorm1d", "TokenBatchNorm")


class JetUnsupported(TypeError):
    """A model with a module the jet has no rule for."""


#: Streams carried on the batch axis: 3 ([f; f′; f″/2]), or 2 ([f; f′]) in a network of piecewise-linear modules
#: only, where f″ = 0 between kinks (the path's own p″ is 0) and a third stream would stay zeros
#: (:func:`_piecewise_linear`).
_N = contextvars.ContextVar("jet_streams", default=3)


def _streams(X: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return X.unflatten(0, (_N.get(), -1)).unbind(0)


def _three(X: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three streams of X, for a rule with a second derivative of its own (never run in two-stream mode)."""
    if _N.get() != 3:
        raise RuntimeError(f"the {what} rule needs f″: the two-stream jet is only for piecewise-linear networks")
    return _streams(X)


def _head(X: torch.Tensor) -> int:
    """B: the rows of f in stacked streams X."""
    return len(X) // _N.get()


def _relu_like(lo, hi):
    """Rule of a piecewise-linear clamp to [lo, hi] (ReLU: hi = ∞): the gate at the primal times every stream
    (σ″ = 0 between kinks; at a kink the gate is 0, as autograd's)."""
    def rule(mod, X, *args, **kwargs):
        x0 = X[:_head(X)]
        gate = x0 > lo if hi is None else (x0 > lo) & (x0 < hi)
        out = X.unflatten(0, (_N.get(), -1)) * gate
        if hi is not None:
            out[0] = x0.clamp(lo, hi)
        return out.flatten(0, 1)
    return rule


_SQRT_2PI = math.sqrt(2 * math.pi)


def _gelu(mod, X, *args, **kwargs):
    """Exact GELU σ(u) = u Φ(u): σ′ = Φ + u φ, σ″ = φ (2 − u²) (φ, Φ: the standard normal density and
    distribution function); streams (σ, σ′u₁, σ′u₂ + ½σ″u₁²). σ′u₁ and σ′u₂ come from GELU's own backward
    kernel (one pass each)."""
    if getattr(mod, "approximate", "none") != "none":
        raise JetUnsupported("GELU with approximate='tanh' has no jet rule")
    x0, x1, x2 = _three(X, "GELU")
    out = torch.empty_like(X)
    y0, y1, y2 = _streams(out)
    torch.ops.aten.gelu.out(x0, out=y0)
    torch.ops.aten.gelu_backward.grad_input(x1, x0, grad_input=y1)
    torch.ops.aten.gelu_backward.grad_input(x2, x0, grad_input=y2)
    sq = x0 * x0
    curv = torch.exp(sq * -0.5).mul_(sq.sub_(2).mul_(-0.5 / _SQRT_2PI))  # ½σ″(u) = ½φ(u) (2 − u²)
    y2.addcmul_(curv.mul_(x1), x1)
    return out


def _layer_norm(mod, X, *args, **kwargs):
    """LayerNorm over the last axis: x̂ = c/σ (c = u − mean u, σ² = var u + eps), y = γ x̂ + β, with
    σ′ = mean(x̂ c′), x̂′ = (c′ − x̂ σ′)/σ, σ″ = (mean(c′²) + σ mean(x̂ c″) − σ′²)/σ,
    x̂″ = (c″ − 2 x̂′ σ′ − x̂ σ″)/σ; in Taylor coefficients (c₂ = c″/2, σ₂ = σ″/2, x̂₂ = x̂″/2):
    σ₂ = ½(mean(c′²) − σ′²)/σ + mean(x̂ c₂), x̂₂ = (c₂ − x̂′ σ′ − x̂ σ₂)/σ."""
    if len(mod.normalized_shape) != 1:
        raise JetUnsupported("LayerNorm over more than the last axis has no jet rule")
    x0, x1, x2 = _three(X, "LayerNorm")
    out = torch.empty_like(X, memory_format=torch.contiguous_format)  # as native LayerNorm: a permuted input's
    # strides (Swin's NHWC tokens) would make the next linear layer a batched product
    y0, y1, y2 = _streams(out)
    z, mu, rs = torch.native_layer_norm(x0, mod.normalized_shape, mod.weight, mod.bias, mod.eps)  # rs = 1/σ
    y0.copy_(z)
    xh = (x0 - mu).mul_(rs)
    c1 = x1 - x1.mean(-1, keepdim=True)
    c2 = x2 - x2.mean(-1, keepdim=True)
    s1 = (xh * c1).mean(-1, keepdim=True)  # σ′
    xh1 = torch.addcmul(c1, xh, s1, value=-1).mul_(rs)
    s2 = ((c1 * c1).mean(-1, keepdim=True) - s1 * s1).mul_(rs * 0.5) + (xh * c2).mean(-1, keepdim=True)  # σ₂
    xh2 = c2.sub_(xh1 * s1).sub_(xh * s2).mul_(rs)
    if mod.weight is not None:
        torch.mul(xh1, mod.weight, out=y1)
        torch.mul(xh2, mod.weight, out=y2)
    else:
        y1.copy_(xh1)
        y2.copy_(xh2)
    return out


def _layer_norm_2d(mod, X, *args, **kwargs):
    """timm LayerNorm2d (over channels of [B, C, H, W]): the last-axis rule on channels-last."""
    return _layer_norm(mod, X.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _bn_scale_shift(mod):
    """(scale, shift) [C] of a BatchNorm in eval mode: y = scale·u + shift."""
    if mod.training or mod.running_mean is None:
        raise JetUnsupported(f"{type(mod).__name__} outside eval mode has no jet rule")
    scale = (mod.running_var + mod.eps).rsqrt()
    if mod.weight is not None:
        scale = scale * mod.weight
    shift = -mod.running_mean * scale
    if mod.bias is not None:
        shift = shift + mod.bias
    return scale, shift


def _batch_norm_2d(mod, X, *args, **kwargs):
    """BatchNorm2d in eval mode: the scale on every stream, the shift on f only."""
    scale, shift = _bn_scale_shift(mod)
    y = X * scale.view(1, -1, 1, 1)
    y[:_head(y)] += shift.view(1, -1, 1, 1)
    return y


def _batch_norm_act(mod, X, *args, **kwargs):
    """timm BatchNormAct2d in eval mode: BatchNorm (:func:`_batch_norm_2d`), then its activation's rule; with a
    ReLU / ReLU6 the two in one: u = scale·x + shift on f, the gate of u times scale on the other streams."""
    lo_hi = {"ReLU": (0.0, None), "ReLU6": (0.0, 6.0)}.get(type(mod.act).__name__)
    if lo_hi is None or not isinstance(mod.drop, nn.Identity):
        if type(mod.act).__name__ not in RULES and type(mod.act).__name__ not in PASS:
            raise JetUnsupported(f"no jet rule for the activation {type(mod.act).__name__} of a BatchNormAct2d")
        return apply(mod.act, mod.drop(_batch_norm_2d(mod, X)))
    scale, shift = (t.view(1, -1, 1, 1) for t in _bn_scale_shift(mod))
    B = _head(X)
    u0 = torch.addcmul(shift, X[:B], scale)
    lo, hi = lo_hi
    out = torch.empty_like(X)
    torch.clamp(u0, lo, hi, out=out[:B])
    for s in range(B, len(X), B):  # scale·x′ (and scale·x″), then the gate lo < u < hi in the same pass as autograd's
        y = torch.mul(X[s:s + B], scale, out=out[s:s + B])
        if hi is None:
            torch.ops.aten.threshold_backward.grad_input(y, u0, lo, grad_input=y)
        else:
            torch.ops.aten.hardtanh_backward.grad_input(y, u0, lo, hi, grad_input=y)
    return out


def _conv2d(mod, X, *args, **kwargs):
    """Conv2d: the kernel on every stream, the bias on f only."""
    y = mod._conv_forward(X, mod.weight, None)
    if mod.bias is not None:
        y[:_head(y)] += mod.bias.view(1, -1, 1, 1)
    return y


def _linear(mod, X, *args, **kwargs):
    """Linear: the weight on every stream, the bias on f only."""
    y = F.linear(X, mod.weight)
    if mod.bias is not None:
        y[:_head(y)] += mod.bias
    return y


def _softmax_jet(s0, s1, s2, a0, a1, a2):
    """Softmax over the last axis in Taylor coefficients, written into a0, a1, a2 (s2 = s″/2):
    a₁ = a₀ ⊙ r, r = s′ − ⟨a₀, s′⟩;  a₂ = a₀ ⊙ (s₂ − ⟨a₀, s₂⟩ − ½⟨a₁, r⟩) + ½ a₁ ⊙ r
    (⟨a₁, s′⟩ = ⟨a₁, r⟩, as ⟨a₁, 1⟩ = 0). s1 and s2 are overwritten; a0, a1, a2 must not overlap them."""
    torch.softmax(s0, -1, out=a0)
    r = s1.sub_((a0 * s1).sum(-1, keepdim=True))
    torch.mul(a0, r, out=a1)
    c = (a1 * r).sum(-1, keepdim=True).mul_(0.5) + (a0 * s2).sum(-1, keepdim=True)
    torch.mul(a0, s2.sub_(c), out=a2)
    a2.addcmul_(a1, r, value=0.5)


def _attention(mod, X, *args, mask=None, attn_mask=None, is_causal=False, **kwargs):
    """timm Attention (ViT) / WindowAttention (Swin, relative-position bias and shift ``mask`` on the
    primal scores only): q, k, v linear in the input, scores S = s·q kᵀ bilinear, softmax (:func:`_softmax_jet`),
    out = A v likewise, then the projection. In Taylor coefficients every order of a bilinear product is one
    matrix product over streams stacked along its inner axis: with q's streams (times the scale s) stacked reversed
    on the head axis, Q = s·[q₂ q₁ q₀], and k's in order, K = [k₀ k₁ k₂], S₀ = s·q₀k₀ᵀ, S₁ = s·[q₁ q₀][k₀ k₁]ᵀ and
    S₂ = Q Kᵀ are products of views; likewise A = [a₂ a₁ a₀] and V = [v₀; v₁; v₂] stacked on the token axis give
    o₀, o₁, o₂. Runs in the input's dtype (:func:`jet_features` turns autocast off)."""
    if args or kwargs or attn_mask is not None or is_causal or getattr(mod, "gate", None) is not None or \
            not all(isinstance(getattr(mod, a, nn.Identity()), nn.Identity) for a in ("q_norm", "k_norm", "norm")):
        raise JetUnsupported(f"{type(mod).__name__} with a gate, q/k/out norm or an attention mask has no jet rule")
    _three(X, "attention")
    B3, T, _ = X.shape
    B, H = B3 // 3, mod.num_heads
    qkv = F.linear(X, mod.qkv.weight)
    if mod.qkv.bias is not None:
        qkv[:B] += mod.qkv.bias
    q, k, v = qkv.view(3, B, T, 3, H, -1).permute(3, 0, 1, 4, 2, 5).unbind(0)  # each [3 streams, B, H, T, hd]
    hd = q.shape[-1]
    Q = X.new_empty(B, H, T, 3, hd)
    for i in range(3):
        torch.mul(q[i], mod.scale, out=Q[:, :, :, 2 - i])
    K = X.new_empty(B, H, T, 3, hd)
    K.copy_(k.permute(1, 2, 3, 0, 4))
    V = X.new_empty(B, H, 3, T, hd)
    V.copy_(v.transpose(0, 1).transpose(1, 2))
    Q, K, V = Q.view(B, H, T, 3 * hd), K.view(B, H, T, 3 * hd), V.view(B, H, 3 * T, hd)
    s0 = Q[..., 2 * hd:] @ K[..., :hd].transpose(-2, -1)
    if hasattr(mod, "relative_position_bias_table"):
        s0 = s0 + mod._get_rel_pos_bias()
    if mask is not None:
        nw = mask.shape[0]
        s0 = (s0.view(-1, nw, H, T, T) + mask.unsqueeze(1).unsqueeze(0)).view(-1, H, T, T)
    s1 = Q[..., hd:] @ K[..., :2 * hd].transpose(-2, -1)
    s2 = Q @ K.transpose(-2, -1)
    A = X.new_empty(B, H, T, 3 * T)  # [a₂ a₁ a₀]
    _softmax_jet(s0, s1, s2, A[..., 2 * T:], A[..., T:2 * T], A[..., :T])
    o = X.new_empty(3, B, H, T, hd)
    torch.matmul(A[..., 2 * T:], V[:, :, :T], out=o[0])  # a₀v₀
    torch.matmul(A[..., T:], V[:, :, :2 * T], out=o[1])  # a₁v₀ + a₀v₁
    torch.matmul(A, V, out=o[2])  # a₂v₀ + a₁v₁ + a₀v₂
    o = o.transpose(2, 3).reshape(B3, T, -1)
    out = F.linear(o, mod.proj.weight)
    if mod.proj.bias is not None:
        out[:B] += mod.proj.bias
    return out


def _max_pool(mod, X, *args, **kwargs):
    """Max-pooling: the primal's arg-max selects every stream."""
    x0, *rest = _streams(X)
    y0, idx = F.max_pool2d(x0, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode,
                           return_indices=True)
    flat = idx.flatten(2)
    pick = [x.flatten(2).gather(2, flat).view_as(y0) for x in rest]
    return torch.cat([y0, *pick])


def _expanded(mod, X, *args, **kwargs):
    """Rule of a module linearised at its anchor inputs (:mod:`curvlib.measure.surgery`): affine in its input, so
    f goes through the expansion and f′, f″ through its Jacobian (``mod.tangent``)."""
    head, *rest = _streams(X)
    return torch.cat([mod(head, *args, **kwargs), *(mod.tangent(s) for s in rest)])


#: Jet rules by module type name: (module, stacked input [3B, …], its other inputs) → stacked output (without
#: autograd: :func:`jet_features` runs them in inference mode).
RULES = {
    "ReLU": _relu_like(0.0, None),
    "ReLU6": _relu_like(0.0, 6.0),
    "GELU": _gelu,
    "LayerNorm": _layer_norm,
    "LayerNorm2d": _layer_norm_2d,
    "BatchNormAct2d": _batch_norm_act,
    "BatchNorm2d": _batch_norm_2d,
    "Conv2d": _conv2d,
    "Linear": _linear,
    "Attention": _attention,
    "WindowAttention": _attention,
    "MaxPool2d": _max_pool,
    "_Expanded": _expanded,
}


def apply(mod: nn.Module, X: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """``mod`` on stacked streams X [3B, …] (a rule, or the module itself where it is linear)."""
    rule = RULES.get(type(mod).__name__)
    return rule(mod, X, *args, **kwargs) if rule is not None else mod(X, *args, **kwargs)


class _Rule(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, X, *args, **kwargs):
        return apply(self.inner, X, *args, **kwargs)


def _plan(net: nn.Module) -> tuple[list, list, list]:
    """(modules with a rule, affine modules, unsupported leaf names) of ``net``, outermost first."""
    ruled, affine, bad = [], [], []
    for name, mod in net.named_modules():
        if any(name.startswith(r + ".") for r, _ in ruled):
            continue
        kind = type(mod).__name__
        if kind in RULES:
            ruled.append((name, mod))
            act = getattr(mod, "act", None) if kind == "BatchNormAct2d" else None
            if act is not None and type(act).__name__ not in RULES and type(act).__name__ not in PASS:
                bad.append(f"{name}.act ({type(act).__name__})")
        elif kind in AFFINE:
            affine.append((name, mod))
        elif not any(True for _ in mod.children()) and kind not in PASS:
            bad.append(f"{name or '(root)'} ({kind})")
    return ruled, affine, bad


def _checked_plan(model) -> tuple[list, list]:
    """(modules with a rule, affine modules) of ``model``'s network; :class:`JetUnsupported` naming the reason
    where the jet does not cover it (not a curvlib model of a timm network, training mode, an unchecked network
    class, a module without a rule)."""
    net = getattr(model, "net", None)
    if net is None or not hasattr(model, "mean"):
        raise JetUnsupported(f"{type(model).__name__} is not a curvlib model of a timm network")
    if getattr(model, "training", False) or net.training:
        raise JetUnsupported("the model is in training mode")
    if type(net).__name__ not in _NETWORKS:
        raise JetUnsupported(f"no jet for {type(net).__name__} networks")
    ruled, affine, bad = _plan(net)
    if bad:
        raise JetUnsupported(f"no jet rule for {', '.join(bad)}")
    return ruled, affine


#: Rules of piecewise-linear modules: between kinks they map a zero second stream to zeros.
_PIECEWISE_LINEAR = ("ReLU", "ReLU6", "MaxPool2d", "BatchNorm2d", "Conv2d", "Linear")


def _piecewise_linear(ruled: list) -> bool:
    """Whether every ruled module is piecewise linear (a BatchNormAct2d only with a ReLU / ReLU6 and no dropout):
    the features are then piecewise linear along the path, f″ = 0 between kinks, and two streams suffice."""
    def linear(mod):
        kind = type(mod).__name__
        if kind == "BatchNormAct2d":
            return type(mod.act).__name__ in ("ReLU", "ReLU6", "Identity") and isinstance(mod.drop, nn.Identity)
        return kind in _PIECEWISE_LINEAR
    return all(linear(mod) for _, mod in ruled)


def unsupported(model) -> str | None:
    """Why :func:`jet_features` does not cover ``model``, or None where it does (a curvlib model in eval mode
    whose timm network is of a checked class and has only modules with a rule or linear ones)."""
    try:
        _checked_plan(model)
    except JetUnsupported as e:
        return str(e)
    return None


def supports(model) -> bool:
    """Whether :func:`jet_features` covers ``model`` (:func:`unsupported` has no reason)."""
    return unsupported(model) is None


def _vit_pos_embed(net):
    """ViT's class/register tokens and position embedding are an offset: f gets them, the other streams zeros."""
    orig = type(net)._pos_embed

    def pos_embed(X):
        x0, rest = X[:_head(X)], X[_head(X):]
        y0 = orig(net, x0)
        rest = rest.reshape(len(rest), -1, rest.shape[-1])
        pad = rest.new_zeros(len(rest), y0.shape[1] - rest.shape[1], rest.shape[-1])
        return torch.cat([y0, torch.cat([pad, rest], 1)])  # prefix tokens first, as timm's
    return pos_embed


#: Network classes whose forward code the jet has been checked on (functional offsets patched).
_NETWORKS = {"ResNet": None, "EfficientNet": None, "SwinTransformer": None, "VisionTransformer": _vit_pos_embed}


@contextlib.contextmanager
def _jet_mode(net: nn.Module, ruled: list, affine: list):
    """Context: ``net`` running on stacked streams — the ``ruled`` modules swapped for their rules, the ``affine``
    ones hooked to take their offset off the other streams, ViT's position embedding patched — restored on exit."""
    swapped, hooks, guard = [], [], {"on": False}

    def offset(mod, inputs, out):
        if guard["on"]:
            return None
        guard["on"] = True
        try:
            zero = mod(inputs[0].new_zeros(1, *inputs[0].shape[1:]))
        finally:
            guard["on"] = False
        out[_head(out):] -= zero
        return out

    try:
        for name, mod in ruled:
            parent_name, _, child = name.rpartition(".")
            parent = net.get_submodule(parent_name) if parent_name else net
            setattr(parent, child, _Rule(mod))
            swapped.append((parent, child, mod))
        hooks = [mod.register_forward_hook(offset) for _, mod in affine]
        patch = _NETWORKS[type(net).__name__]
        if patch is not None:
            net._pos_embed = patch(net)
        yield
    finally:
        for h in hooks:
            h.remove()
        for parent, child, mod in swapped:
            setattr(parent, child, mod)
        net.__dict__.pop("_pos_embed", None)


def path_streams(x: torch.Tensor, d: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """[p; p′; p″/2] [3B, C, H, W] of p(ε) = clip(x + ε d) at eps [B]: p′ = d where the pixel is strictly inside
    (0, 1) — a pixel on a bound counts as clipped, as in forward-mode autograd's clamp —, p″ = 0."""
    v = x + eps.view(-1, 1, 1, 1) * d
    inside = (v > 0) & (v < 1)
    return torch.cat([v.clamp(0, 1), d * inside, torch.zeros_like(v)])


@torch.inference_mode()
def jet_features(model, x: torch.Tensor, d: torch.Tensor, eps: torch.Tensor, blocks=(), index=None) -> tuple:
    """(f, f′, f″) [B, F] of the features along clip(x + ε d): images x [B, C, H, W] in [0, 1], directions
    d [B, C, H, W], eps [B] (one ε per point); ``blocks``: residual blocks whose (out, out′, out″) are
    returned too, as a list after the features' triple. A network of piecewise-linear modules only runs two
    streams and returns f″ = 0 (exact between kinks; :func:`_piecewise_linear`). ``index`` [B]: the anchor
    of every point, for a linearised model (``model.takes_index``; default: point i ↔ anchor i). Autocast is
    off inside: the derivatives are computed in the model's own dtype."""
    try:
        ruled, affine = _checked_plan(model)
    except JetUnsupported as e:
        raise JetUnsupported(f"{e}: use nested AD (curvature(..., method='jvp'))") from None
    check_pixels(x)
    if not isinstance(d, torch.Tensor) or d.shape != x.shape or not torch.isfinite(d).all():
        raise ValueError(f"directions must be finite and shaped like the images {tuple(x.shape)}, "
                         f"got {getattr(d, 'shape', type(d).__name__)}")
    if not isinstance(eps, torch.Tensor) or eps.shape != (len(x),) or not torch.isfinite(eps).all():
        raise ValueError(f"eps must be {len(x)} finite values (one per image), got {getattr(eps, 'shape', eps)}")
    if getattr(model, "takes_index", False):
        model.select(len(x), index)
    net = model.net
    n = 2 if _piecewise_linear(ruled) and _NETWORKS[type(net).__name__] is None else 3
    B = len(x)
    X = path_streams(x, d, eps)[:n * B]
    X[:B] -= model.mean
    X /= model.std
    captured = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: captured.append(o)) for m in blocks]
    token = _N.set(n)
    try:
        with _jet_mode(net, ruled, affine), torch.autocast(X.device.type, enabled=False):
            out = net.forward_head(net.forward_features(X), pre_logits=True)
        streams = [_streams(t) for t in (out, *captured)]
    finally:
        _N.reset(token)
        for h in hooks:
            h.remove()
    return [(s[0], s[1], s[2] * 2) if n == 3 else (*s, torch.zeros_like(s[0])) for s in streams]  # f″ = 2 f₂
