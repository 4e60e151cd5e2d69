"""Running one registered experiment: its cache key, its computation (sharded, at full float32
precision), the accuracy pre-flight of the paper profile, and the timing log."""
from __future__ import annotations

import contextlib
import contextvars
import json
import time
from pathlib import Path
from typing import Any

from .. import cache, data, models
from ..config import Profile, require
from . import preflight
from .allocator import keep_freed_memory, release_freed_memory
from .distributed import sharded, world
from .fingerprint import function_fingerprint
from .registration import get, params_for


def cache_key(name: str, model, profile: Profile, params: dict) -> dict:
    """What identifies a result of experiment ``name``: the same recipe for every experiment."""
    exp = get(name)
    key = {**params, **data.data_identity(profile), "weights": model.fingerprint,
           "code": function_fingerprint(exp.compute_part)}
    if exp.autocast and profile.autocast:
        key["autocast"] = profile.autocast
    return key


class NotCached(LookupError):
    """A result that :func:`cached_only` asked for is not in the results cache."""


_CACHED_ONLY = contextvars.ContextVar("cached_only", default=False)


@contextlib.contextmanager
def cached_only():
    """Inside this context :func:`run` only reads: a result missing from the cache raises :class:`NotCached`
    instead of being computed (e.g. a page that shows another profile's results where they exist)."""
    token = _CACHED_ONLY.set(True)
    try:
        yield
    finally:
        _CACHED_ONLY.reset(token)


@contextlib.contextmanager
def tf32(allowed: bool):
    """Context: TF32 for cuDNN convolutions and CUDA matrix products on (``allowed``) or off; the previous settings
    are restored after."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allowed
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def float32_exact():
    """Full-precision float32 convolutions and matrix products on CUDA while a result is computed.

    PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default, which moves probabilities
    enough to flip FGSM signs and move ε* beyond 2·tol between a GPU and a CPU (measured:
    ``benchmarks/results/measurements.md``); with TF32 off they agree to rounding. Results are cached
    without the device in their key, so every device must compute the same numbers. Faster,
    lower-precision passes stay an explicit choice (``--bf16``, cached under their own key). The
    previous settings are restored after (:func:`tf32`)."""
    return tf32(False)


def run(name: str, model_name: str, profile: Profile, *, checkpoint=None, refresh: bool = False, **params) -> Any:
    """Cached result of experiment ``name`` for one model (``checkpoint``: other weights, e.g. an
    epoch snapshot), sharded over torchrun ranks when initialised. ``params`` override the
    experiment's defaults for the profile (None = default)."""

    profile = require(profile)
    exp = get(name)
    params = params_for(name, profile, **params)
    model = models.load(model_name, profile, checkpoint=checkpoint)
    if _CACHED_ONLY.get():
        key = cache_key(name, model, profile, params)
        target = cache.path(name, model_name, key, profile)
        value = cache.try_load(target, cache.identity(name, model_name, key, profile)) if target.exists() else \
            cache.MISS
        if value is cache.MISS:
            raise NotCached(f"{name} of {model_name} on profile {profile.name!r} is not in the results cache "
                            f"({profile.cache_dir})")
        return value
    if profile.dataset == "imagenet":  # a wrong label arrangement / weights stop here, not in a figure
        preflight.require_accuracy(model, profile)
    key = cache_key(name, model, profile, params)
    context = exp.prepare(model_name, profile, params, checkpoint) if exp.prepare else None

    def compute_part(rank: int, size: int):
        keep_freed_memory()  # large buffers reused between batches, the heap trimmed after (runner.allocator)
        start = time.perf_counter()
        try:
            with float32_exact():
                value = exp.compute_part(model, profile, None if size == 1 else (rank, size), context, **params)
        finally:
            release_freed_memory()
        log_time(profile, name, model_name, time.perf_counter() - start, checkpoint)
        return value

    return sharded(name, model_name, key, compute_part, exp.merge, profile=profile, refresh=refresh)


def log_time(profile: Profile, experiment: str, model: str, seconds: float, checkpoint=None) -> None:
    """Append one computed result's wall time to ``<cache_dir>/timings.jsonl`` (read by
    ``book/_ext/timings.py`` after a book build; ``weights``: the checkpoint's file name, or null for the
    profile's own weights). Best effort: a log that cannot be written is skipped."""
    line = json.dumps({"experiment": experiment, "model": model, "profile": profile.name, "seconds": round(seconds, 3),
                       "time": time.time(), "rank": world()[0],
                       "weights": None if checkpoint is None else Path(checkpoint).name})
    try:
        profile.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(profile.cache_dir / "timings.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass
