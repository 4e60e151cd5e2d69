import os
import pickle

import pytest

from curvlib import cache
from curvlib.config import get_profile


def test_miss_then_hit(tmp_cache):
    calls = []

    def compute():
        calls.append(1)
        return {"a": [1, 2, 3]}

    p = get_profile("smoke")
    assert cache.cached("exp", "resnet", {"n": 3}, compute, profile=p) == {"a": [1, 2, 3]}
    assert cache.cached("exp", "resnet", {"n": 3}, compute, profile=p) == {"a": [1, 2, 3]}
    assert len(calls) == 1
    cache.cached("exp", "resnet", {"n": 4}, compute, profile=p)  # other parameters: new entry
    cache.cached("exp", "vit", {"n": 3}, compute, profile=p)  # other model: new entry
    cache.cached("exp", "resnet", {"n": 3}, compute, profile=get_profile("embedded"))  # other profile
    assert len(calls) == 4
    cache.cached("exp", "resnet", {"n": 3}, compute, profile=p, refresh=True)
    assert len(calls) == 5


def test_key_is_order_independent_and_sensitive(tmp_cache):
    p = get_profile("smoke")
    assert cache.key("e", "m", {"a": 1, "b": 2}, p) == cache.key("e", "m", {"b": 2, "a": 1}, p)
    assert cache.key("e", "m", {"a": 1}, p) != cache.key("e", "m", {"a": 2}, p)
    assert cache.path("e", "m", {"a": 1}, p).parent.name == "e"


def test_sidecar_json_lists_parameters(tmp_cache):
    p = get_profile("smoke")
    cache.cached("exp", "m", {"n": 5, "seeds": (1, 2)}, lambda: 1, profile=p)
    side = cache.path("exp", "m", {"n": 5, "seeds": (1, 2)}, p).with_suffix(".json")
    assert '"n": 5' in side.read_text()


def test_interrupted_write_leaves_old_entry_and_no_temp(tmp_cache, monkeypatch):
    p = get_profile("smoke")
    target = cache.path("exp", "m", {}, p)
    cache.save(target, "old")

    def boom(fd):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.save(target, "new" * 1000)
    monkeypatch.undo()
    assert cache.load(target) == "old"
    assert [f.name for f in target.parent.iterdir() if f.suffix == ".tmp"] == []


def test_interrupted_compute_resumes(tmp_cache):
    """A run killed during the second model keeps the first model's result."""
    p = get_profile("smoke")
    done = []

    def run(models, fail_on=None):
        for m in models:
            def compute(m=m):
                if m == fail_on:
                    raise KeyboardInterrupt
                done.append(m)
                return m
            cache.cached("exp", m, {}, compute, profile=p)

    with pytest.raises(KeyboardInterrupt):
        run(["a", "b"], fail_on="b")
    run(["a", "b"])
    assert done == ["a", "b"]  # "a" computed once


def test_corrupt_entry_is_recomputed_with_warning(tmp_cache):
    p = get_profile("smoke")
    target = cache.path("exp", "m", {}, p)
    target.parent.mkdir(parents=True)
    target.write_bytes(pickle.dumps("x")[:3])
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.cached("exp", "m", {}, lambda: 42, profile=p) == 42
    assert cache.load(target) == 42


def test_bad_names_and_params(tmp_cache):
    p = get_profile("smoke")
    with pytest.raises(ValueError, match="without path separators"):
        cache.path("../x", "m", {}, p)
    with pytest.raises(TypeError, match="cannot be part of a cache key"):
        cache.key("e", "m", {"f": object()}, p)


def test_clear(tmp_cache):
    p = get_profile("smoke")
    cache.cached("e1", "m", {}, lambda: 1, profile=p)
    cache.cached("e2", "m", {}, lambda: 2, profile=p)
    assert cache.clear("e1", profile=p) == 1
    assert cache.clear(profile=p) == 1
