"""Ground truth for the boundary search: :func:`curvlib.measure.certify.dense_scan` of 1,000 images, cached on disk.

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

from curvlib.measure.certify import dense_scan

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
    print(f"  dense scan {model.name} {kind} …", flush=True)
    out = dense_scan(model, x, y, d, step=step, k_max=k_max, batch_size=batch_size, progress=True)
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
