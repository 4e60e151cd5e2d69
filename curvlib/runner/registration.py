"""The experiment registry: it only registers and looks up (``curvlib.experiments`` registers the
book's experiments when imported; :mod:`curvlib.runner.execute` runs them).

An experiment is registered once (:func:`experiment`) with

- ``compute_part(model, profile, shard, context, **params)``: its share of the images or directions
  (``shard = (rank, world)``: every ``world``-th item starting at ``rank``; ``None`` on one process);
- ``merge(parts, params)``: the parts back into the one result a single process would have computed;
- ``params``: a frozen dataclass of its parameters and their defaults (:func:`from_profile` marks a
  default the profile sets) — the one place they are defined; with the data, the weights and the
  code they make its key;
- optionally ``prepare``: results it needs from other experiments, computed on every rank first.

Its code is the module that registers it and every curvlib module that one imports
(:func:`curvlib.runner.fingerprint.module_closure`): nothing to list by hand.

:func:`~curvlib.runner.execute.run` is the one way to compute one: it loads the model, builds the
cache key the same way for every experiment — parameters + ``data.data_identity(profile)`` + the
weights' fingerprint + a fingerprint of the library code the experiment runs (+ the autocast mode
where it applies) — and shards uniformly. Under ``torchrun --nproc-per-node N`` every rank writes its part next to the
final cache entry (atomically, so an interrupted run resumes), rank 0 merges the parts under the
same key and the others wait for it. The book then reads that entry on any machine.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Profile
from .distributed import concat_frames


def from_profile(rule: str | Callable[[Profile], Any]):
    """A parameter whose default the profile sets: ``rule`` names a :class:`Profile` field, or
    computes the value from the profile. Given explicitly (not None), the value is kept."""
    return dataclasses.field(default=None, metadata={"profile": rule})


def resolve(params, profile: Profile) -> dict:
    """The parameters of dataclass instance ``params`` as a dict, profile-set defaults filled in."""
    out = {}
    for f in dataclasses.fields(params):
        v = getattr(params, f.name)
        rule = f.metadata.get("profile")
        if v is None and rule is not None:
            v = getattr(profile, rule) if isinstance(rule, str) else rule(profile)
        out[f.name] = v
    return out


@dataclass(frozen=True)
class Experiment:
    """One registered experiment (see the module docstring)."""

    name: str
    compute_part: Callable[..., Any]
    params: type  #: frozen dataclass: the parameters and their defaults
    merge: Callable[[list, dict], Any] = concat_frames  #: (parts, params) → result
    prepare: Callable[..., Any] | None = None  #: (model_name, profile, params, checkpoint) → context
    autocast: bool = False  #: forward-only: may run under the profile's autocast (then in the key)
    calls: tuple[dict, ...] = ({},)  #: the chapters' calls (parameter overrides) ``curvlib run`` makes
    summary: Callable[[Any], str] = str  #: one line about a result, for the CLI

    @property
    def module(self) -> str:
        """The module that registered it (its code, with what it imports, is part of the key)."""
        return self.compute_part.__module__


_EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, *, params: type, **kw):
    """Decorator: register ``compute_part`` as experiment ``name`` with parameter dataclass ``params``
    (other keywords: :class:`Experiment`'s)."""
    if not (dataclasses.is_dataclass(params) and params.__dataclass_params__.frozen):
        raise TypeError(f"experiment {name!r}: params must be a frozen dataclass, got {params!r}")

    def deco(fn):
        if name in _EXPERIMENTS:
            raise ValueError(f"experiment {name!r} registered twice")
        _EXPERIMENTS[name] = Experiment(name, fn, params, **kw)
        return fn
    return deco


def registered() -> dict[str, Experiment]:
    """The experiments registered so far, by name, in registration order."""
    return dict(_EXPERIMENTS)


def get(name: str) -> Experiment:
    """The experiment registered as ``name``."""
    if name not in _EXPERIMENTS:
        known = ", ".join(_EXPERIMENTS) or "none (import curvlib.experiments to register the book's)"
        raise ValueError(f"unknown experiment {name!r}; registered: {known}")
    return _EXPERIMENTS[name]


def params_for(name: str, profile: Profile, **params) -> dict:
    """The experiment's parameters for ``profile``: its dataclass's defaults, updated by the
    non-None ``params`` (a name the dataclass lacks is an error that lists the ones it has)."""
    cls = get(name).params
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = set(params) - set(known)
    if unknown:
        raise TypeError(f"experiment {name!r} has no parameter(s) {', '.join(sorted(unknown))}; "
                        f"its parameters are {', '.join(known)}")
    return resolve(cls(**{k: v for k, v in params.items() if v is not None}), profile)
