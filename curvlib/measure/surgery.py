r"""Taking the bends out: linearise one kind of component at the image (issue #26).

Along a line x(ε) = clip(x + ε d), every module of one *kind* is replaced by its first-order
Taylor expansion at the input it receives for the anchor image x:

.. math:: c_\mathrm{lin}(u) = c(u_0) + J_c(u_0)\,(u - u_0),

applied without materialising a Jacobian: elementwise modules keep their slope at the anchor (the
Jacobian's diagonal), timm attention applies its derivative written out from the anchor's q, k, v and
softmax weights (checked against AD), any other module runs forward-mode AD (``torch.func.jvp``) at
its anchor input. Each replaced module keeps its value and first derivative at its anchor input, so the
surgered network has the *same* f(x) and the same first-order response f'(x)·d as the original: only the
bending that the chosen kind contributes along the path is gone. :func:`linearized` builds such a model:

- ``attention``: a timm ``Attention`` (ViT) or ``WindowAttention`` (Swin, with its relative-position
  bias and the shift mask it receives as the keyword ``mask``), scores, softmax and value mixing;
- ``norm``: ``LayerNorm`` / ``LayerNorm2d`` (BatchNorm in eval mode is already affine — a per-channel
  scale and shift with stored statistics — so it needs no surgery: :func:`is_affine` checks it);
- ``activation``: GELU, ReLU, ReLU6 (and SiLU, LeakyReLU): elementwise, so the expansion is the
  anchor's value plus its slope (a ReLU's slope is its gate at the anchor) times the change — the
  Jacobian's diagonal, stored per anchor;
- ``pooling``: max-pooling (the expansion selects the anchor's arg-max);
- ``all``: every one of the above (the tests check that nothing non-linear is left: the surgered
  features are then exactly f(x) + J(x)(x(ε) − x)).

Point i of a batch is expanded around anchor i. Where a caller passes a subset of the samples
(:func:`curvlib.measure.travel.travel` probes only the samples still searching) or many points per sample
(:func:`curvlib.measure.curvature.curvature`), it passes ``index=`` (the anchor number of every point):
such callers check :func:`curvlib.inference.call`; plain models are called as before.

Below the model, a path to check by hand (:func:`gelu_toy`). The chapter's cached experiments are in
:mod:`curvlib.experiments.surgery`, its verdicts and ledger rows in :mod:`curvlib.claims.surgery`.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..models import CurvModel
from .attention import attention_parts, is_attention

#: The kinds of component :func:`linearized` can linearise, by module type name.
KIND_TYPES = {
    "attention": ("Attention", "WindowAttention"),
    "norm": ("LayerNorm", "LayerNorm2d"),
    "activation": ("GELU", "ReLU", "ReLU6", "SiLU", "LeakyReLU"),
    "pooling": ("MaxPool2d",),
}
KINDS = (*KIND_TYPES, "all")
#: Elementwise kinds: stored slope per anchor instead of a jvp per call.
_ELEMENTWISE = set(KIND_TYPES["activation"])
#: Modules that are affine in eval mode (need no surgery; :func:`is_affine`).
AFFINE_IN_EVAL = ("BatchNorm1d", "BatchNorm2d", "TokenBatchNorm")


def check_kinds(kinds) -> tuple[str, ...]:
    """``kinds`` as a tuple of known kind names ("all" expanded); a clear error otherwise."""
    if isinstance(kinds, str):
        raise TypeError(f"kinds must be a tuple of names such as ('attention',), not the string {kinds!r}")
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise TypeError(f"kinds must be a tuple of names from {', '.join(KINDS)}, got {kinds!r}") from None
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ValueError(f"unknown kind(s) {', '.join(map(repr, bad))}; choose from {', '.join(KINDS)}")
    if "all" in kinds:
        return tuple(KIND_TYPES)
    return tuple(dict.fromkeys(kinds))


def is_affine(module: nn.Module, x: torch.Tensor, v: torch.Tensor, atol: float = 1e-5) -> bool:
    """Whether ``module`` is affine around x along v: m(x + v) − m(x) == J(x)v (one jvp)."""
    from torch.func import jvp

    with torch.no_grad():
        y0, t = jvp(module, (x,), (v,))
        return bool(torch.allclose(module(x + v) - y0, t, atol=atol, rtol=1e-5))


class _Index:
    """The anchor numbers of the points of the current call, shared by the expanded modules
    (``identity``: the call is the anchors themselves, in order, so no rows need gathering)."""

    def __init__(self):
        self.value: torch.Tensor | None = None
        self.identity = False
        self.n_anchors = 0


def _rows(t: torch.Tensor, state: _Index) -> torch.Tensor:
    """Rows of a captured tensor [n·r, …] (sample-major) for the call's anchors idx [B] → [B·r, …]."""
    if state.identity:
        return t
    n, idx = state.n_anchors, state.value
    r = t.shape[0] // n
    return t.view(n, r, *t.shape[1:])[idx].reshape(len(idx) * r, *t.shape[1:])


