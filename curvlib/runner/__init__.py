"""Running experiments: registration, cache keys tied to the code, sharding and the pre-flight.

==================  =====================================================================
``registration``    the registry: :func:`experiment` registers, :func:`get` looks up
``fingerprint``     code fingerprints: an experiment's key covers the code it can run
``distributed``     torchrun ranks: each computes its share, rank 0 merges
``execute``         :func:`run`: load, pre-flight, key, compute or read from the cache
``preflight``       the paper profile's accuracy check against timm's reference top-1
``allocator``       glibc reuses freed large buffers between batches (fewer page faults)
==================  =====================================================================

The names below are re-exported, so experiments and chapters write ``runner.run(...)``.
"""
from .allocator import keep_freed_memory, release_freed_memory
from .distributed import concat_frames, concat_sorted, init_distributed, sharded, world
from .execute import NotCached, cache_key, cached_only, float32_exact, log_time, run
from .fingerprint import code_fingerprint, module_closure, source_fingerprint
from .preflight import SetupError, setup_summary
from .registration import Experiment, experiment, from_profile, get, params_for, registered, resolve

__all__ = ["Experiment", "NotCached", "SetupError", "cache_key", "cached_only", "code_fingerprint", "concat_frames",
           "concat_sorted", "experiment", "float32_exact", "from_profile", "resolve", "get", "init_distributed",
           "keep_freed_memory", "log_time", "module_closure", "params_for", "registered", "release_freed_memory",
           "run", "setup_summary", "sharded", "source_fingerprint", "world"]
