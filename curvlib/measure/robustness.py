"""The paper's premise, measured: accuracy when every image moves a fixed distance ε along a direction
(FGSM: an attack; Gaussian: a corruption), x → clip(x + ε d) with ‖d‖ = √D, so ε is the per-pixel RMS
step (pixels in [0, 1]).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..inference import predict
from .direction import check_inputs


def accuracy_under(model, x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 500
                   ) -> pd.DataFrame:
    """Whether ``model`` still classifies each image x [N, C, H, W] as its label y [N] after the step
    clip(x + ε d) (d [N, C, H, W]), for every ε of ``eps`` (pixel units, ≥ 0). Tidy: one row per image
    and ε with ``sample`` (row of x), ``eps``, ``correct`` (bool) and ``confidence`` (top softmax
    probability at the moved image)."""
    check_inputs(x, y, getattr(model, "num_classes", None))
    eps = np.asarray(list(eps), dtype=float)
    if eps.size == 0 or not np.isfinite(eps).all() or (eps < 0).any():
        raise ValueError(f"eps must be a non-empty list of finite steps ≥ 0, got {eps.tolist()}")
    if d.shape != x.shape:
        raise ValueError(f"directions {tuple(d.shape)} must match the images {tuple(x.shape)}")
    frames = []
    for e in eps:
        p = predict(model, (x + float(e) * d.to(x)).clamp(0, 1), batch_size=batch_size)
        conf, pred = p.max(1)
        frames.append(pd.DataFrame({"sample": np.arange(len(x)), "eps": e, "correct": (pred == y.cpu()).numpy(),
                                    "confidence": conf.numpy()}))
    return pd.concat(frames, ignore_index=True)