def _plain_attention(module: nn.Module) -> bool:
    """A timm Attention / WindowAttention whose tangent :class:`_Expanded` writes out (no q/k/out norm)."""

    return is_attention(module) and all(isinstance(getattr(module, a, nn.Identity()), nn.Identity)
                                         for a in ("q_norm", "k_norm", "norm"))


class _Expanded(nn.Module):
    """A module replaced by its first-order expansion at its anchor inputs (one per anchor).

    Three ways to the same expansion: elementwise modules (activations) store value and slope at the
    anchor (the Jacobian's diagonal); timm attention stores q, k, v, the softmax weights and the output
    at the anchor and applies their derivative (scores dS = (dq k₀ᵀ + q₀ dkᵀ)·s — the bias and the shift
    mask are constants —, weights dA = A₀ ⊙ (dS − Σⱼ A₀ dS), output proj(dA v₀ + A₀ dv)); any other
    module runs ``torch.func.jvp`` at its anchor input with the captured extra inputs."""

    def __init__(self, module: nn.Module, u0: torch.Tensor, args: tuple, kwargs: dict, state: _Index):
        super().__init__()
        self.inner = module
        self.state = state
        self.args, self.kwargs = args, kwargs
        if u0.shape[0] % state.n_anchors:
            raise ValueError(f"{type(module).__name__}: its input's leading size {u0.shape[0]} is not a multiple of "
                             f"the {state.n_anchors} anchors")
        self.rows = u0.shape[0] // state.n_anchors  # rows per anchor (Swin: windows)
        self.mode = "elementwise" if type(module).__name__ in _ELEMENTWISE else \
            "attention" if _plain_attention(module) and not args and set(kwargs) <= {"mask", "attn_mask", "is_causal"} \
            and not kwargs.get("is_causal", False) and kwargs.get("attn_mask") is None else "jvp"
        if self.mode != "elementwise":
            self.register_buffer("u0", u0, persistent=False)
        with torch.no_grad():
            if self.mode == "elementwise":  # value and slope at the anchor: the Jacobian's diagonal
                from torch.func import jvp

                y0, s0 = jvp(module, (u0,), (torch.ones_like(u0),))
                self.register_buffer("b0", y0 - s0 * u0, persistent=False)  # c_lin(u) = b0 + s0·u
                self.register_buffer("s0", s0, persistent=False)
            elif self.mode == "attention":

                parts = attention_parts(module, u0, kwargs.get("mask"))
                for k in ("q", "k", "v", "weights", "out"):
                    self.register_buffer(k + "0", parts[k].contiguous(), persistent=False)

    def _check(self, u: torch.Tensor) -> None:
        if u.shape[0] != (want := len(self.state.value) * self.rows):
            raise ValueError(f"{type(self.inner).__name__}: input of {u.shape[0]} rows for {len(self.state.value)} "
                             f"points (expected {want})")

    def forward(self, u, *args, **kwargs):
        st = self.state
        self._check(u)
        if self.mode == "elementwise":
            return torch.addcmul(_rows(self.b0, st), _rows(self.s0, st), u)
        du = u - _rows(self.u0, st)  # (not b0 + J·u: J·du keeps small differences exact)
        if self.mode == "attention":
            return self._attention_tangent(du).add_(_rows(self.out0, st))
        return torch.add(*self._jvp(du))

    def _jvp(self, du: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from torch.func import jvp

        # the anchor's own extra inputs (e.g. Swin's shift mask, passed as the keyword ``mask``)
        return jvp(lambda z: self.inner(z, *self.args, **self.kwargs), (_rows(self.u0, self.state),), (du,))

    def tangent(self, du: torch.Tensor) -> torch.Tensor:
        """J(u₀)·du for the call's anchors, without the offset (the expansion is affine in u: the jet,
        :mod:`curvlib.measure.jet`, carries f′ and f″ through this)."""
        self._check(du)
        if self.mode == "elementwise":
            return _rows(self.s0, self.state) * du
        return self._attention_tangent(du) if self.mode == "attention" else self._jvp(du)[1]

    def _attention_tangent(self, du: torch.Tensor) -> torch.Tensor:
        """J(u₀)·du of a timm attention module for inputs du [B, T, D] (biases drop out: linear in du).

        Memory: besides the anchors' q, k, v and weights gathered for the call, one [B, H, T, T] tensor
        (the score tangent, updated in place: no product of two such tensors is materialised)."""
        m, st = self.inner, self.state
        B, T, _ = du.shape
        H = m.num_heads
        dq, dk, dv = (du @ m.qkv.weight.T).view(B, T, 3, H, -1).permute(2, 0, 3, 1, 4).unbind(0)
        hd = dq.shape[-1]
        ds = dq @ _rows(self.k0, st).transpose(-2, -1)  # dS = (dq k₀ᵀ + q₀ dkᵀ)·s
        ds.view(-1, T, T).baddbmm_(_rows(self.q0, st).view(-1, T, hd), dk.reshape(-1, T, hd).transpose(1, 2))
        ds.mul_(m.scale)
        a0 = _rows(self.weights0, st)
        rs = (a0.unsqueeze(-2) @ ds.unsqueeze(-1)).squeeze(-1)  # Σⱼ A₀ dS [B, H, T, 1], no [B, H, T, T] product
        da = ds.sub_(rs).mul_(a0)  # dA = A₀ ⊙ (dS − Σⱼ A₀ dS)
        ctx = da @ _rows(self.v0, st)  # dA v₀ + A₀ dv
        del da, ds
        ctx.view(-1, T, hd).baddbmm_(a0.view(-1, T, T), dv.reshape(-1, T, hd))
        return ctx.transpose(1, 2).reshape(B, T, -1) @ m.proj.weight.T


def _copy(v):
    return v.detach().clone() if isinstance(v, torch.Tensor) else v


class Linearized(nn.Module):
    """A model with some of its modules linearised at anchor images (built by :func:`linearized`).

    Same interface as :class:`curvlib.models.CurvModel`: ``model(x, index=None)`` → logits [B, K],
    ``features(x, index=None)`` → [B, F], ``head``, ``num_classes``, ``name``, ``input_size``. ``index``
    [B]: the anchor of every point (default: point i ↔ anchor i, which needs B = number of anchors).
    ``replaced``: qualified names of the linearised modules; ``kinds``: the kinds linearised.
    """

    takes_index = True

    def __init__(self, model: nn.Module, anchors: torch.Tensor, kinds: tuple[str, ...], replaced: list[str],
                 state: _Index):
        super().__init__()
        self.model = model
        self.kinds = kinds
        self.replaced = replaced
        self._state = state
        self.register_buffer("anchors", anchors, persistent=False)

    # the CurvModel interface
    name = property(lambda self: self.model.name)
    input_size = property(lambda self: self.model.input_size)
    num_classes = property(lambda self: self.model.num_classes)
    card = property(lambda self: self.model.card)

    @property
    def fingerprint(self) -> str:
        return f"{self.model.fingerprint}+lin({','.join(self.kinds)})"

    @property
    def check_inputs(self) -> bool:
        return self.model.check_inputs

    @check_inputs.setter
    def check_inputs(self, value: bool) -> None:
        self.model.check_inputs = value

    # what the jet reads (curvlib.measure.jet): the timm network, with its expanded modules, and the normalisation
    net, mean, std = (property(lambda self, a=a: getattr(self.model, a)) for a in ("net", "mean", "std"))

    def select(self, points: int, index=None) -> None:
        """Name the anchor of each of the next call's ``points`` points (``index`` [points]; default: point i ↔
        anchor i). The forward methods do this; a caller running ``net`` itself (the jet) calls it first."""
        n = len(self.anchors)
        if index is None:
            if points != n:
                raise ValueError(f"{points} points for {n} anchors: pass index= (the anchor of every point)")
            index = torch.arange(n)
        index = torch.as_tensor(index).long().flatten().to(self.anchors.device)
        if len(index) != points:
            raise ValueError(f"index must name one anchor per point ({points}), got {len(index)}")
        if len(index) and (index.min() < 0 or index.max() >= n):
            raise ValueError(f"index must be anchor numbers in 0 … {n - 1}")
        self._state.value = index
        self._state.identity = len(index) == n and bool((index == torch.arange(n, device=index.device)).all())

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels [B, C, H, W] in [0, 1] → logits [B, K]; point i expanded around anchor index[i]."""
        self.select(x.shape[0], index)
        return self.model(x)

    def features(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels [B, C, H, W] in [0, 1] → penultimate representation [B, F]."""
        self.select(x.shape[0], index)
        return self.model.features(x)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.model.head(f)


def targets(model: nn.Module, kinds) -> list[tuple[str, nn.Module]]:
    """The outermost modules of ``model`` of the given kinds (a module inside another one is left to it)."""
    types = {t for k in check_kinds(kinds) for t in KIND_TYPES[k]}
    out = []
    for name, mod in model.named_modules():
        if type(mod).__name__ in types and not any(name.startswith(o + ".") for o, _ in out):
            out.append((name, mod))
    return out


@torch.no_grad()
def linearized(model: nn.Module, anchors: torch.Tensor, kinds=("all",), batch_size: int = 100) -> Linearized:
    """``model`` with every module of ``kinds`` replaced by its first-order expansion at the input it
    receives for each anchor image.

    Args:
        model: a :class:`curvlib.models.CurvModel` (pixels → logits, ``features``, ``head``), in eval mode.
        anchors: images [N, C, H, W] in [0, 1]; point i of a call is expanded around anchor i (or
            around ``anchors[index[i]]`` with ``index=``).
        kinds: a tuple of names in :data:`KINDS`; ``()`` linearises nothing (the outputs equal the
            original's), ``("all",)`` every kind.
        batch_size: anchors per forward pass while the anchor inputs are captured.

    The model is deep-copied (in-place activations and timm's fused attention switched off); the
    anchor inputs of every replaced module — first positional argument, further positional ones and
    keyword ones (Swin's shift ``mask``) — are cloned when captured and replayed at every call.
    Memory: the replaced modules' inputs for all N anchors (and, for activations, value and slope).
    """
    kinds = check_kinds(kinds)
    if not isinstance(anchors, torch.Tensor) or anchors.ndim != 4 or len(anchors) == 0:
        raise ValueError(f"anchors must be images [N, C, H, W], got {getattr(anchors, 'shape', type(anchors))}")
    if getattr(model, "training", False):
        raise ValueError("linearize a model in eval mode (BatchNorm and dropout must be fixed maps)")
    if not hasattr(model, "features"):
        raise TypeError(f"expected a curvlib model with features(), got {type(model).__name__}")
    net = copy.deepcopy(model)
    for m in net.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
        if getattr(m, "fused_attn", None) is True:  # forward-mode AD has no rule for the fused kernel
            m.fused_attn = False
    dev = next((p.device for p in net.parameters()), torch.device("cpu"))
    anchors = anchors.to(dev).float()
    found = targets(net, kinds)
    captured: dict[str, list] = {name: [] for name, _ in found}
    hooks = []
    for name, mod in found:
        def hook(m, args, kwargs, name=name):
            captured[name].append((_copy(args[0]), tuple(_copy(a) for a in args[1:]),
                                   {k: _copy(v) for k, v in kwargs.items()}))
        hooks.append(mod.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        for i in range(0, len(anchors), batch_size):
            calls = {n: len(c) for n, c in captured.items()}
            net.features(anchors[i:i + batch_size])
            twice = [n for n, c in captured.items() if len(c) != calls[n] + 1]
            if twice:
                raise ValueError(f"module(s) {', '.join(twice)} ran other than once per forward: their anchor "
                                 "input is ambiguous")
    finally:
        for h in hooks:
            h.remove()
    state = _Index()
    state.n_anchors = len(anchors)
    for name, mod in found:
        parts = captured[name]
        u0 = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        args, kwargs = parts[0][1], parts[0][2]
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, _Expanded(mod, u0, args, kwargs, state))
    return Linearized(net, anchors, kinds, [n for n, _ in found], state).eval()


# ---------------------------------------------------------------------------------------------
# A path to check by hand


class _GeluPath(nn.Module):
    """Features (u, GELU(u)) of one value u, logits (c − GELU(u), 0): class 0 while GELU(u) < c."""

    num_classes = 2

    def __init__(self, threshold: float):
        super().__init__()
        self.act = nn.GELU()
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.0, -1.0], [0.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([float(threshold), 0.0]))

    def forward_features(self, u):
        u = u.flatten(1)
        return torch.cat([u, self.act(u)], 1)

    def forward_head(self, f, pre_logits: bool = False):
        return f if pre_logits else self.fc(f)

    def get_classifier(self):
        return self.fc

    def forward(self, u):
        return self.forward_head(self.forward_features(u))


def gelu_toy(threshold: float):
    """A one-pixel model whose feature path is the graph of GELU: pixel p → u = 4p − 2 (the
    normalisation (p − ½)/¼), features f = (u, GELU(u)) [N, 2], logits (threshold − GELU(u), 0).

    From the image p = ½ (u = 0) along d = +1 the path is f(ε) = (4ε, GELU(4ε)); class 0 holds while
    GELU(4ε) < threshold, so ε* = GELU⁻¹(threshold)/4, and the path linearised at the image,
    (4ε, 2ε) (GELU(0) = 0, GELU'(0) = Φ(0) = ½), crosses at ε*_lin = threshold/2."""

    if not 0 < threshold < 1.9:  # GELU(0) = 0 at the image, GELU(2) ≈ 1.95 at the pixel's end
        raise ValueError(f"threshold must be in (0, 1.9): class 0 at the image, a crossing before p = 1, got "
                         f"{threshold}")
    return CurvModel(_GeluPath(threshold), (0.5,), (0.25,), "gelu_toy", (1, 1, 1)).eval().requires_grad_(False)

