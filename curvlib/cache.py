"""On-disk cache of expensive results, keyed by (experiment, model, profile, parameters).

Each entry is one ``.npz`` file (a zip of ``.npy`` arrays) written atomically (temporary file in
the same directory, fsync, ``os.replace``), so a run killed mid-write leaves either the old entry
or none — never a truncated one — and the next run resumes from the entries already written.

Entries hold data only, never code: a cache directory copied from another machine is safe to
read. The entry ``__meta__`` is a JSON schema (UTF-8 bytes as a uint8 array) with the format
version and the value's structure; arrays and table columns live in the other entries, read with
``allow_pickle=False``. Storable values: ``pandas.DataFrame`` with a default ``RangeIndex`` and
str column names (numeric / bool / datetime columns, ``str`` / ``string`` columns and object
columns of str with None / NaN / NA, ``Categorical`` columns as codes + categories + ordered),
dense ``torch.Tensor`` (any dtype; those numpy lacks, e.g. bfloat16, as their raw bits; loaded on
the CPU, without autograd), ``numpy.ndarray`` and numpy scalars (no object dtype), ``dict`` with
str keys, ``list``, ``tuple``, and int / float (incl. nan, inf) / str / bool / None. Anything else
is refused by :func:`save` with a ``TypeError``; :func:`load` refuses any file that is not such an
entry (a pickle, a truncated file, an unknown format version) with a ``ValueError``.

Layout: ``<cache_dir>/<profile>/<experiment>/<model>-<hash>.npz``. Each entry stores, in its
``__meta__``, the full identity its hash was made from (:func:`identity`: experiment, model,
profile, parameters — data identity, weights and code fingerprint included — and the curvlib /
torch / timm versions), so data and identity are one atomic file that cannot disagree;
:func:`cached` verifies it on load and recomputes, with a warning, an entry written for anything
else (a renamed, swapped or copied file is never served). :func:`describe` reads it back.
Entries are readable by everyone the umask allows (a shared cache), not only their writer.
Longer than 400 lines: the entry format (an encoder and a decoder that refuse what they cannot
store exactly) and the store that checks identities are one contract, tested together.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import io
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import Profile

#: Bumped whenever an experiment's algorithm changes its results for the same parameters, so old
#: entries are not served (2: per-sample seeded random directions, ITP travel refinement; 3: entries
#: are data-only ``.npz`` files instead of pickles, which are never loaded).
CACHE_VERSION = 3

#: File suffix of cache entries (earlier versions wrote ``.pkl``; :func:`clear` removes those).
SUFFIX = ".npz"

#: Version of the on-disk format (the ``__meta__`` schema); :func:`load` refuses others.
FORMAT_VERSION = 1
_FORMAT = "curvlib.cache"
_META = "__meta__"
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_SUFFIX = ".pkl"
MISS = object()  #: what :func:`try_load` returns for an entry it does not serve


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


def _profile(profile, caller: str) -> Profile:
    if not isinstance(profile, Profile):
        raise TypeError(f"cache.{caller} needs a profile (a curvlib.config.Profile, e.g. "
                        f"get_profile('embedded')), got {type(profile).__name__}")
    return profile


class StaleEntry(ValueError):
    """A readable cache entry that was written for another identity (other data, model, code …)."""


class CacheNotWritable(OSError):
    """The results cache cannot be written (checked before anything is computed)."""


def _public_version(dist: str) -> str | None:
    try:  # the public version only: a CUDA and a CPU build of the same torch compute the same results
        return importlib.metadata.version(dist).split("+")[0]
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def versions() -> dict:
    """The versions of curvlib, torch and timm (public part, without local tags such as ``+cu130``)
    that every entry's identity includes."""
    return {"curvlib": __version__, "torch": _public_version("torch"), "timm": _public_version("timm")}


