"""The experiment registry: one registration per experiment, one key recipe, uniform sharding."""
import dataclasses
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from curvlib import cli, data, experiments, runner
from curvlib.config import get_profile
from curvlib.runner.registration import _EXPERIMENTS


def test_registry_holds_the_book_s_experiments_in_order():
    exps = experiments.registry()
    assert list(exps) == ["calibration", "robustness", "travel", "travel_check", "theta", "theta_step", "curvature",
                          "random_jump", "random_jump_relative", "jump_path", "mesh", "attention", "surgery_path",
                          "surgery_travel", "surgery_turning"]
    for e in exps.values():  # mesh: its grid comes from every model's travel, so no call can be registered ahead
        assert (e.calls or e.name == "mesh") and callable(e.compute_part) and callable(e.merge)
    assert [c["kind"] for c in exps["travel"].calls] == ["fgsm", "random"]
    assert exps["travel_check"].calls == exps["travel"].calls  # every travel entry the chapter reads is checked


def test_every_key_names_the_data_the_weights_and_the_code(tmp_path):
    """The same recipe for every experiment: a result for one data folder is never served for
    another (the θ key used to lack the data path)."""
    from PIL import Image

    for folder, value in (("a", 0), ("b", 255)):  # two folders with other images
        (tmp_path / folder / "n01440764").mkdir(parents=True)
        Image.new("RGB", (8, 8 + value % 7)).save(tmp_path / folder / "n01440764" / "0.png")
    a = get_profile("paper", env={}, device="cpu", data_dir=tmp_path / "a")
    b = a.replace(data_dir=tmp_path / "b")
    model = SimpleNamespace(fingerprint="w1")
    for name in experiments.registry():
        ka = runner.cache_key(name, model, a, runner.params_for(name, a))
        kb = runner.cache_key(name, model, b, runner.params_for(name, b))
        assert ka["data"] == data.folder_identity(tmp_path / "a") != kb["data"], name
        assert ka["weights"] == "w1" and len(ka["code"]) == 16 and ka["dataset"] == "imagenet"
        assert runner.cache_key(name, SimpleNamespace(fingerprint="w2"), a, runner.params_for(name, a)) != ka


def test_autocast_is_in_the_key_only_where_it_applies():
    p = get_profile("smoke", env={}).replace(autocast="bf16")
    model = SimpleNamespace(fingerprint="w")
    keys = {n: runner.cache_key(n, model, p, runner.params_for(n, p)) for n in experiments.registry()}
    assert {n for n, k in keys.items() if k.get("autocast") == "bf16"} == {"calibration", "theta"}


def test_parameters_default_from_the_profile_and_reject_unknown_names():
    p = get_profile("smoke", env={})
    assert runner.params_for("travel", p)["n"] == p.n_travel
    assert runner.params_for("travel", p, n=None, kind="random")["kind"] == "random"
    assert runner.params_for("theta", p)["n_directions"] == p.n_directions
    with pytest.raises(TypeError, match="experiment 'travel' has no parameter.*n_steps"):
        runner.params_for("travel", p, n_steps=3)
    with pytest.raises(ValueError, match="unknown experiment 'nope'"):
        runner.get("nope")


def test_code_fingerprint_ignores_docstrings_and_comments_only():
    src = 'def f(x):\n    """Doc."""\n    return x + 1  # one\n'
    same = 'def f(x):\n    """Other words."""\n    # a comment\n    return x + 1\n'
    other = 'def f(x):\n    """Doc."""\n    return x + 2\n'
    assert runner.source_fingerprint(src) == runner.source_fingerprint(same)
    assert runner.source_fingerprint(src) != runner.source_fingerprint(other)
    assert runner.code_fingerprint(("measure.travel",)) != runner.code_fingerprint(("measure.calibration",))


#: Source with what Python versions tokenize or dump differently: f-strings (split into pieces from
#: 3.12), nested f-strings, generic-free defs and classes (3.12's ast.dump adds type_params), and
#: non-ASCII text before a docstring (ast counts bytes, tokenize characters).
VERSIONED = (
    'class C:\n    """Doc ε."""\n    x = 1\n\n\n'
    'def f(θ, w=3):  # ε\n    """Doc θ."""\n    s = f"{θ!r:>{w}} {f\'{w}\'} é"\n'
    '    return (s,\n            "plain" "joined")\n')


def test_source_fingerprint_is_the_same_on_every_python_version():
    """Pinned: the value Python 3.11 (here) and Python 3.12 (the GPU machine) both give."""
    assert runner.source_fingerprint(VERSIONED) == "69793c364b7536ed"


