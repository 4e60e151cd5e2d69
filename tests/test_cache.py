import io
import json
import math
import os
import pickle
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch

from curvlib import cache, runner
from curvlib.config import get_profile
from curvlib.measure.angles import theta_summary
from curvlib.measure.travel import STATUSES


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
    assert cache.path("e", "m", {"a": 1}, p).suffix == cache.SUFFIX == ".npz"


def test_the_entry_records_its_parameters(tmp_cache):
    p = get_profile("smoke")
    cache.cached("exp", "m", {"n": 5, "seeds": (1, 2)}, lambda: 1, profile=p)
    stored = cache.describe(cache.path("exp", "m", {"n": 5, "seeds": (1, 2)}, p))
    assert stored["params"] == {"n": 5, "seeds": [1, 2]}


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
    cache.save(target, {"a": np.arange(100)})
    target.write_bytes(target.read_bytes()[:-40])  # truncated
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.cached("exp", "m", {}, lambda: 42, profile=p) == 42
    assert cache.load(target) == 42


def test_bad_names_and_params(tmp_cache):
    p = get_profile("smoke")
    with pytest.raises(ValueError, match="without path separators"):
        cache.path("../x", "m", {}, p)
    with pytest.raises(TypeError, match="cannot be part of a cache key"):
        cache.key("e", "m", {"f": object()}, p)


def test_profile_is_required(tmp_cache):
    for call in (lambda: cache.key("e", "m", {}, None), lambda: cache.path("e", "m", {}, None),
                 lambda: cache.cached("e", "m", {}, lambda: 1, profile=None), lambda: cache.clear("e", profile=None)):
        with pytest.raises(TypeError, match="needs a profile"):
            call()
    with pytest.raises(TypeError, match="profile"):
        cache.cached("e", "m", {}, lambda: 1)


def test_clear(tmp_cache):
    p = get_profile("smoke")
    cache.cached("e1", "m", {}, lambda: 1, profile=p)
    cache.cached("e2", "m", {}, lambda: 2, profile=p)
    legacy = cache.path("e2", "old", {}, p).with_suffix(".pkl")  # an entry of an older curvlib
    legacy.write_bytes(b"not read")
    legacy.with_suffix(".json").write_text("{}")
    assert cache.clear("e1", profile=p) == 1
    assert cache.clear(profile=p) == 2
    assert [f for f in tmp_cache.rglob("*") if f.is_file()] == []


# ---------------------------------------------------------------------------------------------
# Data-only format: what the experiments return round-trips exactly; nothing else is stored or read

def _travel_like(n=5):  # travel / calibration: numeric, bool, NaN, Categorical status, str columns
    rng = np.random.default_rng(0)
    eps = rng.random(n)
    eps[[1, 3]] = np.nan
    return pd.DataFrame({
        "index": np.arange(n), "label": rng.integers(0, 10, n), "pred": torch.arange(n).numpy(),
        "confidence": rng.random(n).astype(np.float32).astype(np.float64), "eps": eps,
        "status": pd.Categorical(np.array(["crossed", "never", "misclassified_at_start", "never", "crossed"])[:n],
                                 categories=STATUSES),
        "new_class": np.full(n, -1), "passes": np.arange(n, dtype=np.int32), "correct": np.arange(n) % 2 == 0,
        "f32": np.linspace(0, 1, n, dtype=np.float32)}).assign(model="vit_tiny", kind="fgsm")


