r"""Taking the bends out: linearise one kind of component at the image (issue #26).

Along a line x(ε) = clip(x + ε d), every module of one *kind* is replaced by its first-order
Taylor expansion at the input it receives for the anchor image x:

.. math:: c_\mathrm{lin}(u) = c(u_0) + J_c(u_0)\,(u - u_0),

applied without materialising a Jacobian: elementwise modules keep their slope at the anchor (the
Jacobian's diagonal), timm attention applies its derivative written out from the anchor's q, k, v and
softmax weights (checked against AD), any other module runs forward-mode AD (``torch.func.jvp``) at
its anchor input. Each replaced
module keeps its value and first derivative at its anchor input, so the surgered network has the
*same* f(x) and the same first-order response f'(x)·d as the original: only the bending that the
chosen kind contributes along the path is gone. :func:`linearized` builds such a model:

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
(:func:`curvlib.travel.travel` probes only the samples still searching) or many points per sample
(:func:`curvlib.trajectory.curvature`), it passes ``index=`` (the anchor number of every point):
such callers check :func:`curvlib.inference.call`; plain models are called as before.

Below the model: the cached experiments the chapter "Taking the bends out" runs (ω and θ per
surgery, travel to the boundary with the anchor held at x, the turning accumulated before the
boundary), their verdicts with paired bootstrap intervals, and the claims ledger's rows.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import runner

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
    from .attention import _is_attention

    return _is_attention(module) and all(isinstance(getattr(module, a, nn.Identity()), nn.Identity)
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
                from .attention import attention_parts

                parts = attention_parts(module, u0, kwargs.get("mask"))
                for k in ("q", "k", "v", "weights", "out"):
                    self.register_buffer(k + "0", parts[k].contiguous(), persistent=False)

    def forward(self, u, *args, **kwargs):
        st = self.state
        r = self.rows
        if u.shape[0] != len(st.value) * r:
            raise ValueError(f"{type(self.inner).__name__}: input of {u.shape[0]} rows for {len(st.value)} points "
                             f"(expected {len(st.value) * r})")
        if self.mode == "elementwise":
            return torch.addcmul(_rows(self.b0, st), _rows(self.s0, st), u)
        du = u - _rows(self.u0, st)  # (not b0 + J·u: J·du keeps small differences exact)
        if self.mode == "attention":
            return _rows(self.out0, st) + self._attention_tangent(du)
        from torch.func import jvp

        # the anchor's own extra inputs (e.g. Swin's shift mask, passed as the keyword ``mask``)
        y0, t = jvp(lambda z: self.inner(z, *self.args, **self.kwargs), (_rows(self.u0, st),), (du,))
        return y0 + t

    def _attention_tangent(self, du: torch.Tensor) -> torch.Tensor:
        """J(u₀)·du of a timm attention module for inputs du [B, T, D] (biases drop out: linear in du)."""
        m, st = self.inner, self.state
        B, T, _ = du.shape
        q0, k0, v0, a0 = (_rows(t, st) for t in (self.q0, self.k0, self.v0, self.weights0))
        dq, dk, dv = (du @ m.qkv.weight.T).reshape(B, T, 3, m.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        ds = dq @ k0.transpose(-2, -1)  # in place below: the [B, H, T, T] tensors are the largest
        ds.add_(q0 @ dk.transpose(-2, -1)).mul_(m.scale)
        da = ds.sub_((a0 * ds).sum(-1, keepdim=True)).mul_(a0)  # A₀ ⊙ (dS − Σⱼ A₀ dS)
        ctx = (da @ v0).add_(a0 @ dv).transpose(1, 2).reshape(B, T, -1)
        return ctx @ m.proj.weight.T


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

    def _set(self, x: torch.Tensor, index) -> None:
        n = len(self.anchors)
        if index is None:
            if x.shape[0] != n:
                raise ValueError(f"{x.shape[0]} points for {n} anchors: pass index= (the anchor of every point)")
            index = torch.arange(n)
        index = torch.as_tensor(index).long().flatten().to(self.anchors.device)
        if len(index) != x.shape[0]:
            raise ValueError(f"index must name one anchor per point ({x.shape[0]}), got {len(index)}")
        if len(index) and (index.min() < 0 or index.max() >= n):
            raise ValueError(f"index must be anchor numbers in 0 … {n - 1}")
        self._state.value = index
        self._state.identity = len(index) == n and bool((index == torch.arange(n, device=index.device)).all())

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels [B, C, H, W] in [0, 1] → logits [B, K]; point i expanded around anchor index[i]."""
        self._set(x, index)
        return self.model(x)

    def features(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels [B, C, H, W] in [0, 1] → penultimate representation [B, F]."""
        self._set(x, index)
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
    from .models import CurvModel

    if not 0 < threshold < 1.9:  # GELU(0) = 0 at the image, GELU(2) ≈ 1.95 at the pixel's end
        raise ValueError(f"threshold must be in (0, 1.9): class 0 at the image, a crossing before p = 1, got "
                         f"{threshold}")
    return CurvModel(_GeluPath(threshold), (0.5,), (0.25,), "gelu_toy", (1, 1, 1)).eval().requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# Experiments (cached, keyed by parameters + data + weights + code): ω and θ, travel, turning

#: The surgeries the experiments take: "none" (the original model) or one kind.
SURGERIES = ("none", *KINDS)


def _check_surgery(surgery: str) -> str:
    if surgery not in SURGERIES:
        raise ValueError(f"unknown surgery {surgery!r}; choose one of {', '.join(SURGERIES)}")
    return surgery


def _surgered(model, x, surgery: str, batch_size: int):
    """The original model for "none", else the model linearised on ``surgery`` at the images x."""
    return model if _check_surgery(surgery) == "none" else linearized(model, x, (surgery,), batch_size)


def _chunk(profile) -> int:
    """Anchors per linearised model (memory: their captured inputs); the experiments loop over chunks."""
    return max(1, profile.batch_size // 4) if profile.dataset == "imagenet" else profile.batch_size


def applies(model, surgery: str) -> bool:
    """Whether ``surgery`` changes ``model`` at all (it has modules of that kind; "none" always applies)."""
    return _check_surgery(surgery) == "none" or bool(targets(model, (surgery,)))


def canonical(model, surgery: str) -> str:
    """``surgery``, or "all" where it linearises exactly the modules "all" does (a ReLU/BatchNorm CNN's
    "activation"): the two experiments would compute the same numbers, so a chapter runs one."""
    if _check_surgery(surgery) in ("none", "all"):
        return surgery
    same = [n for n, _ in targets(model, (surgery,))] == [n for n, _ in targets(model, ("all",))]
    return "all" if same else surgery


def _images(model, profile, n, kind, seed, shard=None):
    """(images, labels, directions, global numbers) of the profile's first n test images (a shard of
    them); directions of the *original* model (FGSM) or seeded random: the same for every surgery."""
    from . import data
    from .direction import direction

    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None,
                         shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, kind, seed=seed, batch_size=profile.batch_size, index=index)
    return x, y, d, index


def path_experiment(model_name: str, surgery: str = "none", profile=None, kind: str = "fgsm",
                    refresh: bool = False, checkpoint=None, **params) -> dict:
    """Cached ω (step-free) and θ (the paper's one-way ruler) of ``model_name`` with ``surgery``
    (a kind, or "none") along ``kind`` directions, anchor = the image x, on the profile's first
    ``n_images`` test images (default ``profile.n_theta_images``).

    Returns ``omega`` [N, E] (radians per unit ε, on ``omega_eps`` = linspace(0, omega_range, E)),
    ``theta`` [N, n_steps − 1] (radians, on the one-way grid ``theta_eps`` up to eps_range), ``index``
    [N] (test-image numbers) and ``replaced`` (the linearised modules)."""
    return runner.run("surgery_path", model_name, profile, checkpoint=checkpoint, refresh=refresh,
                      surgery=surgery, kind=kind, **params)


def _path_defaults(p) -> dict:
    return {"n_images": p.n_theta_images, "surgery": "none", "kind": "fgsm", "eps_range": 0.1,
            "n_steps": p.n_steps, "omega_range": 0.04, "omega_steps": 3, "seed": 0}


def _path_part(model, profile, shard, context, *, n_images, surgery, kind, eps_range, n_steps, omega_range,
               omega_steps, seed):
    from .trajectory import curvature, eps_grid, probe_line, theta

    x, _, d, index = _images(model, profile, n_images, kind, seed, shard)
    ew, et = torch.linspace(0, omega_range, omega_steps + 1), eps_grid("oneway", eps_range, n_steps)
    omega, th, replaced = [], [], []
    dev = profile.device
    for s in range(0, len(x), _chunk(profile)):
        xs, ds = x[s:s + _chunk(profile)].to(dev), d[s:s + _chunk(profile)].to(dev)
        m = _surgered(model, xs, surgery, profile.batch_size)
        replaced = getattr(m, "replaced", [])
        omega.append(curvature(m, xs, ds, ew, batch_size=max(1, profile.batch_size // 2))["omega"].cpu())
        th.append(theta(probe_line(m, xs, ds, et, profile.batch_size)["features"]).cpu())
    return {"omega": torch.cat(omega), "theta": torch.cat(th), "index": index, "replaced": replaced}


def _interleave_images(parts: list, params: dict) -> dict:
    """Image-sharded parts back into image order (every size-th image from rank)."""
    out = {}
    for key in ("omega", "theta", "index"):
        n = sum(len(p[key]) for p in parts)
        t = torch.empty(n, *parts[0][key].shape[1:], dtype=parts[0][key].dtype)
        for r, p in enumerate(parts):
            t[r::len(parts)] = p[key]
        out[key] = t
    out["replaced"] = list(parts[0]["replaced"])
    out["omega_eps"] = torch.linspace(0, params["omega_range"], params["omega_steps"] + 1)
    from .trajectory import eps_grid

    out["theta_eps"] = eps_grid("oneway", params["eps_range"], params["n_steps"])
    return out


runner.experiment("surgery_path", defaults=_path_defaults, merge=_interleave_images,
                  code=("surgery", "trajectory"),
                  calls=tuple({"surgery": s} for s in ("none", "attention", "norm", "activation", "all")),
                  summary=lambda r: f"ω {tuple(r['omega'].shape)}, {len(r['replaced'])} modules linearised"
                  )(_path_part)


def travel_experiment(model_name: str, surgery: str = "none", kind: str = "fgsm", profile=None,
                      refresh: bool = False, checkpoint=None, **params) -> pd.DataFrame:
    """Cached :func:`curvlib.travel.travel` of ``model_name`` with ``surgery`` (anchor held at the image
    x) on the profile's first ``n`` test images (default ``max(4, profile.n_travel // 5)``) along
    ``kind`` (FGSM of the original model, or seeded random): the travel frame plus ``model``, ``kind``,
    ``surgery`` and ``n_replaced``. Confidence and prediction at x equal the original's."""
    return runner.run("surgery_travel", model_name, profile, checkpoint=checkpoint, refresh=refresh,
                      surgery=surgery, kind=kind, **params)


def _travel_defaults(p) -> dict:
    return {"n": max(4, p.n_travel // 5), "surgery": "none", "kind": "fgsm", "eps_max": 1.0, "tol": 1e-4,
            "seed": 0, "search": p.search}


def _travel_part(model, profile, shard, context, *, n, surgery, kind, eps_max, tol, seed, search):
    from .travel import travel

    x, y, d, index = _images(model, profile, n, kind, seed, shard)
    out, c = [], _chunk(profile)
    n_rep = 0
    for s in range(0, len(x), c):
        m = _surgered(model, x[s:s + c].to(profile.device), surgery, profile.batch_size)
        n_rep = len(getattr(m, "replaced", []))
        out.append(travel(m, x[s:s + c], y[s:s + c], d[s:s + c], eps_max=eps_max, tol=tol,
                          batch_size=profile.batch_size, search=search, progress=False))
    df = pd.concat(out, ignore_index=True)
    return df.assign(index=index.numpy(), model=model.name, kind=kind, surgery=surgery, n_replaced=n_rep)


runner.experiment("surgery_travel", defaults=_travel_defaults, code=("surgery", "travel"),
                  calls=tuple({"surgery": s, "kind": k} for k in ("fgsm", "random")
                              for s in ("none", "attention", "norm", "activation", "all")),
                  summary=lambda df: f"{df.surgery.iloc[0]} {df.kind.iloc[0]}: "
                                     f"{int((df.status == 'crossed').sum())}/{len(df)} crossed")(_travel_part)


def turning_experiment(model_name: str, kind: str = "fgsm", profile=None, refresh: bool = False,
                       checkpoint=None, **params) -> pd.DataFrame:
    """Cached turning accumulated before the boundary, ∫₀^ε* ω dε (radians), of the *original* model
    per image, on the images of :func:`travel_experiment` ("none"): ω on ``n_t`` + 1 evenly spaced
    points of [0, ε*] (trapezoid rule; d scaled by ε*, so ω per unit of that scaled step is ω·ε*).
    One row per image: ``index``, ``confidence``, ``eps``, ``status``, ``turning`` (NaN unless crossed)."""
    return runner.run("surgery_turning", model_name, profile, checkpoint=checkpoint, refresh=refresh, kind=kind,
                      **params)


def _turning_defaults(p) -> dict:
    return {**{k: v for k, v in _travel_defaults(p).items() if k != "surgery"}, "n_t": 3}


def _turning_prepare(model_name, profile, params, checkpoint):
    keep = {k: v for k, v in params.items() if k != "n_t"}
    return runner.run("surgery_travel", model_name, profile, checkpoint=checkpoint, surgery="none", **keep)


def _turning_part(model, profile, shard, context, *, n, kind, eps_max, tol, seed, search, n_t):
    from .trajectory import curvature

    x, y, d, index = _images(model, profile, n, kind, seed, shard)
    tr = context.set_index("index").loc[index.numpy()]
    ok = torch.from_numpy((tr.status == "crossed").to_numpy().copy())
    turning = np.full(len(x), np.nan)
    if ok.any():
        e = torch.as_tensor(tr.eps.to_numpy()[ok.numpy()], dtype=torch.float32).view(-1, 1, 1, 1)
        t = torch.linspace(0, 1, n_t + 1)
        w = curvature(model, x[ok].to(profile.device), (d[ok] * e).to(profile.device), t,
                      batch_size=max(1, profile.batch_size // 2))["omega"].double().numpy()
        turning[ok.numpy()] = np.trapezoid(w, t.double().numpy(), axis=1)
    return pd.DataFrame({"index": index.numpy(), "confidence": tr.confidence.to_numpy(), "eps": tr.eps.to_numpy(),
                         "status": tr.status.astype(str).to_numpy(), "turning": turning, "model": model.name,
                         "kind": kind})


runner.experiment("surgery_turning", defaults=_turning_defaults, prepare=_turning_prepare,
                  code=("surgery", "travel", "trajectory"),
                  summary=lambda df: f"turning on {int(df.turning.notna().sum())} images")(_turning_part)


# ---------------------------------------------------------------------------------------------
# Verdicts: paired bootstrap over images (curvlib.stats), the same rule as every ledger row

def _per_image_mean(t: torch.Tensor) -> np.ndarray:
    """Mean over the last axis (NaN ignored) per image [N]."""
    a = torch.as_tensor(t).double().numpy()
    with np.errstate(all="ignore"):
        return np.nanmean(a.reshape(a.shape[0], -1), axis=1)


def omega_shares(paths: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Share of the original's ω each surgery removes, per model, with a paired bootstrap over images.

    ``paths``: (model, surgery) → :func:`path_experiment` result, with surgery "none" for every model.
    One row per (model, surgery ≠ "none"): ``omega`` (mean ω, rad per unit ε, over images and ε),
    ``omega_none`` (the original's), ``share`` = 1 − omega / omega_none with ``lo``, ``hi``; ``theta``
    and ``theta_none`` (mean θ, degrees, the paper's one-way ruler); ``n`` images, ``modules`` (how many
    were linearised). A share is NaN where the original does not bend (ω = 0: a ReLU network)."""
    from .stats import bootstrap

    rows = []
    for (model, surgery), r in paths.items():
        if surgery == "none":
            continue
        if (model, "none") not in paths:
            raise ValueError(f"{model!r}: no original ('none') result to compare {surgery!r} with")
        o = paths[(model, "none")]
        if not torch.equal(torch.as_tensor(o["index"]), torch.as_tensor(r["index"])):
            raise ValueError(f"{model!r}: {surgery!r} was measured on other images than the original")
        wo, ws = _per_image_mean(o["omega"]), _per_image_mean(r["omega"])

        def share(i, wo=wo, ws=ws):
            den = wo[i].mean(1)
            with np.errstate(all="ignore"):
                return np.where(den > 0, 1 - ws[i].mean(1) / den, np.nan)

        est, lo, hi = bootstrap(share, len(wo), n_boot=n_boot, level=level, seed=seed)
        rows.append({"model": model, "surgery": surgery, "modules": len(r["replaced"]),
                     "omega_none": float(wo.mean()), "omega": float(ws.mean()), "share": est, "lo": lo, "hi": hi,
                     "theta_none": float(np.degrees(np.nanmean(o["theta"].double().numpy()))),
                     "theta": float(np.degrees(np.nanmean(r["theta"].double().numpy()))), "n": len(wo)})
    return pd.DataFrame(rows)


def _paired_ratios(frames: dict, model: str, surgery: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ε*_surgery / ε*_original per image, the original's confidence): +inf where only the surgered
    model never crossed, 1 where neither did, NaN where misclassified at the start."""
    from .claims import _ratio, _same_images, distance

    o, s = frames[(model, "none", kind)], frames[(model, surgery, kind)]
    _same_images({"none": o, surgery: s})
    return _ratio(distance(s), distance(o)), o["confidence"].to_numpy(float)


def eps_ratios(frames: dict, families: dict | None = None, edges=None, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> pd.DataFrame:
    """Median paired ratio ε*_surgery / ε*_original per family, surgery and direction kind, over all
    images and within the boundary chapter's confidence bands (the original's confidence at x).

    ``frames``: (model, surgery, kind) → :func:`travel_experiment` frame, every model with surgery "none"
    and all on the same images. The median pools the family's models (as the boundary chapter does);
    the interval resamples images, the same resample for every model. One tidy row per (family,
    surgery, kind, band): ``median``, ``lo``, ``hi``, ``n_pairs``, ``verdict`` (below 1: the surgery
    shortens the travel)."""
    from .claims import BANDS, _band_label, _family_of, _in_band, _pooled_median
    from .stats import bootstrap, verdict

    edges = BANDS if edges is None else edges
    names = list(dict.fromkeys(m for m, _, _ in frames))
    families = _family_of(names, families)
    combos = sorted({(s, k) for _, s, k in frames if s != "none"}, key=lambda sk: (SURGERIES.index(sk[0]), sk[1]))
    bands = [("all", None, None)] + [(_band_label(a, b), a, b) for a, b in zip(edges[:-1], edges[1:])]
    rows = []
    for fam in dict.fromkeys(families[m] for m in names):
        for surgery, kind in combos:
            ms = [m for m in names if families[m] == fam and (m, surgery, kind) in frames]
            if not ms:
                continue
            pairs = [_paired_ratios(frames, m, surgery, kind) for m in ms]
            n = len(pairs[0][0])
            for label, a, b in bands:
                vals = [np.where(np.ones_like(c, bool) if a is None else _in_band(c, a, b), r, np.nan)
                        for r, c in pairs]
                est, lo, hi = bootstrap(_pooled_median(vals), n, n_boot=n_boot, level=level, seed=seed)
                rows.append({"family": fam, "surgery": surgery, "kind": kind, "band": label, "models": ", ".join(ms),
                             "median": est, "lo": lo, "hi": hi, "n_pairs": int(sum((~np.isnan(v)).sum() for v in vals)),
                             "verdict": verdict(lo, hi, 1.0, "<")})
    return pd.DataFrame(rows)


def turning_table(turning: dict, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per model: does more turning before the boundary go with a longer travel, or with lower confidence?

    ``turning``: model → :func:`turning_experiment` frame. Crossed images only: ``turning_median``
    (radians accumulated up to ε*), Spearman ρ of turning with ε* (``rho_eps``, ``lo_eps``, ``hi_eps``),
    with the confidence at x (``rho_conf`` …) and with the mean rate turning/ε* (``rho_rate`` …: a longer
    path accumulates more turning at a constant ω; the rate asks whether it also bends faster),
    intervals over images; ``n`` images."""
    from .claims import spearman
    from .stats import bootstrap

    rows = []
    for model, df in turning.items():
        ok = df[(df.status == "crossed") & df.turning.notna()]
        t, e, c = (ok[k].to_numpy(float) for k in ("turning", "eps", "confidence"))
        row = {"model": model, "n": len(ok), "turning_median": float(np.median(t)) if len(t) else np.nan,
               "eps_median": float(np.median(e)) if len(e) else np.nan}
        for key, v in (("eps", e), ("conf", c), ("rate", t / e)):
            est, lo, hi = bootstrap(spearman(t, v), len(t), n_boot=n_boot, level=level, seed=seed) if len(t) > 2 \
                else (np.nan,) * 3
            row.update({f"rho_{key}": est, f"lo_{key}": lo, f"hi_{key}": hi})
        rows.append(row)
    return pd.DataFrame(rows)


def paired_ratio(num: pd.DataFrame, den: pd.DataFrame, n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> dict:
    """Median over images of ε*(num) / ε*(den) for two travel frames on the same images (e.g. a
    component-swap variant over its parent), with its bootstrap interval: ``median``, ``lo``, ``hi``,
    ``n`` (images with a defined ratio)."""
    from .claims import _pooled_median, _ratio, _same_images, distance
    from .stats import bootstrap

    _same_images({"num": num, "den": den})
    r = _ratio(distance(num), distance(den))
    est, lo, hi = bootstrap(_pooled_median([r]), len(r), n_boot=n_boot, level=level, seed=seed)
    return {"median": est, "lo": lo, "hi": hi, "n": int((~np.isnan(r)).sum())}


# ---------------------------------------------------------------------------------------------
# The ledger's rows

#: Confidence at or below which the "low confidence" row compares travel (the boundary chapter's threshold).
LOW_CONFIDENCE = 0.9


def claim_rows(paths: dict, frames: dict, families: dict | None = None, n_boot: int = 1000, level: float = 0.95,
               seed: int = 0) -> list[dict]:
    """The ledger's surgery rows (:data:`curvlib.claims.CLAIMS` "surgery (…)"), from the chapter's results.

    ``paths``: (model, surgery) → :func:`path_experiment` (the Transformers, "none" and "attention");
    ``frames``: (model, surgery, "fgsm") → :func:`travel_experiment` ("none" and "all" for every model).
    Rows: the share of the Transformers' ω that linearising attention removes (holds above ½: attention
    carries most of the bend); the Transformers' median ε*_all / ε*_none, overall and at confidence ≤
    :data:`LOW_CONFIDENCE` (holds below 1: taking the bend out shortens the travel); the control, that
    ratio for the Transformers over the CNNs' (holds below 1: the surgery matters more for them)."""
    from .claims import _families, _family_of, _in_band, _pooled_median, _row
    from .stats import bootstrap, verdict

    kw = {"n_boot": n_boot, "level": level, "seed": seed}
    names = list(dict.fromkeys(m for m, _, _ in frames))
    families = _family_of(names, families)
    fams = _families(names, families)
    rows = []
    # 1. what bends: the share of ω removed by linearising attention, pooled over the Transformers
    tr = [m for m in fams["Transformer"] if (m, "attention") in paths and (m, "none") in paths]
    wo = np.stack([_per_image_mean(paths[(m, "none")]["omega"]) for m in tr], 1) if tr else np.zeros((0, 1))
    ws = np.stack([_per_image_mean(paths[(m, "attention")]["omega"]) for m in tr], 1) if tr else np.zeros((0, 1))

    def share(i):
        den = wo[i].mean((1, 2))
        with np.errstate(all="ignore"):
            return np.where(den > 0, 1 - ws[i].mean((1, 2)) / den, np.nan)

    est, lo, hi = bootstrap(share, len(wo), **kw)
    rows.append(_row("surgery (what bends)", f"share of the Transformers' mean ω removed by linearising attention "
                     f"({', '.join(tr)}; FGSM, anchor = the image)", est, lo, hi, verdict(lo, hi, 0.5, ">"),
                     "holds if the interval lies above ½ (attention carries most of the bend), opposite if below ½; "
                     "paired over images", n=len(wo)))
    # 2.–4. does the bend buy distance
    n = len(frames[(names[0], "none", "fgsm")])
    pairs = {m: _paired_ratios(frames, m, "all", "fgsm") for m in names if (m, "all", "fgsm") in frames}
    stat = {}
    for fam, ms in fams.items():
        stat[fam] = _pooled_median([pairs[m][0] for m in ms if m in pairs])
        stat[fam + " low"] = _pooled_median([np.where(_in_band(pairs[m][1], 0.0, LOW_CONFIDENCE), pairs[m][0], np.nan)
                                             for m in ms if m in pairs])
    rule = "holds if the interval lies below 1 (the surgered model's boundary is nearer); paired over images"
    for claim, key, what in (("surgery (distance)", "Transformer", "all images"),
                             ("surgery (low confidence)", "Transformer low", f"confidence ≤ {LOW_CONFIDENCE:g}")):
        est, lo, hi = bootstrap(stat[key], n, **kw)
        rows.append(_row(claim, f"median ε*(all linearised) / ε*(original), Transformers, FGSM, {what}", est, lo, hi,
                         verdict(lo, hi, 1.0, "<"), rule, n=n))

    def control(i):
        with np.errstate(all="ignore"):
            return stat["Transformer"](i) / stat["CNN"](i)

    est, lo, hi = bootstrap(control, n, **kw)
    cnn = float(stat["CNN"](np.arange(n)[None])[0])
    rows.append(_row("surgery (control)", "median ratio ε*(all)/ε*(original): Transformers over CNNs, FGSM", est, lo,
                     hi, verdict(lo, hi, 1.0, "<"),
                     "holds if the interval lies below 1 (the surgery shortens the Transformers' travel more than the "
                     "CNNs'); paired over images", n=n,
                     note=f"The CNNs' own median ratio is {cnn:.3g}: for a ReLU network 'all' keeps every unit's gate "
                          "from the image, so its path is straight as long as no unit switches."))
    return rows


def ledger_rows(profile, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """:func:`claim_rows` for the profile's models, from the cached experiments (computed on a miss)."""
    from . import models
    from .config import require

    profile = require(profile)
    names = list(profile.models)
    paths = {(m, s): path_experiment(m, s, profile) for m in names if models.family(m) == "Transformer"
             for s in ("none", "attention")}
    frames = {(m, s, "fgsm"): travel_experiment(m, s, "fgsm", profile) for m in names for s in ("none", "all")}
    return claim_rows(paths, frames, n_boot=n_boot, seed=seed)
