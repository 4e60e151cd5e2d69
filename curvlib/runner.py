"""Experiments: one registration each, run on one process or sharded over ``torchrun`` ranks.

An experiment is registered once (:func:`experiment`) with

- ``compute_part(model, profile, shard, context, **params)``: its share of the images or directions
  (``shard = (rank, world)``: every ``world``-th item starting at ``rank``; ``None`` on one process);
- ``merge(parts, params)``: the parts back into the one result a single process would have computed;
- ``defaults(profile)``: the parameters that, with the data, the weights and the code, make its key;
- optionally ``prepare``: results it needs from other experiments, computed on every rank first.

:func:`run` is the one way to compute one: it loads the model, builds the cache key the same way for
every experiment — parameters + ``profile.data_identity()`` + the weights' fingerprint + a
fingerprint of the library code the experiment runs (+ the autocast mode where it applies) — and
shards uniformly. Under ``torchrun --nproc-per-node N`` every rank writes its part next to the
final cache entry (atomically, so an interrupted run resumes), rank 0 merges the parts under the
same key and the others wait for it. The book then reads that entry on any machine.
"""
from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import io
import json
import os
import time
import tokenize
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import cache
from .config import Profile, require

#: Modules whose code every experiment runs (data loading, models, batched inference, directions,
#: the profile's defaults and this runner, which builds the key and shards the work).
COMMON_CODE = ("data", "models", "inference", "direction", "config", "runner")
#: Modules that register experiments (imported by :func:`registry`).
EXPERIMENT_MODULES = ("calibration", "travel", "certify", "trajectory", "random_jump", "attention", "surgery")
#: The order ``curvlib run all`` computes them in (cheap and most-read first).
BOOK_ORDER = ("calibration", "travel", "travel_check", "theta", "theta_step", "curvature", "random_jump", "attention",
              "surgery_path", "surgery_travel", "surgery_turning")


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


def concat_frames(parts: list, params: dict | None = None) -> "Any":
    """Merge per-rank DataFrames with a global ``index`` column back into input order."""
    import pandas as pd

    df = pd.concat(parts, ignore_index=True)
    return df.sort_values("index", kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# The experiment registry

@dataclass(frozen=True)
class Experiment:
    """One registered experiment (see the module docstring)."""

    name: str
    compute_part: Callable[..., Any]
    defaults: Callable[[Profile], dict]
    merge: Callable[[list, dict], Any] = concat_frames  #: (parts, params) → result
    prepare: Callable[..., Any] | None = None  #: (model_name, profile, params, checkpoint) → context
    code: tuple[str, ...] = ()  #: curvlib modules it runs besides COMMON_CODE (part of its key)
    autocast: bool = False  #: forward-only: may run under the profile's autocast (then in the key)
    calls: tuple[dict, ...] = ({},)  #: the chapters' calls (parameter overrides) ``curvlib run`` makes
    summary: Callable[[Any], str] = str  #: one line about a result, for the CLI


_EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, *, defaults: Callable[[Profile], dict], **kw):
    """Decorator: register ``compute_part`` as experiment ``name`` (keywords: :class:`Experiment`'s)."""
    def deco(fn):
        if name in _EXPERIMENTS:
            raise ValueError(f"experiment {name!r} registered twice")
        _EXPERIMENTS[name] = Experiment(name, fn, defaults, **kw)
        return fn
    return deco


def registry() -> dict[str, Experiment]:
    """All experiments, by name, in the book's order (imports the modules that register them)."""
    for m in EXPERIMENT_MODULES:
        importlib.import_module(f"{__package__}.{m}")
    order = {n: i for i, n in enumerate(BOOK_ORDER)}
    return dict(sorted(_EXPERIMENTS.items(), key=lambda kv: order.get(kv[0], len(order))))


def get(name: str) -> Experiment:
    exps = registry()
    if name not in exps:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(exps)}")
    return exps[name]


