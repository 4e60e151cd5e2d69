"""Activation sign switches between successive points of a path (the ReLU kinks of a piecewise-linear network)."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from ..inference import model_device
from .probe import checked_lines, line_points

#: Activation modules whose input's sign pattern defines the linear pieces (ReLU6 also at 6).
_ACTIVATIONS = ("ReLU", "ReLU6", "GELU", "LeakyReLU", "SiLU")


@torch.inference_mode()
def kinks(model, x: torch.Tensor, d: torch.Tensor, eps, batch_size: int = 500, progress: bool = False) -> torch.Tensor:
    """Activation switches along each path: between successive points of the grid eps [S], how many
    activation units change sign (for ReLU6 also cross 6) — the kinks a piecewise-linear network's
    path goes through. x [N, C, H, W], d [N, …] or [M, N, …] → counts [(M,) N, S − 1] (int64). Read
    by pre-hooks, before any in-place activation overwrites its input."""
    dd, e, multi = checked_lines(x, d, eps)
    M, N, S = dd.shape[0], x.shape[0], e.numel()
    pts = line_points(x, dd, e).reshape(M * N, S, *x.shape[1:])
    dev = model_device(model)
    paths_per_batch = max(1, batch_size // S)
    counts = []
    for i in tqdm(range(0, M * N, paths_per_batch), desc="kinks", leave=False, disable=not progress):
        states = []

        def hook(m, inp):
            z = inp[0]
            st = (z > 0).to(torch.int8) + ((z > 6).to(torch.int8) if type(m).__name__ == "ReLU6" else 0)
            states.append(st.reshape(-1, S, st[0].numel()))

        mods = [m for m in model.modules() if type(m).__name__ in _ACTIVATIONS]
        hooks = [m.register_forward_pre_hook(hook) for m in mods]
        try:
            model.features(pts[i:i + paths_per_batch].reshape(-1, *x.shape[1:]).to(dev))
        finally:
            for h in hooks:
                h.remove()
        c = sum((st[:, 1:] != st[:, :-1]).sum(-1) for st in states) if states else \
            torch.zeros(len(pts[i:i + paths_per_batch]), S - 1, dtype=torch.long)
        counts.append(c.long().cpu())
    c = torch.cat(counts).view(M, N, S - 1)
    return c if multi else c[0]
