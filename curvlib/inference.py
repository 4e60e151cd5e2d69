"""Batched, gradient-free forward passes on the model's device."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .models import CurvModel


def model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.inference_mode()
def predict(model: CurvModel, x: torch.Tensor, batch_size: int = 500, progress: bool = False,
            desc: str | None = None) -> torch.Tensor:
    """Softmax probabilities [N, K] (on CPU) of pixels ``x`` [N, C, H, W] in [0, 1], in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(x) == 0:
        raise ValueError("x is empty")
    dev = model_device(model)
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc=desc or f"predict {getattr(model, 'name', '')}",
                  disable=not progress, leave=False):
        out.append(model(x[i:i + batch_size].to(dev, non_blocking=True)).float().softmax(-1).cpu())
    return torch.cat(out)
