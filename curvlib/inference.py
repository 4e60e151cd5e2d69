"""Batched, gradient-free forward passes on the model's device."""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .models import CurvModel


def model_device(model: torch.nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled`` (forward-only passes; travel and FGSM never use
    it, since ε* and gradients should not depend on reduced precision)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.inference_mode()
def predict(model: CurvModel, x: torch.Tensor, batch_size: int = 500, progress: bool = False,
            desc: str | None = None, bf16: bool = False) -> torch.Tensor:
    """Softmax probabilities [N, K] (on CPU) of pixels ``x`` [N, C, H, W] in [0, 1], in batches.

    Results stay on the device until the end (one host-device copy, no sync per batch);
    ``bf16``: autocast the forward passes (callers pass ``profile.autocast == "bf16"``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if len(x) == 0:
        raise ValueError("x is empty")
    dev = model_device(model)
    on = bool(bf16)
    out = []
    for i in tqdm(range(0, len(x), batch_size), desc=desc or f"predict {getattr(model, 'name', '')}",
                  disable=not progress, leave=False):
        with autocast(dev, on):
            z = model(x[i:i + batch_size].to(dev, non_blocking=True))
        out.append(z.float().softmax(-1))
    return torch.cat(out).cpu()


def auto_batch_size(model: CurvModel, budget_bytes: int | None = None, probe: int = 8,
                    max_batch: int = 4096) -> int | None:
    """Largest power-of-two batch whose FGSM forward + backward (the most memory-hungry pass of any
    experiment) fits ``budget_bytes`` (default: 80 % of the free GPU memory), measured with a probe
    batch. None on CPU (use the profile's batch size)."""
    dev = model_device(model)
    if dev.type != "cuda":
        return None
    if budget_bytes is None:
        free, _ = torch.cuda.mem_get_info(dev)
        budget_bytes = int(0.8 * free)
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev)
    x = torch.rand(probe, *model.input_size, device=dev, requires_grad=True)
    loss = model(x).float().logsumexp(-1).sum()
    loss.backward()
    peak = torch.cuda.max_memory_allocated(dev) - base
    del x, loss
    torch.cuda.empty_cache()
    return batch_for_budget(peak / probe, budget_bytes, max_batch)


def batch_for_budget(bytes_per_image: float, budget_bytes: float, max_batch: int = 4096) -> int:
    """Largest power of two ≤ max_batch with bytes_per_image × batch ≤ budget (at least 1)."""
    if bytes_per_image <= 0 or budget_bytes <= 0:
        raise ValueError("bytes_per_image and budget_bytes must be positive")
    b = 1
    while b * 2 <= max_batch and bytes_per_image * b * 2 <= budget_bytes:
        b *= 2
    return b


def call(model, x: torch.Tensor, index: torch.Tensor | None = None, features: bool = False) -> torch.Tensor:
    """``model(x)`` (``features``: ``model.features(x)``) for points x [M, C, H, W], handing their sample
    numbers ``index`` [M] to a model that asks for them (``model.takes_index``: a linearised model,
    :func:`curvlib.measure.surgery.linearized`, expands point i around its own sample); plain models are
    called exactly as before."""
    fn = model.features if features else model
    if index is not None and getattr(model, "takes_index", False):
        return fn(x, index=index)
    return fn(x)