def _values():
    tr = _travel_like()
    jump = pd.DataFrame({"index": np.arange(5), "status_direct": tr.status.to_numpy(),  # str, as jump_travel
                         "eps_direct": tr.eps.to_numpy(), "jump_correct": tr.correct.to_numpy(), "eps_r": 0.05})
    th = torch.randn(3, 2, 4)
    th[0, 0, 1] = float("nan")
    attention = pd.DataFrame([{"layer": "blocks.0.attn", "component": "softmax", "depth": 0, "defect": 0.5,
                               "bend": float("nan"), "p_norm": 1e-3}]).assign(model="vit")
    odd = pd.DataFrame({"obj": pd.Series(["a", None, np.nan, "é\x00"], dtype=object),
                        "na": pd.Series(["x", None, "y", ""], dtype="string"),
                        "ordered": pd.Categorical([3, 1, 3, 1], categories=[3, 1], ordered=True)})
    return {
        "travel": tr, "calibration": tr.drop(columns=["status", "model", "kind"]),
        "merged": runner.concat_frames([tr.iloc[[1, 3]].reset_index(drop=True),  # torchrun parts
                                        tr.iloc[[0, 2, 4]].reset_index(drop=True)]),
        "jump": jump, "attention": attention, "attention_empty": pd.DataFrame([]).assign(model="vit"),
        "travel_empty": tr.iloc[:0].reset_index(drop=True), "no_columns": pd.DataFrame(), "odd": odd,
        "theta": {"theta": th, "eps": torch.linspace(-0.1, 0.1, 6), "summary": theta_summary(th)},
        "tensors": [torch.tensor([True, False]), torch.arange(6, dtype=torch.int8).reshape(2, 3)[:, 1:],
                    torch.randn(3, dtype=torch.float16), torch.randn(2, dtype=torch.complex64), torch.tensor(7),
                    torch.randn(4, dtype=torch.bfloat16), torch.randn(3, dtype=torch.float64)],
        "arrays": (np.arange(6, dtype=np.uint16).reshape(2, 3), np.array(["ab", "c"]), np.float32(1.5), np.int64(-3),
                   np.array([], dtype=np.float64), np.array([True])),
        "scalars": {"i": 2 ** 70, "f": 0.1, "nan": float("nan"), "inf": float("-inf"), "s": "ü", "b": False,
                    "none": None, "nested": {"": [1, (2.5, "x")]}},
    }


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        for c in a.columns[a.dtypes == np.dtype(object)]:  # None stays None, NaN stays NaN
            assert [type(x) for x in a[c]] == [type(x) for x in b[c]]
    elif isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)  # dtype and shape too
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_experiment_values_round_trip_exactly(tmp_path):
    values = _values()
    assert values["jump"].status_direct.dtype == values["travel"].model.dtype  # str columns, whichever dtype
    for name, v in values.items():
        cache.save(tmp_path / f"{name}.npz", v)
        _assert_same(v, cache.load(tmp_path / f"{name}.npz"))
    cache.save(tmp_path / "all.npz", values, {"n": 1})
    _assert_same(values, cache.load(tmp_path / "all.npz"))
    with zipfile.ZipFile(tmp_path / "all.npz") as z:  # data only: .npy arrays and a JSON schema
        assert all(n.endswith(".npy") for n in z.namelist()) and "__meta__.npy" in z.namelist()
    meta = json.loads(np.load(tmp_path / "all.npz", allow_pickle=False)["__meta__"].tobytes())
    assert meta["version"] == cache.FORMAT_VERSION


class Custom:
    pass


@pytest.mark.parametrize("value, where, what", [
    ({"summary": {"x": Custom()}}, r"value\['summary'\]\['x'\]", "Custom"),
    ([1, np.array([1, "a"], dtype=object)], r"value\[1\]", "ndarray"),
    ({"a": {1: 2}}, r"value\['a'\]", "key 1 of type int"),
    ({"df": pd.DataFrame({"o": pd.Series(["a", 3], dtype=object)})}, r"value\['df'\]\['o'\]\[1\]", "int"),
    (pd.DataFrame({"a": [1, 2]}, index=[3, 4]), r"value", "RangeIndex"),
    (pd.DataFrame({"a": pd.array([1, None], dtype="Int64")}), r"value\['a'\]", "Int64"),
    ((torch.nn.Parameter(torch.ones(1)),), r"value\[0\]", "Parameter"),
    ({"s": {1, 2}}, r"value\['s'\]", "set"),
])
def test_save_refuses_other_types_and_writes_nothing(tmp_path, value, where, what):
    target = tmp_path / "e" / "x.npz"
    with pytest.raises(TypeError, match=where) as e:
        cache.save(target, value, {"n": 1})
    assert what in str(e.value)
    assert not tmp_path.joinpath("e").exists() or list(tmp_path.joinpath("e").iterdir()) == []


