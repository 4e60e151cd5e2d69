"""Run experiments on one process or sharded over ``torchrun`` ranks, with one cache entry.

Each experiment is written as ``compute_part(rank, world)`` (its share of the images or
directions: every ``world``-th item starting at ``rank``) plus ``merge(parts)``. On one process
that is simply the whole computation. Under ``torchrun --nproc-per-node N`` (``torch.distributed``
initialised, see :func:`init_distributed`) every rank writes its part next to the final cache
entry (atomically, so an interrupted run resumes), rank 0 merges the parts into the entry that a
single process would have written, under the same key, and the others wait for it. The book then
reads that entry on any machine.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from . import cache


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> tuple[int, int]:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1): NCCL on CUDA, else gloo.
    Each rank uses GPU ``LOCAL_RANK``. Returns (rank, world size)."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return world()
    use_cuda = torch.cuda.is_available() and os.environ.get("CURVLIB_DEVICE", "cuda").startswith("cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        os.environ["CURVLIB_DEVICE"] = f"cuda:{local}"
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return world()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sharded(experiment: str, model: str, params: dict, compute_part: Callable[[int, int], Any],
            merge: Callable[[list], Any], *, profile, refresh: bool = False) -> Any:
    """The cached value of ``merge([compute_part(r, W) for r in range(W)])``, computed by W ranks."""
    rank, size = world()
    if size == 1:
        return cache.cached(experiment, model, params, lambda: merge([compute_part(0, 1)]),
                            profile=profile, refresh=refresh)
    target = cache.path(experiment, model, params, profile)
    if target.exists() and not refresh:
        _barrier()
        return cache.load(target)
    parts = [target.with_name(f"{target.stem}.part{r}of{size}{cache.SUFFIX}") for r in range(size)]
    if refresh or not parts[rank].exists():
        cache.save(parts[rank], compute_part(rank, size))
    _barrier()  # every part written
    if rank == 0:
        value = merge([cache.load(p) for p in parts])
        cache.save(target, value, {"experiment": experiment, "model": model, "profile": profile.name,
                                   "params": params, "merged_from": size})
        for p in parts:
            p.unlink(missing_ok=True)
    _barrier()  # the merged entry exists
    return cache.load(target)


def concat_frames(parts: list) -> "Any":
    """Merge per-rank DataFrames with a global ``index`` column back into input order."""
    import pandas as pd

    df = pd.concat(parts, ignore_index=True)
    return df.sort_values("index", kind="stable").reset_index(drop=True)
