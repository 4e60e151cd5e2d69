r"""Why attention curves: self-attention is not additive (the paper's eq. 8–13).

A convolution (or any linear map) is additive, Conv(X + P) = Conv(X) + Conv(P). The attention score

.. math:: A(X) = X W_q W_k^\top X^\top

is quadratic in its input, so a perturbation P of the tokens X adds a cross term:

.. math:: A(X + P) = A(X) + A(P) + \underbrace{X W_q W_k^\top P^\top + P W_q W_k^\top X^\top}_{R(X, P)}.

With biases (q = X W_q + b_q) the same cross term is what remains of
A(X+P) − A(X) − A(P) + A(0). All functions here are batched over leading dimensions, run on the
inputs' device and track no gradients. Token tensors are ``[..., T, D]`` (T tokens of width D).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from . import runner

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


def _is_attention(block: nn.Module) -> bool:
    return hasattr(block, "qkv") and hasattr(block, "num_heads") and hasattr(block, "proj")


@torch.no_grad()
def attention_parts(block: nn.Module, X: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Re-implementation of a timm ``Attention`` (ViT) or ``WindowAttention`` (Swin) forward.

    X: ``[B, T, D]``. Returns ``q``, ``k``, ``v`` ``[B, H, T, d]``, ``scores`` ``[B, H, T, T]``
    (q·kᵀ·scale plus Swin's relative-position bias and mask), ``weights`` (softmax of the scores)
    and ``out`` ``[B, T, D]`` — equal to ``block(X)`` in eval mode.
    """
    if not _is_attention(block):
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
def attention_response(block: nn.Module, X: torch.Tensor, P: torch.Tensor) -> dict:
    """How a timm attention module's scores respond to a token perturbation P.

    Returns per-head score tensors ``A_X``, ``A_P``, ``A_XP``, ``A_0`` (biases included), the
    residual ``R = A(X+P) − A(X) − A(P) + A(0)`` and the explicit cross term
    ``cross = (X W_q)(P W_k)ᵀ·s + (P W_q)(X W_k)ᵀ·s`` (equal to R), ``share = ‖R‖ / ‖A(X+P) − A(X)‖``
    per sample ``[B]``, and the output change ``out_XP − out_X``.
    """
    _check_tokens(X, P)
    parts = {name: attention_parts(block, Z) for name, Z in
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
def additivity_defect(module, X: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """‖m(X+P) − m(X) − m(P) + m(0)‖ / ‖m(X+P) − m(X)‖ per sample [B] (0 for an affine map).

    ``module`` is any callable on batches (an nn.Module, ``torch.softmax``-like lambda…); X and P
    share a shape ``[B, ...]``.
    """
    if X.shape != P.shape:
        raise ValueError(f"X and P must have the same shape, got {tuple(X.shape)} and {tuple(P.shape)}")
    if X.ndim < 1 or len(X) == 0:
        raise ValueError("X must be a non-empty batch")
    f_xp, f_x, f_p, f_0 = module(X + P), module(X), module(P), module(torch.zeros_like(X))
    num = (f_xp - f_x - f_p + f_0).flatten(1).norm(dim=1)
    den = (f_xp - f_x).flatten(1).norm(dim=1)
    return num / den.clamp_min(1e-30)


@torch.no_grad()
def midpoint_defect(module, X: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Bending along the segment X → X+P: ‖m(X+P) − 2·m(X+P/2) + m(X)‖ / ‖m(X+P) − m(X)‖ per
    sample [B]. 0 for an affine map; unlike :func:`additivity_defect` it never evaluates m far
    from the path (m(P), m(0)), so scale-invariant maps such as LayerNorm are judged on the path."""
    if X.shape != P.shape:
        raise ValueError(f"X and P must have the same shape, got {tuple(X.shape)} and {tuple(P.shape)}")
    if X.ndim < 1 or len(X) == 0:
        raise ValueError("X must be a non-empty batch")
    f_xp, f_mid, f_x = module(X + P), module(X + P / 2), module(X)
    return (f_xp - 2 * f_mid + f_x).flatten(1).norm(dim=1) / (f_xp - f_x).flatten(1).norm(dim=1).clamp_min(1e-30)


#: Component kinds measured layer by layer, by module type name.
COMPONENTS = {"Conv2d": "conv", "Linear": "linear", "BatchNorm2d": "batchnorm", "BatchNormAct2d": "batchnorm+relu",
              "LayerNorm": "layernorm",
              "GELU": "gelu", "ReLU": "relu", "ReLU6": "relu", "Attention": "attention",
              "WindowAttention": "attention", "Mlp": "mlp"}


@torch.no_grad()
def layer_inputs(model, x: torch.Tensor, types=tuple(COMPONENTS)) -> dict[str, tuple[nn.Module, torch.Tensor]]:
    """Inputs of every sub-module whose type name is in ``types`` for pixels ``x``:
    {qualified name: (module, input tensor)} in forward order (first call of each module)."""
    captured: dict[str, tuple[nn.Module, torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if type(mod).__name__ in types:
            def hook(m, inp, name=name):
                if name not in captured and inp and isinstance(inp[0], torch.Tensor):
                    captured[name] = (m, inp[0].detach())
            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return captured


@torch.no_grad()
def layer_defects(model, x: torch.Tensor, d: torch.Tensor, eps: float, per_sample: bool = False) -> "pd.DataFrame":
    """Additivity defect of every component for the input perturbation x → clip(x + eps·d).

    Each module is fed the input it receives for x (as X) and the change of that input caused by
    the perturbation (as P). Attention modules additionally report their softmax and score defects.
    Returns a tidy frame: ``layer``, ``component``, ``depth`` (forward order), ``defect`` (median
    additivity defect over samples), ``bend`` (median :func:`midpoint_defect`), ``p_norm``
    (median ‖P‖ relative to ‖X‖), medians over samples (Swin's window attention: over samples ×
    windows). ``per_sample=True``: the unreduced values instead, one row per sample (or window)
    and component (column ``sample``: position in x); :func:`summarise_defects` reduces them.
    """
    import pandas as pd

    x1 = (x + eps * d).clamp(0, 1)
    a, b = layer_inputs(model, x), layer_inputs(model, x1)
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

    for depth, (name, (mod, X)) in enumerate(a.items()):
        P = b[name][1] - X
        kind = COMPONENTS[type(mod).__name__]
        rel = P.flatten(1).norm(dim=1) / X.flatten(1).norm(dim=1).clamp_min(1e-30)
        if kind == "attention" and X.ndim == 3:
            resp = attention_response(mod, X, P)
            scores = lambda Z, mod=mod: attention_parts(mod, Z)["scores"]  # noqa: E731
            add(name, "attention scores", depth, resp["share"], midpoint_defect(scores, X, P), rel)
            A_X, dA = resp["A_X"], resp["A_XP"] - resp["A_X"]
            soft = lambda s: s.softmax(-1)  # noqa: E731
            add(name, "softmax", depth, additivity_defect(soft, A_X, dA), midpoint_defect(soft, A_X, dA), rel)
        if kind == "attention" and X.ndim != 3:
            continue
        add(name, kind, depth, additivity_defect(mod, X, P), midpoint_defect(mod, X, P), rel)
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


def attention_experiment(model_name: str, profile=None, eps: float = 0.02, n: int = 16,
                         refresh: bool = False) -> "pd.DataFrame":
    """Cached :func:`layer_defects` of one model on the profile's first ``n`` images (capped at
    ``n_travel``), each moved along its FGSM direction by ``eps``."""
    return runner.run("attention", model_name, profile, refresh=refresh, eps=eps,
                      n=min(n, profile.n_travel) if profile is not None else n)


def _attention_part(model, profile, shard, context, *, n, eps) -> "pd.DataFrame":
    from . import data
    from .direction import direction

    x, y = data.test_set(profile, n=n, model_name=model.name if profile.dataset == "imagenet" else None, shard=shard)
    index = data.shard_index(data.n_available(profile, n), shard)
    d = direction(model, x, y, "fgsm")
    long = layer_defects(model, x.to(profile.device), d.to(profile.device), eps, per_sample=True)
    return long.assign(sample=index.numpy()[long["sample"].to_numpy()], model=model.name)


def _attention_merge(parts: list, params: dict) -> "pd.DataFrame":
    import pandas as pd

    return summarise_defects(pd.concat(parts, ignore_index=True))


runner.experiment("attention", defaults=lambda p: {"n": min(16, p.n_travel), "eps": 0.02}, merge=_attention_merge,
                  code=("attention",), summary=lambda df: f"{df.layer.nunique()} modules")(_attention_part)
