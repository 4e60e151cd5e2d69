"""Sharding over ``torchrun`` ranks: each rank computes its share and writes it next to the final
cache entry (atomically, so an interrupted run resumes); rank 0 merges the parts under the same key."""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .. import cache
from ..config import Profile


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(profile: Profile) -> tuple[int, int, Profile]:
    """Join the process group torchrun describes (its ``WORLD_SIZE`` > 1): NCCL on CUDA, else gloo.
    Returns (rank, world size, profile), the profile on GPU ``LOCAL_RANK`` when on CUDA. (torchrun's
    own variables are the launcher's protocol, read here; curvlib's settings travel in ``profile``.)"""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return (*world(), profile)
    use_cuda = torch.cuda.is_available() and profile.device.startswith("cuda")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        profile = profile.replace(device=f"cuda:{local}")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return (*world(), profile)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def sharded(experiment: str, model: str, params: dict, compute_part: Callable[[int, int], Any],
            merge: Callable[[list, dict], Any], *, profile: Profile, refresh: bool = False) -> Any:
    """The cached value of ``merge([compute_part(r, W) for r in range(W)], params)``, computed by W ranks."""
    rank, size = world()
    if size == 1:
        return cache.cached(experiment, model, params, lambda: merge([compute_part(0, 1)], params),
                            profile=profile, refresh=refresh)
    ident = cache.identity(experiment, model, params, profile)
    target = cache.path(experiment, model, params, profile)
    if target.exists() and not refresh:
        _barrier()
        value = cache.try_load(target, ident, stacklevel=3)  # every rank reads the same file: the same verdict
        if value is not cache.MISS:
            return value
    cache.require_writable(target.parent)
    parts = [target.with_name(f"{target.stem}.part{r}of{size}{cache.SUFFIX}") for r in range(size)]
    part_ident = [{**ident, "part": [r, size]} for r in range(size)]
    # a part left by an interrupted run is reused only if readable and written for this very part
    if refresh or not parts[rank].exists() or cache.try_load(parts[rank], part_ident[rank]) is cache.MISS:
        cache.save(parts[rank], compute_part(rank, size), part_ident[rank])
    _barrier()  # every part written
    stored = True
    if rank == 0:
        value = merge([cache.load(p, expect=i) for p, i in zip(parts, part_ident)], params)
        stored = cache.store(target, value, ident, stacklevel=3)  # a failed write: a warning, not lost work
        if stored:
            for p in parts:
                p.unlink(missing_ok=True)
    _barrier()  # the merged entry exists
    if not stored:  # rank 0 keeps the parts (a rerun merges them again) and returns what it merged
        return value
    return cache.load(target, expect=ident)


def concat_sorted(*by: str) -> Callable[[list, dict], Any]:
    """A merge: the per-rank DataFrames concatenated and stably sorted by the columns ``by`` (rows that tie
    keep their computed order), so the result does not depend on the sharding."""
    def merge(parts: list, params: dict | None = None):
        import pandas as pd

        return pd.concat(parts, ignore_index=True).sort_values(list(by), kind="stable").reset_index(drop=True)

    return merge


def concat_frames(parts: list, params: dict | None = None) -> "Any":
    """Merge per-rank DataFrames with a global ``index`` column back into input order."""
    import pandas as pd

    df = pd.concat(parts, ignore_index=True)
    return df.sort_values("index", kind="stable").reset_index(drop=True)
