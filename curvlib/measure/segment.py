"""What a model's modules see along one segment x → clip(x + ε d) (pixels in [0, 1]): the inputs of
every component captured at both ends (:func:`segment_inputs`), the attention scores along the real
tokens' segment (:func:`token_lines`) and the ReLUs' input signs (:func:`relu_inputs`).

Pure functions of a model and tensors; loading models and images is
:mod:`curvlib.experiments.examples`' job.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from . import attention as at


def segment_inputs(model, x: torch.Tensor, d: torch.Tensor, eps: float) -> tuple[dict, dict]:
    """:func:`~curvlib.measure.attention.layer_inputs` of ``model`` at x [N, C, H, W] and at
    clip(x + eps·d) (d [N, C, H, W], ε in pixel units): (captures at x, captures at the other end)."""
    return at.layer_inputs(model, x), at.layer_inputs(model, (x + eps * d).clamp(0, 1))


def token_lines(model, x: torch.Tensor, d: torch.Tensor, eps: float, ts) -> pd.DataFrame:
    """:func:`~curvlib.measure.attention.score_line` of every attention module of ``model`` on its real
    tokens X ``[B, T, D]`` at the images x [N, C, H, W], with P = the change of X when the images move
    to clip(x + eps·d), rescaled per image to ‖P‖ = ‖X‖ (so t in ``ts`` is the step's relative size).
    Tidy: score_line's columns plus ``layer`` and ``shifted`` (the module got a window mask)."""
    a, b = segment_inputs(model, x, d, eps)
    frames = []
    for layer, cap in a.items():
        if at.COMPONENTS.get(type(cap.module).__name__) != "attention" or cap.input.ndim != 3:
            continue
        X, P = cap.input, b[layer].input - cap.input
        P = P * (X.flatten(1).norm(dim=1) / P.flatten(1).norm(dim=1).clamp_min(1e-30)).view(-1, 1, 1)
        mask = cap.kwargs.get("mask")
        frames.append(at.score_line(cap.module, X, P, ts, mask=mask).assign(layer=layer, shifted=mask is not None))
    if not frames:
        raise ValueError(f"{type(model).__name__} has no attention module on [B, T, D] tokens")
    return pd.concat(frames, ignore_index=True)


def relu_inputs(model, x: torch.Tensor, d: torch.Tensor, eps: float) -> dict | None:
    """Are the captured ReLU inputs the true ones? For ``model`` at the images x [N, C, H, W] and
    clip(x + eps·d): ``ReLUs`` (count), ``negative share`` (median over its ReLUs of the share of
    negative input entries) and ``switching share`` (… of entries whose sign differs between the two
    ends). None when the model has no ReLU."""
    a, b = segment_inputs(model, x, d, eps)
    relu = [k for k, c in a.items() if at.COMPONENTS[type(c.module).__name__] == "relu"]
    if not relu:
        return None
    return {"ReLUs": len(relu),
            "negative share": float(np.median([(a[k].input < 0).float().mean().item() for k in relu])),
            "switching share": float(np.median([((a[k].input > 0) != (b[k].input > 0)).float().mean().item()
                                                for k in relu]))}
