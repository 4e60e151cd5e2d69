"""On-disk cache of expensive results, keyed by (experiment, model, profile, parameters).

Each entry is one pickle file written atomically (temporary file in the same directory, fsync,
``os.replace``), so a run killed mid-write leaves either the old entry or none — never a
truncated one — and the next run resumes from the entries already written.

Layout: ``<cache_dir>/<profile>/<experiment>/<model>-<hash>.pkl`` with a readable
``.json`` beside it holding the parameters the hash was made from.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

from .config import Profile, get_profile


#: Bumped whenever an experiment's algorithm changes its results for the same parameters, so old
#: entries are not served (2: per-sample seeded random directions, ITP travel refinement).
CACHE_VERSION = 2


def _canonical(params: dict) -> str:
    try:
        return json.dumps(params, sort_keys=True, default=_jsonable, separators=(",", ":"))
    except TypeError as e:  # pragma: no cover - _jsonable raises with a clear message
        raise TypeError(f"cache parameters must be JSON-serialisable: {e}") from None


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (tuple, set, frozenset)):
        return sorted(v) if isinstance(v, (set, frozenset)) else list(v)
    if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:  # numpy / torch scalar
        return v.item()
    raise TypeError(f"value {v!r} of type {type(v).__name__} cannot be part of a cache key")


def _safe(part: str, what: str) -> str:
    if not isinstance(part, str) or not part or any(c in part for c in "/\\\0") or part in (".", ".."):
        raise ValueError(f"cache {what} must be a non-empty name without path separators, got {part!r}")
    return part


def key(experiment: str, model: str, params: dict, profile: Profile | None = None) -> str:
    """Hash (16 hex digits) of the entry's identity."""
    profile = profile or get_profile()
    text = _canonical({"experiment": experiment, "model": model, "profile": profile.name, "params": params,
                       "version": CACHE_VERSION})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path(experiment: str, model: str, params: dict, profile: Profile | None = None) -> Path:
    """Where the entry for these arguments lives (it may not exist yet)."""
    profile = profile or get_profile()
    h = key(experiment, model, params, profile)
    return Path(profile.cache_dir) / profile.name / _safe(experiment, "experiment") / f"{_safe(model, 'model')}-{h}.pkl"


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so readers see the old file or the whole new one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save(target: Path, value: Any, params: dict | None = None) -> None:
    atomic_write_bytes(target, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    if params is not None:
        atomic_write_bytes(Path(target).with_suffix(".json"),
                           json.dumps(params, sort_keys=True, indent=1, default=_jsonable).encode())


def load(target: Path) -> Any:
    with open(target, "rb") as f:
        return pickle.load(f)


def cached(experiment: str, model: str, params: dict, compute: Callable[[], Any], *,
           profile: Profile | None = None, refresh: bool = False) -> Any:
    """Return the cached result for these arguments, computing and storing it on a miss.

    ``params`` must hold everything the result depends on (sizes, seeds, a model fingerprint).
    ``refresh=True`` recomputes and overwrites. An unreadable entry (written by an incompatible
    version, say) is recomputed with a warning rather than trusted.
    """
    target = path(experiment, model, params, profile)
    if target.exists() and not refresh:
        try:
            return load(target)
        except Exception as e:  # noqa: BLE001 - any unreadable entry is recomputed
            warnings.warn(f"cache entry {target} unreadable ({type(e).__name__}: {e}); recomputing")
    value = compute()
    save(target, value, {"experiment": experiment, "model": model,
                         "profile": (profile or get_profile()).name, "params": params})
    return value


def clear(experiment: str | None = None, profile: Profile | None = None) -> int:
    """Delete cached entries (of one experiment, or all of the profile); returns how many."""
    profile = profile or get_profile()
    root = Path(profile.cache_dir) / profile.name
    if experiment is not None:
        root = root / _safe(experiment, "experiment")
    n = 0
    for p in root.rglob("*.pkl") if root.exists() else []:
        p.unlink()
        p.with_suffix(".json").unlink(missing_ok=True)
        n += 1
    return n