def source_fingerprint(source: str) -> str:
    """Hash of Python ``source``'s tokens without docstrings, comments, blank lines or layout inside
    brackets (16 hex digits), the same on every Python version (``ast.dump`` is not: 3.12 adds
    fields, so a cache filled on one machine would not be served on another)."""
    lines = source.splitlines(keepends=True)

    def char_col(row: int, byte_col: int) -> int:  # ast counts UTF-8 bytes, tokenize characters
        return len(lines[row - 1].encode()[:byte_col].decode())

    docstrings = []  # (start, end) positions of docstring expressions
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            e = body[0]
            docstrings.append(((e.lineno, char_col(e.lineno, e.col_offset)),
                               (e.end_lineno, char_col(e.end_lineno, e.end_col_offset))))

    def text(start, end) -> str:
        if start[0] == end[0]:
            return lines[start[0] - 1][start[1]:end[1]]
        return lines[start[0] - 1][start[1]:] + "".join(lines[start[0]:end[0] - 1]) + lines[end[0] - 1][:end[1]]

    out, skip_newline, fstring = [], False, []  # fstring: open f-string starts (Python ≥ 3.12 splits them)
    names = {tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>", tokenize.NEWLINE: "<newline>"}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = tokenize.tok_name[tok.type]
        if kind == "FSTRING_START":
            fstring.append(tok.start)
            continue
        if fstring:
            if kind == "FSTRING_END":
                start = fstring.pop()
                if not fstring:
                    out.append(text(start, tok.end))  # the whole f-string, as one token like Python 3.11's
            continue
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER):
            continue
        if tok.type == tokenize.STRING and any(a <= tok.start and tok.end <= b for a, b in docstrings):
            skip_newline = True
            continue
        if tok.type == tokenize.NEWLINE and skip_newline:
            skip_newline = False
            continue
        skip_newline = False
        out.append(names.get(tok.type, tok.string))
    return hashlib.sha256("\x00".join(out).encode()).hexdigest()[:16]


@functools.cache
def code_fingerprint(modules: tuple[str, ...]) -> str:
    """Hash of the code of curvlib ``modules`` (:func:`source_fingerprint` of each), so a cached
    result is never served after the code that computed it changed."""
    h = hashlib.sha256()
    for m in sorted(set(modules)):
        mod = importlib.import_module(f"{__package__}.{m}")
        with open(mod.__file__, encoding="utf-8") as f:
            h.update(f"{m}:{source_fingerprint(f.read())};".encode())
    return h.hexdigest()[:16]


def params_for(name: str, profile: Profile, **params) -> dict:
    """The experiment's parameters: its defaults for ``profile``, updated by the non-None ``params``."""
    exp = get(name)
    defaults = exp.defaults(profile)
    unknown = set(params) - set(defaults)
    if unknown:
        raise TypeError(f"experiment {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                        f"its parameters are {', '.join(defaults)}")
    return {**defaults, **{k: v for k, v in params.items() if v is not None}}


def cache_key(name: str, model, profile: Profile, params: dict) -> dict:
    """What identifies a result of experiment ``name``: the same recipe for every experiment."""
    exp = get(name)
    key = {**params, **profile.data_identity(), "weights": model.fingerprint,
           "code": code_fingerprint(COMMON_CODE + exp.code)}
    if exp.autocast and profile.autocast:
        key["autocast"] = profile.autocast
    return key


@contextlib.contextmanager
def float32_exact():
    """Full-precision float32 convolutions and matrix products on CUDA while a result is computed.

    PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default. Measured on an H100 with
    the embedded models, that moved softmax probabilities by up to 1e-3 and flipped 0.3–1.2 % of the
    FGSM signs, so a GPU and a CPU disagreed on ε* (beyond 2·tol) for up to half the samples; with
    TF32 off they agree to 2e-6 in probability. Results are cached without the device in their key,
    so every device must compute the same numbers. Faster, lower-precision passes stay an explicit
    choice (``--bf16``, cached under their own key). The previous settings are restored after."""
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def run(name: str, model_name: str, profile: Profile, *, checkpoint=None, refresh: bool = False, **params) -> Any:
    """Cached result of experiment ``name`` for one model (``checkpoint``: other weights, e.g. an
    epoch snapshot), sharded over torchrun ranks when initialised. ``params`` override the
    experiment's defaults for the profile (None = default)."""
    from . import models

    profile = require(profile)
    exp = get(name)
    params = params_for(name, profile, **params)
    model = models.load(model_name, profile, checkpoint=checkpoint)
    if profile.dataset == "imagenet":  # a wrong label arrangement / weights stop here, not in a figure
        from . import sanity

        sanity.require_accuracy(model, profile)
    key = cache_key(name, model, profile, params)
    context = exp.prepare(model_name, profile, params, checkpoint) if exp.prepare else None

    def compute_part(rank: int, size: int):
        start = time.perf_counter()
        with float32_exact():
            value = exp.compute_part(model, profile, None if size == 1 else (rank, size), context, **params)
        log_time(profile, name, model_name, time.perf_counter() - start)
        return value

    return sharded(name, model_name, key, compute_part, exp.merge, profile=profile, refresh=refresh)


def log_time(profile: Profile, experiment: str, model: str, seconds: float) -> None:
    """Append one computed result's wall time to ``<cache_dir>/timings.jsonl`` (read by
    ``book/_ext/timings.py`` after a book build). Best effort: a log that cannot be written is skipped."""
    line = json.dumps({"experiment": experiment, "model": model, "profile": profile.name, "seconds": round(seconds, 3),
                       "time": time.time(), "rank": world()[0]})
    try:
        profile.cache_dir.mkdir(parents=True, exist_ok=True)
        with open(profile.cache_dir / "timings.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        pass
