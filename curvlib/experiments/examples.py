"""Small measurements the chapters show on a handful of images: the attention scores along real
tokens, the ReLUs' captured inputs, images moved to their boundary, the random jump's example images
and what each surgery keeps. Each loads its models and images here, calls :mod:`curvlib.measure`
and returns data; none is cached (each takes seconds on the embedded profile).

The per-model functions take ``(model_name, profile, *, …)`` like every experiment wrapper; the ones
that cover several models take those first — names or travel frames — or ``(profile, *, …)`` for all
of the profile's. Pixels are in [0, 1].
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .. import data, models
from ..config import require
from ..constants import EPS_R
from ..measure import segment
from ..measure.curvature import unfused
from ..measure.direction import direction
from ..measure.random_jump import jump_travel
from ..measure.surgery import is_affine, linearized
from ..measure.travel import positions
from .surgery import applies
from .travel_check import travel_images


def _segment_images(model_name: str, profile, n: int):
    """Model ``model_name`` and its first ``n`` test images x with their FGSM directions d (on the device)."""
    model = models.load(model_name, profile)
    x, y = data.test_set(profile, n=n, model_name=model_name if profile.dataset == "imagenet" else None)
    return model, x.to(profile.device), direction(model, x, y, "fgsm").to(profile.device)


def token_lines(model_name: str, profile=None, *, eps: float, ts, n: int = 8) -> pd.DataFrame:
    """:func:`curvlib.measure.segment.token_lines` of model ``model_name`` on its first ``n`` test
    images along their FGSM directions (step ``eps``, pixel units), plus column ``model``."""
    profile = require(profile)
    model, x, d = _segment_images(model_name, profile, n)
    return segment.token_lines(model, x, d, eps, ts).assign(model=model_name)


def relu_inputs(names, profile=None, *, eps: float, n: int = 4) -> pd.DataFrame:
    """:func:`curvlib.measure.segment.relu_inputs` of each model of ``names`` that has ReLUs, on its
    first ``n`` test images along their FGSM directions (step ``eps``): one row per model (column
    ``model`` first)."""
    profile = require(profile)
    rows = []
    for name in names:
        row = segment.relu_inputs(*_segment_images(name, profile, n), eps)
        if row is not None:
            rows.append({"model": name, **row})
    return pd.DataFrame(rows)


def boundary_images(frames: dict[str, pd.DataFrame], profile=None, *, n: int = 6
                    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The first n rows of the travel sample moved along their FGSM direction exactly to ε*: returns the
    images x [n, C, H, W] (on ImageNet as the first model sees them), their labels [n] and, per model of
    ``frames`` (model → FGSM travel frame), the moved images [n, C, H, W] (an image that did not cross
    stays itself). Refuses frames whose labels do not match the images."""
    profile = require(profile)
    rows = np.arange(min(n, len(next(iter(frames.values())))))
    x0, y0 = travel_images(profile, rows, next(iter(frames)))
    moved = {}
    for name, frame in frames.items():
        df = frame.iloc[:len(rows)]
        x, y = travel_images(profile, rows, name)
        if not (df["label"].to_numpy() == y.numpy()).all():
            raise ValueError(f"{name}: images and travel rows out of step (labels differ)")
        moved[name] = positions(x, direction(models.load(name, profile), x, y, "fgsm"), df.eps.to_numpy())
    return x0, y0, moved


def jump_examples(profile=None, *, n: int = 2, eps_r: float = EPS_R) -> tuple[torch.Tensor, dict]:
    """The profile's first n test images x [n, C, H, W] and, per model of the profile,
    ``(frame, x_direct_final, x_jump_final)``: its :func:`~curvlib.measure.random_jump.jump_travel`
    frame on them (the profile's boundary search) and the final images [n, C, H, W] of the direct and
    the jump route (jump of ``eps_r``, seed 0)."""
    profile = require(profile)
    x, y = data.test_set(profile, n=n)
    examples = {}
    for name in profile.models:
        df, (x_direct, x_jump) = jump_travel(models.load(name, profile), x, y, eps_r, return_images=True,
                                             batch_size=profile.batch_size, search=profile.search)
        examples[name] = (df, x_direct, x_jump)
    return x, examples


def identity_check(profile=None, *, n: int = 4, kinds=("attention", "norm", "activation", "all")) -> pd.DataFrame:
    """What each surgery keeps, on the profile's first n test images per model: one row per (model, kind
    that applies) with the number of modules replaced, the change of the features f(x) [n, D]
    (``value: max |Δf| / max |f|``) and of the first-order response f′(x)d along a seeded random direction d
    (``first order: ‖Δ f′d‖ / ‖f′d‖``). Both are 0 up to rounding when the surgery keeps value and derivative."""
    profile = require(profile)
    xs = data.test_set(profile, n=n)[0] if profile.dataset == "fashion-mnist" else None
    rows = []
    for m in profile.models:
        model = models.load(m, profile)
        xm = (xs if xs is not None else data.test_set(profile, n=n, model_name=m)[0]).to(profile.device)
        dm = torch.randn(xm.shape, generator=torch.Generator().manual_seed(0)).to(profile.device)
        with unfused(model), torch.no_grad():
            f0, t0 = torch.func.jvp(model.features, (xm,), (dm,))
        for kind in kinds:
            if not applies(model, kind):
                continue
            lin = linearized(model, xm, (kind,))
            with torch.no_grad():
                g0, s0 = torch.func.jvp(lin.features, (xm,), (dm,))
            rows.append({"model": m, "kind": kind, "modules": len(lin.replaced),
                         "value: max |Δf| / max |f|": float((g0 - f0).abs().max() / f0.abs().max()),
                         "first order: ‖Δ f′d‖ / ‖f′d‖": float((s0 - t0).norm() / t0.norm())})
    return pd.DataFrame(rows)


def batchnorm_affine(model_name: str = "resnet", profile=None) -> bool | None:
    """Whether the first ``BatchNorm2d`` of ``model_name`` in eval mode is affine along a random direction
    (two random inputs [2, C, 4, 4]); None on a profile without the embedded models or without a BatchNorm."""
    profile = require(profile)
    if profile.dataset != "fashion-mnist":
        return None
    bn = next((mod for mod in models.load(model_name, profile).modules() if type(mod).__name__ == "BatchNorm2d"),
              None)
    return None if bn is None else is_affine(bn, torch.randn(2, bn.num_features, 4, 4),
                                             torch.randn(2, bn.num_features, 4, 4))
