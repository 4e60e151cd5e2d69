r"""Why attention curves: self-attention is not additive (the paper's eq. 8–13).

A convolution (or any linear map) is additive, Conv(X + P) = Conv(X) + Conv(P). The attention score

.. math:: A(X) = X W_q W_k^\top X^\top

is quadratic in its input, so a perturbation P of the tokens X adds a cross term:

.. math:: A(X + P) = A(X) + A(P) + \underbrace{X W_q W_k^\top P^\top + P W_q W_k^\top X^\top}_{R(X, P)}.

With biases (q = X W_q + b_q) the same cross term is what remains of
A(X+P) − A(X) − A(P) + A(0). R is *linear* in P: it is not the curvature of the scores along a line.
Along X + tP, A(X + tP) = A(X) + t·R + t²·A(P), so the second derivative in t is 2·A(P) and the
midpoint bend of the segment X → X + tP is t²·A(P)/2 (:func:`score_line`). "Not additive" (R ≠ 0)
and "not affine" (curved) are different properties: a convolution with a bias is not additive,
Conv(X+P) ≠ Conv(X) + Conv(P), yet affine.

Every component of a network is measured on the input it really receives (:func:`layer_inputs`):
on a copy of the model with in-place operations switched off (:func:`without_inplace`), inputs
cloned when captured and keyword inputs (Swin's shifted-window ``mask``) captured with them.

All functions here are batched over leading dimensions, run on the inputs' device and track no
gradients. Token tensors are ``[..., T, D]`` (T tokens of width D).
"""
from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    import pandas as pd


def _check_tokens(X: torch.Tensor, P: torch.Tensor) -> None:
    for name, t in (("X", X), ("P", P)):
        if not isinstance(t, torch.Tensor) or t.ndim < 2:
            raise ValueError(f"{name} must be a tensor [..., T, D], got {getattr(t, 'shape', type(t).__name__)}")
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf")
    if X.shape != P.shape:
        raise ValueError(f"X and P must have the same shape, got {tuple(X.shape)} and {tuple(P.shape)}")


@torch.no_grad()
def score_residual(X: torch.Tensor, P: torch.Tensor, Wq: torch.Tensor, Wk: torch.Tensor) -> dict:
    """A(X), A(P), the cross term R and A(X+P) for A(Z) = Z W_q W_kᵀ Zᵀ.

    Shapes: X, P ``[..., T, D]``; Wq, Wk ``[D, D_k]``. Returns a dict of ``[..., T, T]`` tensors
    ``A_X``, ``A_P``, ``R``, ``A_XP`` with ``A_XP == A_X + A_P + R`` up to float rounding.
    """
    _check_tokens(X, P)
    if Wq.ndim != 2 or Wk.ndim != 2 or Wq.shape != Wk.shape or Wq.shape[0] != X.shape[-1]:
        raise ValueError(f"Wq and Wk must both be [D={X.shape[-1]}, D_k], got {tuple(Wq.shape)} and {tuple(Wk.shape)}")
    M = Wq @ Wk.T  # [D, D]

    def A(Z1, Z2):
        return Z1 @ M @ Z2.transpose(-1, -2)

    return {"A_X": A(X, X), "A_P": A(P, P), "R": A(X, P) + A(P, X), "A_XP": A(X + P, X + P)}


def is_attention(block: nn.Module) -> bool:
    return hasattr(block, "qkv") and hasattr(block, "num_heads") and hasattr(block, "proj")