def test_source_fingerprint_ignores_layout_but_not_code():
    base = runner.source_fingerprint(VERSIONED)
    relaid = VERSIONED.replace("(s,\n            ", "(s, ").replace("x = 1\n", "x = 1\n\n# note\n")
    assert runner.source_fingerprint(relaid) == base
    undocumented = VERSIONED.replace('    """Doc θ."""\n', "")
    assert runner.source_fingerprint(undocumented) == base
    for changed in (VERSIONED.replace("w=3", "w=4"), VERSIONED.replace(":>{w}", ":<{w}"),
                    VERSIONED.replace('"plain"', '"Plain"'), VERSIONED.replace("    x = 1", "    x = 1\n    y = 2")):
        assert runner.source_fingerprint(changed) != base, changed


@pytest.fixture
def toy_experiment():
    calls = []

    @dataclasses.dataclass(frozen=True)
    class ToyParams:
        n: int = 3
        offset: int = 0

    @runner.experiment("toy", params=ToyParams, calls=({}, {"offset": 10}),
                       summary=lambda df: f"sum {int(df.value.sum())}")
    def _toy(model, profile, shard, context, *, n, offset):
        calls.append(shard)
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        rank, size = shard or (0, 1)
        idx = list(range(rank, n, size))
        return pd.DataFrame({"index": idx, "value": [i + offset for i in idx]})

    yield calls
    _EXPERIMENTS.pop("toy")


def test_a_registered_experiment_is_cached_and_reachable_from_the_cli(toy_experiment, tmp_path, capsys):
    p = get_profile("smoke", env={}, cache_dir=tmp_path, device="cpu")
    tf32 = torch.backends.cudnn.allow_tf32
    df = runner.run("toy", "resnet", p)  # computed in full float32 (no TF32 on a GPU: see float32_exact)
    assert df.value.tolist() == [0, 1, 2] and toy_experiment == [None]
    runner.run("toy", "resnet", p)  # cached
    assert toy_experiment == [None]
    assert torch.backends.cudnn.allow_tf32 == tf32  # restored after the computation
    # no if-chain: the CLI dispatches whatever the registry holds, with each registered call
    assert cli.main(["run", "toy", "--profile", "smoke", "--cache", str(tmp_path), "--device", "cpu",
                     "--models", "resnet"]) == 0
    assert "sum 3; sum 33" in capsys.readouterr().out and len(toy_experiment) == 2


def test_attention_is_sharded_like_every_other_experiment():
    """Two shards of the attention experiment merge into the one-process result."""
    from curvlib import models
    from curvlib.measure import attention as at

    p = get_profile("smoke", env={}, device="cpu")
    exp = runner.get("attention")
    params = {"n": 4, "eps": 0.02}
    for name in ("vit", "swin"):  # Swin's window attention: several rows (windows) per image
        model = models.load(name, p)
        whole = exp.merge([exp.compute_part(model, p, None, None, **params)], params)
        parts = [exp.compute_part(model, p, (r, 2), None, **params) for r in range(2)]
        assert sorted(parts[0]["sample"].unique()) == [0, 2] and sorted(parts[1]["sample"].unique()) == [1, 3]
        split = exp.merge(parts, params)
        pd.testing.assert_frame_equal(whole, split, rtol=1e-5, atol=1e-6)  # merged into one order
        pd.testing.assert_frame_equal(at.summarise_defects(whole), at.summarise_defects(split), rtol=1e-5, atol=1e-6)
        assert (whole.model == name).all() and {"attention scores", "softmax", "attention"} <= set(whole.component)


def test_an_experiment_computes_with_freed_buffers_kept_and_trims_after(toy_experiment, tmp_path, monkeypatch):
    """runner.allocator around every computed result: thresholds raised before, the heap trimmed after (also
    when the computation fails); a cached result touches neither."""
    from curvlib.runner import execute

    seen = []
    monkeypatch.setattr(execute, "keep_freed_memory", lambda: seen.append("keep"))
    monkeypatch.setattr(execute, "release_freed_memory", lambda: seen.append("release"))
    p = get_profile("smoke", env={}, cache_dir=tmp_path, device="cpu")
    runner.run("toy", "resnet", p)
    assert seen == ["keep", "release"]
    runner.run("toy", "resnet", p)  # cached
    assert seen == ["keep", "release"]
    with pytest.raises(TypeError):
        runner.run("toy", "resnet", p, n="three")
    assert seen == ["keep", "release", "keep", "release"]
