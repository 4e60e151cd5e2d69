"""Step-free curvature along a path: κ and the turning rate ω from forward-mode derivatives, overall
and per block."""
from __future__ import annotations

import contextlib
import types
import weakref

import torch
from tqdm.auto import tqdm

from ..inference import call, model_device
from . import jet
from .probe import checked_lines


def unfused(model):
    """Context: timm's fused attention off (forward-mode AD has no rule for the fused kernel)."""
    import contextlib

    @contextlib.contextmanager
    def ctx():
        mods = [m for m in model.modules() if getattr(m, "fused_attn", None) is True]
        for m in mods:
            m.fused_attn = False
        try:
            yield
        finally:
            for m in mods:
                m.fused_attn = True
    return ctx()


def _layer_norm_primitive(mod, x: torch.Tensor) -> torch.Tensor:
    """LayerNorm (timm's LayerNorm2d: over channels) from primitive ops, value-identical to ``F.layer_norm`` up
    to rounding. Nested forward-mode AD of ``F.layer_norm`` itself returns a wrong second derivative (seen on
    PyTorch 2.14: off by tens of percent on a random input; ``tests/test_jet.py``)."""
    channels = type(mod).__name__ == "LayerNorm2d"
    if channels:
        x = x.permute(0, 2, 3, 1)
    dims = tuple(range(-len(mod.normalized_shape), 0))
    c = x - x.mean(dims, keepdim=True)
    y = c / (c.pow(2).mean(dims, keepdim=True) + mod.eps).sqrt()
    if mod.weight is not None:
        y = y * mod.weight
    if mod.bias is not None:
        y = y + mod.bias
    return y.permute(0, 3, 1, 2) if channels else y


@contextlib.contextmanager
def primitive_norms(model):
    """Context: every LayerNorm / LayerNorm2d of ``model`` computed by :func:`_layer_norm_primitive`, so that
    nested forward-mode AD differentiates it twice correctly."""
    mods = [m for m in model.modules()
            if type(m).__name__ in ("LayerNorm", "LayerNorm2d") and "forward" not in m.__dict__]
    for m in mods:
        m.forward = types.MethodType(_layer_norm_primitive, m)
    try:
        yield
    finally:
        for m in mods:
            m.__dict__.pop("forward", None)


def residual_blocks(model) -> list[tuple[str, torch.nn.Module]]:
    """The residual blocks of a timm network in forward order (ResNet stages' blocks, MobileNetV2 /
    ViT ``blocks``, Swin stages' blocks), for per-layer attribution."""
    net = getattr(model, "net", model)
    out = []
    for name, mod in net.named_modules():
        parts = name.split(".")
        if (len(parts) == 2 and parts[0] in ("layer1", "layer2", "layer3", "layer4")) or \
                (len(parts) == 2 and parts[0] == "blocks") or \
                (len(parts) == 3 and parts[0] == "blocks" and parts[1].isdigit() and parts[2].isdigit()) or \
                (len(parts) == 4 and parts[0] == "layers" and parts[2] == "blocks"):
            out.append((name, mod))
    # MobileNetV2 nests blocks two deep (blocks.<stage>.<i>): keep the innermost level only
    names = [n for n, _ in out]
    return [(n, m) for n, m in out if not any(o.startswith(n + ".") for o in names)]


