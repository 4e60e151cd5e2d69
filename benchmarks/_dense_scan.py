"""Ground truth for the boundary search: the first wrong point of a dense ε scan, cached on disk.

For every sample classified correctly at ε = 0 the scan tests ε = k·step, k = 1, 2, …, k_max
(the same ``positions()`` clipping as :func:`curvlib.travel.travel`) and stops at the first k
whose prediction is not the label. All samples still needing point k go through one batched
forward (in chunks of ``batch_size``), so the cost is Σ_i first_wrong_i (k_max for samples that
never cross), not n·k_max. The logit margins seen on the way are kept (NaN beyond a sample's
stop), for analysing the search offline.

Cached as ``benchmarks/.cache/scan_<model>_<kind>_n<n>_s<seed>_<weights sha256[:12]>_<step>.npz``,
written atomically (temp file + ``os.replace``), one file per model and kind so an interrupted
run resumes at the next model/kind; a direction checksum guards against other directions.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from curvlib.travel import _logit_margin, positions

CACHE = Path(__file__).resolve().parent / ".cache"


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def checksum(d: torch.Tensor) -> float:
    """A cheap fingerprint of the directions (sum of |d| weighted by position)."""
    flat = d.reshape(len(d), -1).double()
    w = torch.arange(1, flat.shape[1] + 1, dtype=torch.float64) / flat.shape[1]
    return float((flat.abs() * w).sum() + (flat * w.flip(0)).sum())


@torch.inference_mode()
def dense_scan(model, x, y, d, step: float = 1e-3, k_max: int = 1000, batch_size: int = 500,
               desc: str = "scan") -> dict:
    """First wrong k per sample: -1 misclassified at ε = 0, 0 never (up to k_max), else k ≥ 1.

    Returns dict(first=[n] int, pred0=[n], new_class=[n] (prediction at the first wrong point, -1
    if none), margin=[n, k_max] float32 (m(k·step), NaN where not scanned), passes=int)."""
    n = len(x)
    pred0 = torch.empty(n, dtype=torch.long)
    for s in range(0, n, batch_size):
        pred0[s:s + batch_size] = model(x[s:s + batch_size]).argmax(-1)
    first = torch.where(pred0 == y, 0, -1)
    new_class = torch.full((n,), -1, dtype=torch.long)
    margin = torch.full((n, k_max), float("nan"), dtype=torch.float32)
    passes = n
    bar = tqdm(range(1, k_max + 1), desc=desc, leave=False, mininterval=2.0)
    for k in bar:
        idx = torch.nonzero(first == 0).flatten()
        if len(idx) == 0:
            break
        bar.set_postfix(active=len(idx), refresh=False)
        eps = torch.full((len(idx),), k * step, dtype=torch.float64)
        for s in range(0, len(idx), batch_size):
            sub = idx[s:s + batch_size]
            z = model(positions(x[sub], d[sub], eps[s:s + batch_size].float())).float()
            pr = z.argmax(-1)
            margin[sub, k - 1] = _logit_margin(z, y[sub]).float()
            wrong = pr != y[sub]
            first[sub[wrong]] = k
            new_class[sub[wrong]] = pr[wrong]
        passes += len(idx)
    bar.close()
    return {"first": first.numpy(), "pred0": pred0.numpy(), "new_class": new_class.numpy(),
            "margin": margin.numpy(), "passes": passes}


def cached_scan(model, weights: Path, x, y, d, kind: str, seed: int, step: float = 1e-3, k_max: int = 1000,
                batch_size: int = 500, cache: Path = CACHE) -> dict:
    """:func:`dense_scan`, loaded from / saved to the on-disk cache."""
    key = f"scan_{model.name}_{kind}_n{len(x)}_s{seed}_{file_hash(weights)}_{step:g}x{k_max}.npz"
    path = cache / key
    ck = checksum(d)
    if path.exists():
        z = np.load(path)
        if abs(float(z["checksum"]) - ck) <= 1e-6 * max(1.0, abs(ck)):
            return {k: z[k] for k in z.files}
        print(f"  {key}: directions changed, rescanning")
    out = dense_scan(model, x, y, d, step=step, k_max=k_max, batch_size=batch_size,
                     desc=f"dense scan {model.name} {kind}")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, checksum=ck, step=step, k_max=k_max, **out)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {**out, "checksum": ck, "step": step, "k_max": k_max}