def identity(experiment: str, model: str, params: dict, profile: Profile) -> dict:
    """Everything an entry stands for: experiment, model, profile name, ``params`` (which, from
    :func:`curvlib.runner.execute.cache_key`, hold the data identity, the weights' and the code's
    fingerprints), the cache version and :func:`versions`. Stored in the entry, hashed into its name."""
    profile = _profile(profile, "identity")
    return {"experiment": experiment, "model": model, "profile": profile.name, "params": params,
            "version": CACHE_VERSION, "versions": versions()}


def key(experiment: str, model: str, params: dict, profile: Profile) -> str:
    """Hash (16 hex digits) of the entry's :func:`identity`."""
    profile = _profile(profile, "key")
    return _hash(identity(experiment, model, params, profile))


def _hash(ident: dict) -> str:
    return hashlib.sha256(_canonical(ident).encode()).hexdigest()[:16]


def path(experiment: str, model: str, params: dict, profile: Profile) -> Path:
    """Where the entry for these arguments lives (it may not exist yet)."""
    profile = _profile(profile, "path")
    h = key(experiment, model, params, profile)
    return (Path(profile.cache_dir) / profile.name / _safe(experiment, "experiment")
            / f"{_safe(model, 'model')}-{h}{SUFFIX}")


def require_writable(folder: Path) -> None:
    """Raise :class:`CacheNotWritable` naming ``folder`` unless an entry can be written there
    (called before an expensive computation, so its result is not lost on the write)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        what = "is not a folder" if folder.exists() and not folder.is_dir() else "is not writable"
        raise CacheNotWritable(
            f"results cache folder {folder} {what} ({e.strerror or e}); nothing was computed. Point "
            "CURVLIB_CACHE (or --cache) at a writable folder") from None


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    old = os.umask(0o022)  # pragma: no cover
    os.umask(old)  # pragma: no cover
    return old  # pragma: no cover


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so readers see the old file or the whole new one."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared cache from other users
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


# ---------------------------------------------------------------------------------------------
# Encoding: value → (JSON schema node, named arrays)

_STORABLE = ("the results cache stores only pandas DataFrames, torch Tensors, numpy arrays, dict (str keys), "
             "list, tuple, int, float, str, bool and None")
_MISSING = {1: None, 2: float("nan")}  # 3: pd.NA (pandas is imported when such a column is read)


def _type_name(v) -> str:
    t = type(v)
    return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _refuse(where: str, v, why: str = _STORABLE):
    raise TypeError(f"cannot store {where} of type {_type_name(v)}: {why}")


def _str_dtype(dt, pd) -> dict:
    return {"storage": dt.storage, "na": "NA" if dt.na_value is pd.NA else "nan"}


def _str_dtype_from(dt, pd):
    _check(type(dt) is dict and dt.get("na") in ("nan", "NA") and dt.get("storage") in ("python", "pyarrow"),
           f"bad str dtype {dt!r}")
    na = np.nan if dt["na"] == "nan" else pd.NA
    try:
        return pd.StringDtype(dt["storage"], na_value=na)
    except ImportError:  # written where pyarrow is installed: the same values in Python storage
        return pd.StringDtype("python", na_value=na)


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}
        self._active: set[int] = set()

    def _put(self, a: np.ndarray) -> str:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = a
        return name

    def value(self, v, where: str) -> dict:
        if v is None:
            return {"t": "none"}
        if type(v) is bool:
            return {"t": "bool", "v": v}
        if type(v) is int:
            return {"t": "int", "v": v}
        if type(v) is float:
            return {"t": "float", "v": repr(v)}  # repr round-trips exactly, nan and ±inf included
        if type(v) is str:
            return {"t": "str", "v": v}
        if isinstance(v, np.generic):
            if v.dtype.hasobject:
                _refuse(where, v, "numpy scalars of object dtype are not stored")
            return {"t": "npscalar", "a": self._put(np.asarray(v))}
        if isinstance(v, np.ndarray):
            if type(v) is not np.ndarray:
                _refuse(where, v, "ndarray subclasses are not stored (pass np.asarray(x))")
            if v.dtype.hasobject:
                _refuse(where, v, "object arrays are not stored (use a str / numeric dtype, a list or a DataFrame)")
            return {"t": "ndarray", "a": self._put(v)}
        torch, pd = sys.modules.get("torch"), sys.modules.get("pandas")
        if torch is not None and isinstance(v, torch.Tensor):
            return self.tensor(v, where, torch)
        if pd is not None and isinstance(v, pd.DataFrame):
            if type(v) is not pd.DataFrame:
                _refuse(where, v, "DataFrame subclasses are not stored")
            return self.frame(v, where, pd)
        if type(v) in (dict, list, tuple):
            if id(v) in self._active:
                raise TypeError(f"cannot store {where}: it contains itself")
            self._active.add(id(v))
            try:
                if type(v) is dict:
                    for k in v:
                        if type(k) is not str:
                            raise TypeError(f"cannot store {where}: key {k!r} of type {_type_name(k)} is not a str "
                                            "(dicts in the results cache need str keys)")
                    return {"t": "dict", "keys": list(v),
                            "values": [self.value(x, f"{where}[{k!r}]") for k, x in v.items()]}
                return {"t": type(v).__name__, "items": [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]}
            finally:
                self._active.discard(id(v))
        _refuse(where, v)

    def tensor(self, t, where: str, torch) -> dict:
        if type(t) is not torch.Tensor:
            _refuse(where, t, "Tensor subclasses (e.g. Parameter) are not stored (pass x.detach())")
        if t.layout != torch.strided or t.is_quantized or t.is_nested or t.device.type == "meta":
            raise TypeError(f"cannot store {where}: only dense tensors with data are stored, got layout {t.layout}, "
                            f"device {t.device}{', quantized' if t.is_quantized else ''}")
        t = t.detach().cpu().resolve_conj().resolve_neg().contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        try:
            a = t.numpy()
        except TypeError:  # a dtype numpy lacks (bfloat16, float8, …): its raw bits
            bits = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}.get(t.element_size())
            if bits is None:
                raise TypeError(f"cannot store {where}: tensor dtype {t.dtype} is not supported") from None
            a = t.view(bits).numpy()
        return {"t": "tensor", "a": self._put(a), "dtype": dtype}

    def frame(self, df, where: str, pd) -> dict:
        idx = df.index
        if not (type(idx) is pd.RangeIndex and idx.start == 0 and idx.step == 1 and idx.name is None):
            raise TypeError(f"cannot store {where}: only DataFrames with a default RangeIndex are stored, "
                            f"got {idx!r:.80} (call .reset_index(drop=True))")
        names, cdt = list(df.columns), df.columns.dtype
        if type(df.columns) is pd.RangeIndex and not names:  # pd.DataFrame()
            cdt = "range"
        elif any(type(c) is not str for c in names) or not (cdt == np.dtype(object) or isinstance(cdt, pd.StringDtype)):
            raise TypeError(f"cannot store {where}: column names must be str, got {names!r}")
        else:
            cdt = "object" if cdt == np.dtype(object) else _str_dtype(cdt, pd)
        if df.columns.name is not None and type(df.columns.name) is not str:
            raise TypeError(f"cannot store {where}: columns.name must be a str or None, got {df.columns.name!r}")
        if df.attrs:
            raise TypeError(f"cannot store {where}: DataFrame.attrs are not stored (they would be lost)")
        cols = [self.column(df.iloc[:, i], f"{where}[{c!r}]", pd) for i, c in enumerate(names)]
        return {"t": "frame", "rows": len(df), "names": names, "columns_dtype": cdt, "columns_name": df.columns.name,
                "columns": cols}

    def column(self, s, where: str, pd) -> dict:
        dt = s.dtype
        if isinstance(dt, pd.CategoricalDtype):
            return {"kind": "category", "codes": self._put(s.cat.codes.to_numpy()), "ordered": bool(dt.ordered),
                    "categories": self.column(pd.Series(dt.categories), f"{where}.cat.categories", pd)}
        if isinstance(dt, pd.StringDtype):
            return self.strings(s, where, pd, _str_dtype(dt, pd))
        if dt == np.dtype(object):
            return self.strings(s, where, pd, "object")
        if isinstance(dt, np.dtype) and not dt.hasobject:
            return {"kind": "array", "a": self._put(s.to_numpy())}
        raise TypeError(f"cannot store {where}: column dtype {dt} is not supported (numeric, bool, datetime, str "
                        "and category columns are)")

    def strings(self, s, where: str, pd, dtype) -> dict:
        """str column as UTF-8 bytes + offsets, with a per-row missing code (1 None, 2 NaN, 3 NA)."""
        items = s.to_numpy(dtype=object)
        missing = np.zeros(len(items), np.uint8)
        chunks = []
        for i, x in enumerate(items):
            if type(x) is str:
                chunks.append(x.encode("utf-8", "surrogatepass"))
                continue
            if x is None:
                missing[i] = 1
            elif isinstance(x, float) and math.isnan(x):
                missing[i] = 2
            elif x is pd.NA:
                missing[i] = 3
            else:
                _refuse(f"{where}[{i}]", x, "str / object columns may hold only str and missing values "
                        "(None, NaN, NA)")
            chunks.append(b"")
        offsets = np.zeros(len(items) + 1, np.int64)
        np.cumsum([len(c) for c in chunks], out=offsets[1:])
        return {"kind": "str", "dtype": dtype, "data": self._put(np.frombuffer(b"".join(chunks), np.uint8)),
                "offsets": self._put(offsets), "missing": self._put(missing)}


# ---------------------------------------------------------------------------------------------
# Decoding: (schema, arrays) → value; any inconsistency is a corrupt file

class _Corrupt(Exception):
    pass


def _check(ok: bool, what: str):
    if not ok:
        raise _Corrupt(what)


class _Decoder:
    def __init__(self, arrays: dict):
        self.arrays = arrays

    def _get(self, name) -> np.ndarray:
        _check(type(name) is str and name in self.arrays, f"missing array {name!r}")
        return self.arrays[name]

    def value(self, n):
        _check(type(n) is dict, "schema node is not an object")
        t = n.get("t")
        if t == "none":
            return None
        if t in ("bool", "int", "str"):
            v = n["v"]
            _check(type(v) is {"bool": bool, "int": int, "str": str}[t], f"bad {t} node")
            return v
        if t == "float":
            _check(type(n["v"]) is str, "bad float node")
            return float(n["v"])
        if t == "npscalar":
            a = self._get(n["a"])
            _check(a.ndim == 0, "numpy scalar is not 0-d")
            return a[()]
        if t == "ndarray":
            return self._get(n["a"])
        if t in ("list", "tuple"):
            _check(type(n["items"]) is list, f"bad {t} node")
            items = [self.value(x) for x in n["items"]]
            return items if t == "list" else tuple(items)
        if t == "dict":
            keys, values = n["keys"], n["values"]
            _check(type(keys) is list and type(values) is list and len(keys) == len(values)
                   and all(type(k) is str for k in keys), "bad dict node")
            return {k: self.value(x) for k, x in zip(keys, values)}
        if t == "tensor":
            return self.tensor(n)
        if t == "frame":
            return self.frame(n)
        raise _Corrupt(f"unknown node type {t!r}")

    def tensor(self, n):
        import torch

        name = n["dtype"]
        dtype = getattr(torch, name, None) if type(name) is str and name.isidentifier() and name[0] != "_" else None
        _check(isinstance(dtype, torch.dtype), f"unknown tensor dtype {n['dtype']!r}")
        t = torch.from_numpy(self._get(n["a"]))
        if t.dtype != dtype:  # stored as raw bits
            _check(t.dtype in (torch.uint8, torch.int16, torch.int32, torch.int64)
                   and t.element_size() == torch.empty(0, dtype=dtype).element_size(), "tensor bits do not fit dtype")
            t = t.view(dtype)
        return t

    def frame(self, n):
        import pandas as pd

        rows, names, cols = n["rows"], n["names"], n["columns"]
        _check(type(rows) is int and rows >= 0 and type(names) is list and type(cols) is list
               and len(names) == len(cols) and all(type(c) is str for c in names), "bad frame node")
        _check(n["columns_name"] is None or type(n["columns_name"]) is str, "bad columns name")
        index = pd.RangeIndex(rows)
        df = pd.DataFrame({i: self.column(c, rows, pd) for i, c in enumerate(cols)}, index=index)
        cdt = n["columns_dtype"]
        if cdt == "range":
            _check(not names, "bad frame node")
            df.columns = pd.RangeIndex(0, name=n["columns_name"])
        else:
            df.columns = pd.Index(names, dtype=object if cdt == "object" else _str_dtype_from(cdt, pd),
                                  name=n["columns_name"])
        return df

    def column(self, c, rows: int, pd):
        _check(type(c) is dict, "bad column node")
        kind = c.get("kind")
        if kind == "array":
            a = self._get(c["a"])
            _check(a.ndim == 1 and (rows is None or len(a) == rows), "column length does not match the frame")
            rows = len(a)
            return pd.Series(a, index=pd.RangeIndex(rows), copy=False)
        if kind == "category":
            codes = self._get(c["codes"])
            _check(codes.ndim == 1 and len(codes) == rows and codes.dtype.kind == "i", "bad category codes")
            cats = self.column(c["categories"], None, pd)
            _check(type(c["ordered"]) is bool, "bad category node")
            dtype = pd.CategoricalDtype(pd.Index(cats, dtype=cats.dtype), ordered=c["ordered"])
            return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=pd.RangeIndex(rows))
        if kind == "str":
            return self.strings(c, rows, pd)
        raise _Corrupt(f"unknown column kind {kind!r}")

    def strings(self, c, rows, pd):
        data, offsets, missing = self._get(c["data"]), self._get(c["offsets"]), self._get(c["missing"])
        n = len(missing)
        _check(data.dtype == np.uint8 and data.ndim == 1 and missing.dtype == np.uint8 and missing.ndim == 1
               and offsets.dtype == np.int64 and offsets.shape == (n + 1,) and (rows is None or n == rows)
               and offsets[0] == 0 and offsets[-1] == len(data) and bool(np.all(np.diff(offsets) >= 0))
               and bool(np.all(missing <= 3)), "bad str column")
        raw = data.tobytes()
        missing_values = {**_MISSING, 3: pd.NA}
        items = np.empty(n, dtype=object)
        for i in range(n):
            m = int(missing[i])
            items[i] = raw[offsets[i]:offsets[i + 1]].decode("utf-8", "surrogatepass") if m == 0 else missing_values[m]
        if c["dtype"] == "object":
            return pd.Series(items, dtype=object, index=pd.RangeIndex(n))
        return pd.Series(pd.array(items, dtype=_str_dtype_from(c["dtype"], pd)), index=pd.RangeIndex(n))


def save(target: Path, value: Any, ident: dict | None = None) -> None:
    """Store ``value`` at ``target`` with its identity ``ident`` (:func:`identity`) inside the same
    file, atomically.

    Raises ``TypeError`` naming the offending part (``value['summary']['x']``) for anything but the
    storable types (module docstring); nothing is written then."""
    enc = _Encoder()
    node = enc.value(value, "value")
    stored = None if ident is None else _canonical(ident)
    meta = json.dumps({"format": _FORMAT, "version": FORMAT_VERSION, "key": stored, "value": node},
                      allow_nan=False).encode()
    buf = io.BytesIO()
    np.savez(buf, **{_META: np.frombuffer(meta, np.uint8)}, **enc.arrays)
    atomic_write_bytes(target, buf.getvalue())


def describe(target: Path) -> dict | None:
    """The identity an entry was written under (what :func:`identity` returned), or None for an
    entry saved without one. Raises ``ValueError`` like :func:`load` for what is not an entry."""
    stored = _read(Path(target))[1]
    return None if stored is None else json.loads(stored)


def load(target: Path, expect: dict | None = None) -> Any:
    """The value stored at ``target`` by :func:`save`; with ``expect`` (an :func:`identity`) only if
    the entry was written under exactly that identity, else :class:`StaleEntry` naming what differs.

    Raises ``ValueError`` naming the file for anything else — a pickle (never unpickled), a
    truncated or corrupt file, an unknown format version, object arrays."""
    target = Path(target)
    schema, stored = _read(target)
    if expect is not None and stored != _canonical(expect):
        if stored is None:
            raise StaleEntry(f"{target} does not record the key it was written under")
        raise StaleEntry(f"{target} was written for another result ({_difference(json.loads(stored), expect)})")
    arrays = schema.pop("_arrays")
    try:
        return _Decoder(arrays).value(schema.get("value"))
    except _Corrupt as e:
        raise ValueError(f"{target}: corrupt cache entry ({e})") from None
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, RecursionError) as e:
        raise ValueError(f"{target}: corrupt cache entry ({type(e).__name__}: {e})") from None


def _difference(have: dict, expect: dict) -> str:
    """Which fields of two identities differ, e.g. ``model 'vit' here, 'resnet' wanted``."""
    want = json.loads(_canonical(expect))
    flat = {}
    for side, d in (("have", have), ("want", want)):
        for k, v in (d.items() if type(d) is dict else ()):
            items = v.items() if k == "params" and type(v) is dict else [(None, v)]
            for sub, x in items:
                flat.setdefault(k if sub is None else f"{k}.{sub}", {})[side] = x
    diff = [k for k, v in sorted(flat.items()) if v.get("have", MISS) != v.get("want", MISS)]
    shown = "; ".join(f"{k}: {flat[k].get('have')!r:.50} here, {flat[k].get('want')!r:.50} wanted" for k in diff[:3])
    return f"differs in {', '.join(diff)}: {shown}" if diff else "its key differs"


def _read(target: Path) -> tuple[dict, str | None]:
    """(schema with its arrays under ``_arrays``, stored identity as canonical JSON) of an entry;
    ValueError otherwise."""
    target = Path(target)
    if target.suffix == _LEGACY_SUFFIX:
        raise ValueError(f"{target}: pickle cache entries of older curvlib versions are never loaded "
                         "(delete them, e.g. with curvlib.cache.clear)")
    raw = target.read_bytes()
    if not raw.startswith(_ZIP_MAGIC):
        what = "a pickle, which is never loaded" if raw[:1] == b"\x80" else "not an .npz archive"
        raise ValueError(f"{target} is not a curvlib cache entry ({what})")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 - zip / npy errors of every kind mean the same
        raise ValueError(f"{target}: corrupt cache entry ({type(e).__name__}: {e})") from None
    if any(not isinstance(a, np.ndarray) for a in arrays.values()):
        raise ValueError(f"{target}: corrupt cache entry (a member is not a .npy array)")
    meta = arrays.pop(_META, None)
    if meta is None or meta.dtype != np.uint8 or meta.ndim != 1:
        raise ValueError(f"{target}: not a curvlib cache entry (no {_META} schema)")
    try:
        schema = json.loads(meta.tobytes().decode("utf-8"))
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{target}: corrupt cache entry (schema: {e})") from None
    if type(schema) is not dict or schema.get("format") != _FORMAT:
        raise ValueError(f"{target}: not a curvlib cache entry (schema format {schema.get('format')!r})"
                         if type(schema) is dict else f"{target}: not a curvlib cache entry (schema)")
    if type(schema.get("version")) is not int or schema["version"] != FORMAT_VERSION:
        raise ValueError(f"{target}: cache format version {schema.get('version')!r} is not supported "
                         f"(this curvlib reads version {FORMAT_VERSION}); recompute the entry")
    stored = schema.get("key")
    if stored is not None and type(stored) is not str:
        raise ValueError(f"{target}: corrupt cache entry (bad key)")
    schema["_arrays"] = arrays
    return schema, stored


def cached(experiment: str, model: str, params: dict, compute: Callable[[], Any], *,
           profile: Profile, refresh: bool = False) -> Any:
    """Return the cached result for these arguments, computing and storing it on a miss.

    ``params`` must hold everything the result depends on (sizes, seeds, a model fingerprint).
    ``refresh=True`` recomputes and overwrites. An unreadable entry (corrupt, written by an
    incompatible version, not an entry at all) or one written under another identity (a swapped or
    copied file) is recomputed with a warning rather than trusted; old ``.pkl`` entries are never
    opened. The cache folder must be writable before ``compute`` runs (else
    :class:`CacheNotWritable`); a write that still fails returns the result with a warning.
    """
    profile = _profile(profile, "cached")
    ident = identity(experiment, model, params, profile)
    target = path(experiment, model, params, profile)
    if target.exists() and not refresh:
        value = try_load(target, ident, stacklevel=3)
        if value is not MISS:
            return value
    require_writable(target.parent)
    with computing(target):
        if target.exists() and not refresh:  # another process computed it while this one waited
            value = try_load(target, ident, stacklevel=3)
            if value is not MISS:
                return value
        value = compute()
        store(target, value, ident, stacklevel=3)
    return value


@contextlib.contextmanager
def computing(target: Path):
    """Context: this process alone computes ``target`` — an exclusive advisory lock (``fcntl.flock``) on the
    file ``<target>.lock``, so two processes asking for the same missing entry at once (parallel test
    workers, chapters run side by side) compute it once: the second waits and then reads it. Results are
    acyclic (an entry never waits on one that waits on it), so the waits cannot deadlock. Where flock is
    unavailable (not POSIX) it does nothing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(target.with_name(target.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)



def try_load(target: Path, ident: dict, stacklevel: int = 2) -> Any:
    """:func:`load` of ``target`` expecting ``ident``, or a sentinel (with a warning saying why) when
    the entry is unreadable or was written for another result."""
    try:
        return load(target, expect=ident)
    except StaleEntry as e:
        warnings.warn(f"cache entry not served: {e}; recomputing", stacklevel=stacklevel)
    except Exception as e:  # noqa: BLE001 - any unreadable entry is recomputed
        warnings.warn(f"cache entry {target} unreadable ({e}); recomputing", stacklevel=stacklevel)
    return MISS


def store(target: Path, value: Any, ident: dict | None, stacklevel: int = 2) -> bool:
    """:func:`save`, turning a failed write (disk full, permissions changed mid-run) into a warning so
    the computed result is still returned; True when stored. A value of a type that cannot be stored
    still raises ``TypeError``."""
    try:
        save(target, value, ident)
        return True
    except OSError as e:
        warnings.warn(f"result computed but not cached: writing {target} failed ({e})", stacklevel=stacklevel)
        return False


def clear(experiment: str | None = None, *, profile: Profile) -> int:
    """Delete cached entries (of one experiment, or all of the profile), including old ``.pkl``
    ones, with the ``.json`` files older versions wrote beside them and the lock files of :func:`computing`
    (not while another process computes there); returns how many entries."""
    profile = _profile(profile, "clear")
    root = Path(profile.cache_dir) / profile.name
    if experiment is not None:
        root = root / _safe(experiment, "experiment")
    n = 0
    for suffix in (SUFFIX, _LEGACY_SUFFIX):
        for p in sorted(root.rglob(f"*{suffix}")) if root.exists() else []:
            p.unlink()
            p.with_suffix(".json").unlink(missing_ok=True)
            n += 1
    for lock in sorted(root.rglob("*.lock")) if root.exists() else []:  # :func:`computing`'s (not entries)
        lock.unlink(missing_ok=True)
    return n