def _turning(f1: torch.Tensor, f2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(κ, ω, speed) from first and second derivatives [P, F]: κ = ‖(I − uuᵀ) f''‖ / ‖f'‖², ω = κ‖f'‖."""
    f1, f2 = f1.detach().flatten(1).double(), f2.detach().flatten(1).double()
    speed = f1.norm(dim=1)
    u = f1 / speed.clamp_min(1e-30)[:, None]
    normal = (f2 - (f2 * u).sum(1, keepdim=True) * u).norm(dim=1)
    kappa = normal / speed.clamp_min(1e-30) ** 2
    bad = speed <= 1e-30
    return (kappa.masked_fill(bad, float("nan")), (normal / speed.clamp_min(1e-30)).masked_fill(bad, float("nan")),
            speed)


def _nested(g, e: torch.Tensor):
    """(g′(e), g″(e)) by nested forward-mode AD, for g of a per-point ε [P] (outputs a tensor or a tuple)."""
    from torch.func import jvp

    ones = torch.ones_like(e)
    return jvp(lambda t: jvp(g, (t,), (ones,))[1], (e,), (ones,))


_AGREES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def jet_agrees(model, x: torch.Tensor, d: torch.Tensor, eps: torch.Tensor, rtol: float = 1e-3,
               index: torch.Tensor | None = None) -> bool:
    """Whether the jet (:mod:`curvlib.measure.jet`) agrees with nested forward-mode AD on ``model``: f' and f''
    at the first point of x [N, C, H, W], d, eps [N], relative to their norms, within ``rtol`` (``index`` [N]:
    the points' anchors, for a linearised model). Checked once per model object (and device, weights) and
    remembered; a module the jet cannot see (a non-linearity in forward code) makes it disagree."""
    key = (str(x.device), getattr(model, "fingerprint", None))
    seen = _AGREES.setdefault(model, {})
    if key not in seen:
        x, d, e = x[:1], d[:1], eps[:1]
        i = None if index is None else torch.as_tensor(index)[:1]
        _, f1, f2 = jet.jet_features(model, x, d, e, index=i)[0]

        def g(t):
            return call(model, (x + t.view(-1, 1, 1, 1) * d).clamp(0, 1), i, features=True)

        with unfused(model), primitive_norms(model):
            r1, r2 = _nested(g, e)
        seen[key] = all(bool(torch.linalg.vector_norm((a - b).double()) <= rtol * torch.linalg.vector_norm(b.double())
                             + 1e-6) for a, b in ((f1, r1), (f2, r2)))
    return seen[key]


#: How :func:`curvature` differentiates: "jet" (:mod:`curvlib.measure.jet`, three streams in one pass),
#: "jvp" (nested ``torch.func.jvp``, the reference) or "auto" (the jet where it covers the model and agrees
#: with nested AD on the first point, else nested AD).
METHODS = ("auto", "jet", "jvp")


def curvature(model, x: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 250, blocks: bool = False,
              progress: bool = False, method: str = "auto") -> dict:
    r"""Step-free curvature of the feature path f(ε) = features(clip(x + ε d)).

    With f' and f'' the first and second directional derivatives along d (the jet of :mod:`.jet`, or nested
    forward-mode AD, ``torch.func.jvp``; ``method``) and u = f'/‖f'‖,

    .. math:: \kappa(\varepsilon) = \frac{\lVert (I - uu^\top) f''(\varepsilon)\rVert}{\lVert f'(\varepsilon)\rVert^2},
              \qquad \omega = \kappa \lVert f'\rVert \;\text{(radians per unit } \varepsilon\text{)}.

    κ is in 1/feature units; ω, the rate at which the direction of motion turns, is comparable across
    models and is what θ/Δε tends to for a smooth path. A ReLU network is piecewise linear, so f'' = 0
    almost everywhere: its bends are kinks, counted by :func:`kinks`. x [N, C, H, W] in [0, 1], d [N, …]
    or [M, N, …], eps [E]. Returns ``kappa``, ``omega``, ``speed`` [(M,) N, E] and, with ``blocks``,
    ``block_omega`` [B, (M,) N, E] for the residual blocks named in ``block_names``. ``method``: how f' and
    f'' are computed (:data:`METHODS`; the same numbers up to float rounding, the jet several times faster).
    """

    dd, e, multi = checked_lines(x, d, eps)
    M, N, E = dd.shape[0], x.shape[0], e.numel()
    dev = model_device(model)
    P = M * N * E  # points, direction-major, then image, then ε
    named = residual_blocks(model) if blocks else []
    out = {k: [] for k in ("kappa", "omega", "speed")}
    block_omega = [[] for _ in named]
    was = getattr(model, "check_inputs", None)
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    with unfused(model), primitive_norms(model):
        if was is not None:
            model.check_inputs = False  # dual tensors: the range check would read their primal anyway
        try:
            use_jet = method == "jet" or (method == "auto" and jet.supports(model) and P > 0 and jet_agrees(
                model, x[:1].to(dev), dd[0, :1].to(dev), e[:1].to(dev), index=torch.zeros(1, dtype=torch.long)))
            step = max(1, batch_size // 3) if use_jet else batch_size  # the jet's passes carry 3 rows per point
            for i in tqdm(range(0, P, step), desc="curvature", disable=not progress, leave=False):
                idx = torch.arange(i, min(i + step, P))
                m, n, k = idx // (N * E), (idx // E) % N, idx % E
                xb, db, eb, nb = x[n].to(dev), dd[m, n].to(dev), e[k].to(dev), n.to(dev)

                def g(t, xb=xb, db=db, nb=nb):
                    captured = []
                    hooks = [m.register_forward_hook(lambda _m, _i, o: captured.append(o)) for _, m in named]
                    try:
                        f = call(model, (xb + t.view(-1, 1, 1, 1) * db).clamp(0, 1), nb, features=True)
                    finally:
                        for h in hooks:
                            h.remove()
                    return (f, *captured)

                if use_jet:
                    streams = jet.jet_features(model, xb, db, eb, [mod for _, mod in named], index=nb)
                    f1, f2 = zip(*[t[1:] for t in streams])
                else:
                    f1, f2 = _nested(g, eb)
                k, w, sp = _turning(f1[0], f2[0])
                out["kappa"].append(k.cpu())
                out["omega"].append(w.cpu())
                out["speed"].append(sp.cpu())
                for j in range(len(named)):
                    block_omega[j].append(_turning(f1[j + 1], f2[j + 1])[1].cpu())
        finally:
            if was is not None:
                model.check_inputs = was
    shape = (M, N, E) if multi else (N, E)
    res = {k: torch.cat(v).view(shape).float() for k, v in out.items()}
    if blocks:
        res["block_omega"] = torch.stack([torch.cat(b).view(shape) for b in block_omega]).float()
        res["block_names"] = [n for n, _ in named]
    return res
