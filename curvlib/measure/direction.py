r"""Directions in input space, each normalised to ‖d‖₂ = √D per sample (D = C·H·W).

With that norm, moving by ε changes each pixel by ε on average (exactly ε for a sign direction),
so ε is in pixel units on the [0, 1] scale — the paper's convention:

.. math:: x(\varepsilon) = \mathrm{clip}_{[0,1]}(x + \varepsilon d), \qquad \lVert d \rVert_2 = \sqrt{D}.

Kinds: ``fgsm`` (sign of ∇ₓ CE(f(x), y)), ``random`` (Gaussian; per sample, or one shared by all
with ``shared=True``), ``random_sign`` (±1), ``perp`` (Gaussian made orthogonal to ``reference``)
and ``target`` (towards ``target`` images).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import check_pixels

KINDS = ("fgsm", "random", "random_sign", "perp", "target")


def normalize(d: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each sample of ``d`` [N, ...] to L2 norm √D; a zero direction is an error."""
    if not isinstance(d, torch.Tensor):
        raise TypeError(f"directions must be a torch.Tensor, got {type(d).__name__}")
    if not d.is_floating_point():
        raise TypeError(f"directions must be floating point, got dtype {d.dtype}")
    if d.ndim < 1 or len(d) == 0 or d[0].numel() == 0:
        raise ValueError(f"directions must be a non-empty batch [N, ...] of non-empty samples, got {tuple(d.shape)}")
    if not torch.isfinite(d).all():
        raise ValueError("directions contain NaN or inf")
    flat = d.reshape(len(d), -1)
    if flat.dtype in (torch.float16, torch.bfloat16):  # the scale factor may not fit in 16 bits
        flat = flat.float()
    norms = flat.norm(dim=1)
    if (norms <= eps).any():
        bad = torch.nonzero(norms <= eps).flatten()[:5].tolist()
        raise ValueError(f"zero direction for samples {bad}: cannot normalise (e.g. a zero gradient)")
    out = (flat * (flat.shape[1] ** 0.5 / norms)[:, None]).to(d.dtype).reshape(d.shape)
    if not torch.isfinite(out).all():
        raise ValueError(f"directions of norm √D = {flat.shape[1] ** 0.5:.3g} overflow dtype {d.dtype}")
    return out


def saturation_aware(d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``d ⊙ 1[0 < x < 1]`` renormalised to √D: only pixels strictly inside (0, 1) move, so the
    input path clip(x + ε d) starts straight instead of kinking where saturated pixels (the
    Fashion-MNIST background is 0) would be clipped. d, x: [N, C, H, W]; a sample with no
    unsaturated pixel is an error."""
    if not (isinstance(d, torch.Tensor) and isinstance(x, torch.Tensor)):
        raise TypeError("d and x must be torch Tensors")
    if d.shape != x.shape:
        raise ValueError(f"d and x must have the same shape, got {tuple(d.shape)} and {tuple(x.shape)}")
    if d.ndim < 1 or len(d) == 0:
        raise ValueError(f"d and x must be a non-empty batch [N, ...], got {tuple(d.shape)}")
    inside = (x > 0) & (x < 1)
    empty = ~inside.reshape(len(x), -1).any(1)
    if empty.any():
        raise ValueError(f"samples {torch.nonzero(empty).flatten()[:5].tolist()} have no pixel inside (0, 1): "
                         "a saturation-aware direction cannot move them")
    return normalize(d * inside.to(d.dtype))


def check_inputs(x: torch.Tensor, y: torch.Tensor | None, num_classes: int | None = None) -> None:
    check_pixels(x)
    if y is not None:
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"labels must be a 1-D tensor with one label per image ({len(x)}), "
                             f"got {getattr(y, 'shape', type(y).__name__)}")
        if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise TypeError(f"labels must be integers, got {y.dtype}")
        if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes - 1}], got range "
                             f"[{int(y.min())}, {int(y.max())}]")


def fgsm(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """sign(∇ₓ CE(model(x), y)) [N, C, H, W], normalised; no gradient reaches the parameters."""
    dev = next(model.parameters()).device
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc=f"fgsm {getattr(model, 'name', '')}", leave=False,
                  disable=len(x) <= batch_size):
        xb = x[i:i + batch_size].to(dev).detach().requires_grad_(True)
        loss = F.cross_entropy(model(xb).float(), y[i:i + batch_size].to(dev), reduction="sum")
        (g,) = torch.autograd.grad(loss, xb)  # only w.r.t. the input: parameters' .grad untouched
        out.append(g.sign().to(x.device))
    return normalize(torch.cat(out))


def direction(model, x: torch.Tensor, y: torch.Tensor | None = None, kind: str = "fgsm", *, seed: int = 0,
              shared: bool = False, reference: torch.Tensor | None = None, target: torch.Tensor | None = None,
              batch_size: int = 256, index: torch.Tensor | None = None) -> torch.Tensor:
    """Directions [N, C, H, W] with ‖d_i‖₂ = √D for images ``x`` [N, C, H, W] in [0, 1].

    Args:
        model: needed for ``fgsm`` (with labels ``y`` [N]); ignored otherwise (may be None).
        kind: one of ``fgsm``, ``random``, ``random_sign``, ``perp``, ``target``.
        seed: seeds the random kinds (same seed → same directions).
        index: [N] global sample numbers (default 0..N−1): sample i's random direction depends only
            on (seed, index[i]), so a shard of the images gets the same directions as the whole set.
        shared: random kinds: one direction shared by all samples instead of one each.
        reference: ``perp``: directions [N, C, H, W] to be orthogonal to (e.g. the FGSM ones).
        target: ``target``: images [N, C, H, W] to move towards (d ∝ target − x).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown direction kind {kind!r}; choose one of {', '.join(KINDS)}")
    num_classes = getattr(model, "num_classes", None) if model is not None else None
    check_inputs(x, y if kind == "fgsm" else None, num_classes)
    if kind == "fgsm":
        if model is None or y is None:
            raise ValueError("fgsm directions need the model and the labels y")
        return fgsm(model, x, y, batch_size)
    shape = (1, *x.shape[1:]) if shared else tuple(x.shape)
    if index is None:
        index = torch.arange(shape[0])
    elif shared or len(index) != len(x):
        raise ValueError(f"index must give one number per image ({len(x)}) and needs shared=False")

    def draw(sample):  # one generator per sample: (seed, index) → the same direction anywhere
        out = []
        for i in index.tolist() if not shared else [0]:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))
            out.append(sample(g))
        return torch.stack(out)

    per = (1, *x.shape[1:])[1:]
    if kind == "random":
        d = draw(lambda g: torch.randn(per, generator=g))
    elif kind == "random_sign":
        d = draw(lambda g: torch.randint(0, 2, per, generator=g).float() * 2 - 1)
    elif kind == "perp":
        if reference is None or reference.shape != x.shape:
            raise ValueError(f"perp directions need reference directions of shape {tuple(x.shape)}")
        r = draw(lambda g: torch.randn(per, generator=g)).expand(x.shape).reshape(len(x), -1).clone()
        u = reference.reshape(len(x), -1).to(r)
        u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
        d = (r - (r * u).sum(1, keepdim=True) * u).reshape(x.shape)
        return normalize(d).to(x.device)
    else:  # target
        if target is None or target.shape != x.shape:
            raise ValueError(f"target directions need target images of shape {tuple(x.shape)}")
        d = target.to(x) - x
        return normalize(d)
    d = d.expand(x.shape) if shared else d
    return normalize(d.contiguous()).to(x.device)