@torch.no_grad()
def attention_parts(block: nn.Module, X: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Re-implementation of a timm ``Attention`` (ViT) or ``WindowAttention`` (Swin) forward.

    X: ``[B, T, D]``. Returns ``q``, ``k``, ``v`` ``[B, H, T, d]``, ``scores`` ``[B, H, T, T]``
    (q·kᵀ·scale plus Swin's relative-position bias and mask), ``weights`` (softmax of the scores)
    and ``out`` ``[B, T, D]`` — equal to ``block(X)`` in eval mode.
    """
    if not is_attention(block):
        raise TypeError(f"expected a timm attention module with qkv/num_heads/proj, got {type(block).__name__}")
    if X.ndim != 3 or X.shape[-1] != block.qkv.in_features:
        raise ValueError(f"X must be [B, T, {block.qkv.in_features}], got {tuple(X.shape)}")
    B, T, _ = X.shape
    H = block.num_heads
    qkv = block.qkv(X).reshape(B, T, 3, H, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q = getattr(block, "q_norm", nn.Identity())(q)
    k = getattr(block, "k_norm", nn.Identity())(k)
    scores = (q * block.scale) @ k.transpose(-2, -1)
    if hasattr(block, "relative_position_bias_table"):
        scores = scores + block._get_rel_pos_bias()
    if mask is not None:
        nw = mask.shape[0]
        scores = (scores.view(-1, nw, H, T, T) + mask.unsqueeze(1).unsqueeze(0)).view(-1, H, T, T)
    weights = scores.softmax(-1)
    out = (weights @ v).transpose(1, 2).reshape(B, T, -1)
    out = getattr(block, "norm", nn.Identity())(out)
    return {"q": q, "k": k, "v": v, "scores": scores, "weights": weights, "out": block.proj(out)}


@torch.no_grad()
def attention_response(block: nn.Module, X: torch.Tensor, P: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """How a timm attention module's scores respond to a token perturbation P (``mask``: Swin's
    shifted-window mask, as the module receives it; a constant, so it cancels in R).

    Returns per-head score tensors ``A_X``, ``A_P``, ``A_XP``, ``A_0`` (biases included), the
    residual ``R = A(X+P) − A(X) − A(P) + A(0)`` and the explicit cross term
    ``cross = (X W_q)(P W_k)ᵀ·s + (P W_q)(X W_k)ᵀ·s`` (equal to R), ``share = ‖R‖ / ‖A(X+P) − A(X)‖``
    per sample ``[B]``, and the output change ``out_XP − out_X``.
    """
    _check_tokens(X, P)
    parts = {name: attention_parts(block, Z, mask) for name, Z in
             (("X", X), ("P", P), ("XP", X + P), ("0", torch.zeros_like(X)))}
    # the cross term, per head, from the bias-free projections
    H = block.num_heads
    W = block.qkv.weight  # [3·D_attn, D]
    Wq, Wk = W[: W.shape[0] // 3], W[W.shape[0] // 3: 2 * W.shape[0] // 3]

    def heads(Z, Wm):
        return (Z @ Wm.T).reshape(*Z.shape[:-1], H, -1).transpose(-3, -2)

    cross = (heads(X, Wq) @ heads(P, Wk).transpose(-2, -1)
             + heads(P, Wq) @ heads(X, Wk).transpose(-2, -1)) * block.scale
    A = {k: v["scores"] for k, v in parts.items()}
    R = A["XP"] - A["X"] - A["P"] + A["0"]
    change = (A["XP"] - A["X"]).flatten(1).norm(dim=1)
    return {"A_X": A["X"], "A_P": A["P"], "A_XP": A["XP"], "A_0": A["0"], "R": R, "cross": cross,
            "share": R.flatten(1).norm(dim=1) / change.clamp_min(1e-30),
            "out_change": parts["XP"]["out"] - parts["X"]["out"]}


@torch.no_grad()
def score_line(block: nn.Module, X: torch.Tensor, P: torch.Tensor, ts=(1e-3, 1e-2, 1e-1, 1.0),
               mask: torch.Tensor | None = None) -> "pd.DataFrame":
    r"""The attention scores along the line X + tP, split into the parts of order 1 and 2 in t.

    With q = Z W_q + b_q, k = Z W_k + b_k and S(Z) = q kᵀ·s (+ constant biases and ``mask``), the
    scores on the line are exactly quadratic in t:

    .. math:: S(X + tP) = S(X) + t\,R + t^2\,Q, \quad R = q(X)(PW_k)^\top s + (PW_q)k(X)^\top s,
              \quad Q = (PW_q)(PW_k)^\top s = A(P)\,s .

    R (the linear coefficient, the paper's cross term plus the bias terms) sets the *direction* of
    the score path; only Q bends it: the midpoint second difference S(X+tP) − 2S(X+tP/2) + S(X)
    equals t²Q/2. Computed in float64 on a copy of ``block`` (a timm ``Attention`` or
    ``WindowAttention`` without q/k normalisation); X, P ``[B, T, D]``.

    Returns a tidy frame, one row per sample (Swin: window) and t: ``sample``, ``t``, ``change``
    ‖S(X+tP) − S(X)‖, ``linear`` ‖tR‖, ``quadratic`` ‖t²Q‖, ``bend`` the measured
    ‖S(X+tP) − 2S(X+tP/2) + S(X)‖, ``bend_predicted`` ‖t²Q‖/2, ``linear_share`` = linear / change
    (→ 1 as t → 0), ``rel_bend`` = bend / change (→ 0 as t → 0) and ``identity_err``
    ‖S(X+tP) − S(X) − tR − t²Q‖ / ‖S(X+tP) − S(X)‖ (float64 rounding).
    """
    import pandas as pd

    _check_tokens(X, P)
    if not is_attention(block):
        raise TypeError(f"expected a timm attention module with qkv/num_heads/proj, got {type(block).__name__}")
    for norm in ("q_norm", "k_norm"):
        if not isinstance(getattr(block, norm, nn.Identity()), nn.Identity):
            raise ValueError(f"score_line needs linear queries and keys; this block has a {norm}")
    ts = np.asarray(ts, dtype=float).ravel()
    if ts.size == 0 or not np.isfinite(ts).all() or (ts <= 0).any():
        raise ValueError(f"ts must be positive finite numbers, got {ts}")
    blk = copy.deepcopy(block).double()
    X, P = X.double(), P.double()
    mask = None if mask is None else mask.double()
    H, n = blk.num_heads, blk.qkv.out_features // 3
    W = blk.qkv.weight
    b = blk.qkv.bias if blk.qkv.bias is not None else torch.zeros(3 * n, dtype=W.dtype, device=W.device)

    def heads(Z, i, bias=True):  # [B, T, D] → [B, H, T, d] projection i (0: q, 1: k)
        out = Z @ W[i * n:(i + 1) * n].T + (b[i * n:(i + 1) * n] if bias else 0)
        return out.reshape(*Z.shape[:-1], H, -1).transpose(-3, -2)

    qX, kX, qP, kP = heads(X, 0), heads(X, 1), heads(P, 0, False), heads(P, 1, False)
    R = (qX @ kP.transpose(-2, -1) + qP @ kX.transpose(-2, -1)) * blk.scale
    Q = qP @ kP.transpose(-2, -1) * blk.scale

    def S(Z):
        return attention_parts(blk, Z, mask)["scores"]

    def norm(Z):
        return Z.flatten(1).norm(dim=1)

    S0 = S(X)
    rows = []
    for t in ts:
        St, Sh = S(X + t * P), S(X + t * P / 2)
        change = norm(St - S0).clamp_min(1e-300)
        cols = {"change": change, "linear": norm(t * R), "quadratic": norm(t * t * Q),
                "bend": norm(St - 2 * Sh + S0), "bend_predicted": norm(t * t * Q) / 2}
        cols["linear_share"] = cols["linear"] / change
        cols["rel_bend"] = cols["bend"] / change
        cols["identity_err"] = norm(St - S0 - t * R - t * t * Q) / change
        rows.append(pd.DataFrame({"sample": np.arange(len(X)), "t": t,
                                  **{k: v.cpu().numpy() for k, v in cols.items()}}))
    return pd.concat(rows, ignore_index=True)


def _fresh(module, Z: torch.Tensor) -> torch.Tensor:
    """``module(Z)`` on a copy of Z: an in-place module (ReLU(inplace=True)) must not overwrite the
    caller's tensor, and its result must not alias it."""
    return module(Z.clone())


@torch.no_grad()
def additivity_defect(module, X: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """‖m(X+P) − m(X) − m(P) + m(0)‖ / ‖m(X+P) − m(X)‖ per sample [B] (0 for an affine map).

    ``module`` is any callable on batches (an nn.Module, ``torch.softmax``-like lambda…); X and P
    share a shape ``[B, ...]``. Every evaluation gets its own copy of its input, so in-place
    modules leave X and P as they were.
    """
    if X.shape != P.shape:
        raise ValueError(f"X and P must have the same shape, got {tuple(X.shape)} and {tuple(P.shape)}")
    if X.ndim < 1 or len(X) == 0:
        raise ValueError("X must be a non-empty batch")
    f_xp, f_x, f_p, f_0 = (_fresh(module, Z) for Z in (X + P, X, P, torch.zeros_like(X)))
    num = (f_xp - f_x - f_p + f_0).flatten(1).norm(dim=1)
    den = (f_xp - f_x).flatten(1).norm(dim=1)
    return num / den.clamp_min(1e-30)


@torch.no_grad()
def midpoint_defect(module, X: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Bending along the segment X → X+P: ‖m(X+P) − 2·m(X+P/2) + m(X)‖ / ‖m(X+P) − m(X)‖ per
    sample [B]. 0 for an affine map; unlike :func:`additivity_defect` it never evaluates m far
    from the path (m(P), m(0)), so scale-invariant maps such as LayerNorm are judged on the path.
    Every evaluation gets its own copy of its input (in-place modules leave X and P alone)."""
    if X.shape != P.shape:
        raise ValueError(f"X and P must have the same shape, got {tuple(X.shape)} and {tuple(P.shape)}")
    if X.ndim < 1 or len(X) == 0:
        raise ValueError("X must be a non-empty batch")
    f_xp, f_mid, f_x = (_fresh(module, Z) for Z in (X + P, X + P / 2, X))
    return (f_xp - 2 * f_mid + f_x).flatten(1).norm(dim=1) / (f_xp - f_x).flatten(1).norm(dim=1).clamp_min(1e-30)


#: Component kinds measured layer by layer, by module type name.
COMPONENTS = {"Conv2d": "conv", "Linear": "linear", "BatchNorm2d": "batchnorm", "BatchNorm1d": "batchnorm",
              "TokenBatchNorm": "batchnorm", "BatchNormAct2d": "batchnorm+relu",
              "LayerNorm": "layernorm", "LayerNorm2d": "layernorm",
              "GELU": "gelu", "ReLU": "relu", "ReLU6": "relu", "Attention": "attention",
              "WindowAttention": "attention", "Mlp": "mlp"}
#: Components that are affine in eval mode (their defect and bend are float rounding).
AFFINE = ("conv", "linear", "batchnorm")


def without_inplace(model: nn.Module) -> nn.Module:
    """``model`` itself if none of its modules works in place, else a deep copy with every
    ``inplace`` attribute (timm/torch activations, dropout) set to False.

    timm's CNNs run their activations in place (``ReLU(inplace=True)``, also inside
    ``BatchNormAct2d``): the tensor a forward pre-hook sees as an activation's input is overwritten
    by its output a moment later, and calling such a module on a tensor X overwrites X. Measure on
    the copy.
    """
    if not any(getattr(m, "inplace", False) is True for m in model.modules()):
        return model
    clone = copy.deepcopy(model)
    for m in clone.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    return clone


class Captured(NamedTuple):
    """What one module received: the module, its first positional input (a private copy) and its
    keyword inputs (tensors copied), e.g. Swin's ``{"mask": …}``."""

    module: nn.Module
    input: torch.Tensor
    kwargs: dict[str, Any]

    def call(self) -> Any:
        """The module as a function of its first input, with the captured keyword inputs."""
        return functools.partial(self.module, **self.kwargs) if self.kwargs else self.module


def _copy(v):
    return v.detach().clone() if isinstance(v, torch.Tensor) else v


@torch.no_grad()
def layer_inputs(model, x: torch.Tensor, types=tuple(COMPONENTS)) -> dict[str, Captured]:
    """Inputs of every sub-module whose type name is in ``types`` for pixels ``x``:
    {qualified name: :class:`Captured` (module, input, kwargs)} in forward order (first call of
    each module).

    The forward runs on :func:`without_inplace` ``(model)`` — the returned modules belong to that
    copy, so evaluating them later leaves their inputs intact — and every input is cloned when
    captured, so no later in-place operation of the forward can change it."""
    net = without_inplace(model)
    captured: dict[str, Captured] = {}
    hooks = []
    for name, mod in net.named_modules():
        if type(mod).__name__ in types:
            def hook(m, args, kwargs, name=name):
                if name not in captured and args and isinstance(args[0], torch.Tensor):
                    captured[name] = Captured(m, _copy(args[0]), {k: _copy(v) for k, v in kwargs.items()})
            hooks.append(mod.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        net(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


@torch.no_grad()
def layer_defects(model, x: torch.Tensor, d: torch.Tensor, eps: float, per_sample: bool = False) -> "pd.DataFrame":
    """Additivity defect of every component for the input perturbation x → clip(x + eps·d).

    Each module is fed the input it receives for x (as X) and the change of that input caused by
    the perturbation (as P), with its keyword inputs (Swin's mask), on a copy of the model without
    in-place operations (:func:`layer_inputs`). Attention modules additionally report their
    softmax and score defects. Returns a tidy frame: ``layer``, ``component``, ``depth`` (forward
    order), ``defect`` (median additivity defect over samples), ``bend`` (median
    :func:`midpoint_defect`), ``p_norm`` (median ‖P‖ relative to ‖X‖), medians over samples (Swin's
    window attention: over samples × windows). ``per_sample=True``: the unreduced values instead,
    one row per sample (or window) and component (column ``sample``: position in x);
    :func:`summarise_defects` reduces them.
    """
    import pandas as pd

    net = without_inplace(model)
    x1 = (x + eps * d).clamp(0, 1)
    a, b = layer_inputs(net, x), layer_inputs(net, x1)
    cols: dict[str, list] = {k: [] for k in ("sample", "layer", "component", "depth", "defect", "bend", "p_norm")}

    def add(name, component, depth, defect, bend, rel):
        rows = len(defect)  # one per image, or per window of each image (Swin: [B·windows, T, D], image-major)
        if rows % len(x):
            raise ValueError(f"{name}: {rows} rows cannot be split over {len(x)} images")
        cols["sample"] += np.repeat(np.arange(len(x)), rows // len(x)).tolist()
        for k, v in (("layer", name), ("component", component), ("depth", depth)):
            cols[k] += [v] * rows
        for k, v in (("defect", defect), ("bend", bend), ("p_norm", rel)):
            cols[k] += v.double().cpu().tolist()

    for depth, (name, cap) in enumerate(a.items()):
        mod, X = cap.module, cap.input
        P = b[name].input - X
        kind = COMPONENTS[type(mod).__name__]
        rel = P.flatten(1).norm(dim=1) / X.flatten(1).norm(dim=1).clamp_min(1e-30)
        if kind == "attention" and X.ndim == 3:
            mask = cap.kwargs.get("mask")
            resp = attention_response(mod, X, P, mask)
            scores = lambda Z, mod=mod, mask=mask: attention_parts(mod, Z, mask)["scores"]  # noqa: E731
            add(name, "attention scores", depth, resp["share"], midpoint_defect(scores, X, P), rel)
            A_X, dA = resp["A_X"], resp["A_XP"] - resp["A_X"]
            soft = lambda s: s.softmax(-1)  # noqa: E731
            add(name, "softmax", depth, additivity_defect(soft, A_X, dA), midpoint_defect(soft, A_X, dA), rel)
        if kind == "attention" and X.ndim != 3:
            continue
        f = cap.call()
        add(name, kind, depth, additivity_defect(f, X, P), midpoint_defect(f, X, P), rel)
    long = pd.DataFrame(cols)
    return long if per_sample else summarise_defects(long)


def summarise_defects(long: "pd.DataFrame") -> "pd.DataFrame":
    """Per-sample rows of :func:`layer_defects` → one row per component: the median over samples
    (the lower middle value for an even count, as ``torch.median``) of defect, bend and p_norm."""
    keys = ["layer", "component", "depth"]
    missing = set(keys + ["defect", "bend", "p_norm"]) - set(long.columns)
    keys += ["model"] if "model" in long.columns else []
    if missing:
        raise ValueError(f"not a per-sample layer_defects frame: no column(s) {', '.join(sorted(missing))}")
    lower = lambda v: float(np.quantile(v, 0.5, method="lower"))  # noqa: E731
    out = long.groupby(keys, sort=False)[["defect", "bend", "p_norm"]].agg(lower).reset_index()
    out = out[[c for c in ("layer", "component", "depth", "defect", "bend", "p_norm", "model") if c in out]]
    return out.sort_values("depth", kind="stable").reset_index(drop=True)


#: Components made of others (reported, but not ranked against their parts).
COMPOSITES = ("attention", "mlp", "batchnorm+relu")


def component_bends(layers: "pd.DataFrame") -> "pd.DataFrame":
    """Per model and component of :func:`layer_defects` frames with a ``model`` column (one row
    per layer): ``bend`` and ``defect`` (medians over the component's layers of the per-layer
    medians), ``bend_max`` (largest layer), ``n_layers``, and ``affine`` / ``composite`` flags
    (see :data:`AFFINE`, :data:`COMPOSITES`). One tidy row per (model, component), models in
    order of appearance, components by decreasing bend."""
    missing = {"model", "component", "bend", "defect"} - set(layers.columns)
    if missing:
        raise ValueError(f"not a layer_defects frame with a model column: no column(s) {', '.join(sorted(missing))}")
    g = layers.groupby(["model", "component"], sort=False)
    out = g.agg(bend=("bend", "median"), defect=("defect", "median"), bend_max=("bend", "max"),
                n_layers=("bend", "size")).reset_index()
    out["affine"] = out.component.isin(AFFINE)
    out["composite"] = out.component.isin(COMPOSITES)
    order = {m: i for i, m in enumerate(dict.fromkeys(layers.model))}
    out = out.assign(_m=out.model.map(order)).sort_values(["_m", "bend"], ascending=[True, False], kind="stable")
    return out.drop(columns="_m").reset_index(drop=True)