def _malicious_pickle(marker) -> bytes:
    class Boom:
        def __reduce__(self):
            return open, (str(marker), "w")  # unpickling creates the marker file
    return pickle.dumps(Boom())


def test_pickles_are_never_loaded(tmp_cache, tmp_path):
    probe = tmp_path / "probe"
    pickle.loads(_malicious_pickle(probe)).close()
    assert probe.exists()  # the payload works when unpickled
    marker = tmp_path / "marker"
    p = get_profile("smoke")
    target = cache.path("exp", "m", {}, p)
    target.parent.mkdir(parents=True)
    target.write_bytes(_malicious_pickle(marker))  # a pickle at the entry's path
    with pytest.raises(ValueError, match="not a curvlib cache entry") as e:
        cache.load(target)
    assert str(target) in str(e.value)
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.cached("exp", "m", {}, lambda: 42, profile=p) == 42
    legacy = target.with_suffix(".pkl")  # an old entry copied from another machine
    legacy.write_bytes(_malicious_pickle(marker))
    with pytest.raises(ValueError, match="never loaded"):
        cache.load(legacy)
    assert cache.cached("exp", "m", {}, lambda: 0, profile=p) == 42
    assert not marker.exists()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _npz(path, meta, **arrays):
    buf = io.BytesIO()
    if meta is not None:
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    return path


def test_load_refuses_what_is_not_an_entry(tmp_path):
    good = tmp_path / "good.npz"
    cache.save(good, {"x": torch.ones(3)})
    meta = json.loads(np.load(good)["__meta__"].tobytes())
    bad = {
        "truncated": lambda p: p.write_bytes(good.read_bytes()[:60]),
        "garbage": lambda p: p.write_bytes(b"PK\x03\x04" + bytes(range(64))),
        "empty": lambda p: p.write_bytes(b""),
        "npy": lambda p: p.write_bytes(_npy(np.ones(3))),
        "no_meta": lambda p: _npz(p, None, a0=np.ones(3)),
        "version": lambda p: _npz(p, {**meta, "version": 99}, a0=np.ones(3)),
        "object_array": lambda p: _npz(p, {**meta, "value": {"t": "ndarray", "a": "a0"}},
                                       a0=np.array([Custom()], dtype=object)),
        "schema": lambda p: _npz(p, {**meta, "value": {"t": "tensor", "a": "a0", "dtype": "nonsense"}},
                                 a0=np.ones(3)),
        "dangling": lambda p: _npz(p, meta),
    }
    for name, write in bad.items():
        target = tmp_path / f"{name}.npz"
        write(target)
        with pytest.raises(ValueError, match=re.escape(str(target))) as e:
            cache.load(target)
        if name == "version":
            assert "version 99" in str(e.value)


def test_two_processes_asking_for_one_missing_entry_compute_it_once(tmp_path):
    """Parallel workers share the cache: the second process waits on the first one's lock and reads its entry."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from curvlib import cache
        from curvlib.config import get_profile
        p = get_profile("smoke", env={{}}, device="cpu").replace(cache_dir=Path({str(tmp_path)!r}))
        def compute():
            with open({str(tmp_path / "calls")!r}, "a") as f:
                f.write("x")
            time.sleep(4)
            return {{"v": [1, 2]}}
        print(cache.cached("exp", "resnet", {{"n": 1}}, compute, profile=p))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1] == "{'v': [1, 2]}\n"
    assert (tmp_path / "calls").read_text() == "x"
