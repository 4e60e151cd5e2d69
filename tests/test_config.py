import ast
from pathlib import Path

import pytest

from curvlib import config
from curvlib.config import EMBEDDED_MODELS, PAPER_MODELS, PROFILE_NAMES, Profile, get_profile, parse_checkpoints


def test_default_profile_is_embedded():
    p = get_profile(env={})
    assert p.name == "embedded" and p.dataset == "fashion-mnist" and p.models == EMBEDDED_MODELS
    assert p.model_dir == config.MODEL_DIR and p.cache_dir == config.DEFAULT_CACHE and p.autocast is None
    assert p.weights == "pretrained" and p.checkpoints == () and p.data_dir is None


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("CURVLIB_PROFILE", "paper")
    p = get_profile()
    assert p.name == "paper" and p.models == PAPER_MODELS and p.n_directions == 1000


def test_every_setting_comes_from_one_environment(tmp_path):
    env = {"CURVLIB_PROFILE": "paper", "CURVLIB_CACHE": str(tmp_path / "c"), "CURVLIB_DEVICE": "cpu",
           "CURVLIB_DATA": str(tmp_path / "val"), "CURVLIB_MODEL_DIR": str(tmp_path / "m"),
           "CURVLIB_SEED_DIR": str(tmp_path / "s"),
           "CURVLIB_CHECKPOINTS": "resnet50=/w/r.pth, vit_base_patch16_224=/w/v.safetensors",
           "CURVLIB_WEIGHTS": "random", "CURVLIB_AUTOCAST": "bf16", "CURVLIB_SIZES": "n_travel=9",
           "CURVLIB_CHECK_ACCURACY": "0", "CURVLIB_HASH_DATA": "1", "CURVLIB_SEARCH": "careful"}
    assert set(env) == set(config.ENV)  # the documented variables are exactly the ones read
    p = get_profile(env=env)
    assert (p.name, p.cache_dir, p.device, p.data_dir, p.model_dir, p.seed_dir) == (
        "paper", tmp_path / "c", "cpu", tmp_path / "val", tmp_path / "m", tmp_path / "s")
    assert p.checkpoints == (("resnet50", "/w/r.pth"), ("vit_base_patch16_224", "/w/v.safetensors"))
    assert p.checkpoint_for("resnet50") == "/w/r.pth" and p.checkpoint_for("swin") is None
    assert (p.weights, p.autocast, p.n_travel, p.check_accuracy, p.hash_data, p.search) == (
        "random", "bf16", 9, False, True, "careful")
    with pytest.raises(ValueError, match="search must be one of default, careful"):
        get_profile(env={"CURVLIB_SEARCH": "fast"})
    for var in config.ENV:  # each documented variable is named in the module docstring
        assert var in config.__doc__


def test_overrides_win_over_the_environment(tmp_path):
    p = get_profile("smoke", env={"CURVLIB_DEVICE": "cuda:3"}, device="cpu", cache_dir=tmp_path)
    assert p.device == "cpu" and p.cache_dir == tmp_path
    with pytest.raises(TypeError, match="unknown or fixed profile fields"):
        get_profile("smoke", env={}, colour="red")


@pytest.mark.parametrize("env, match", [
    ({"CURVLIB_PROFILE": "ImageNet"}, "unknown profile 'ImageNet'.*embedded, smoke, paper"),
    ({"CURVLIB_AUTOCAST": "fp8"}, "CURVLIB_AUTOCAST must be 'bf16'"),
    ({"CURVLIB_WEIGHTS": "imagenet"}, "weights must be one of pretrained, random"),
    ({"CURVLIB_CHECKPOINTS": "resnet50"}, "name=path"),
    ({"CURVLIB_CHECKPOINTS": "=x.pth"}, "name=path"),
])
def test_bad_settings_have_clear_errors(env, match):
    with pytest.raises(ValueError, match=match):
        get_profile(env=env)


def test_all_profiles_build():
    for name in PROFILE_NAMES:
        p = get_profile(name, env={})
        assert p.batch_size > 0 and p.n_steps > 0 and p.device and isinstance(p, Profile)


def test_smoke_is_smaller_than_embedded():
    s, e = get_profile("smoke", env={}), get_profile("embedded", env={})
    assert s.n_travel < e.n_travel and s.n_directions < e.n_directions


def test_replace_validates():
    p = get_profile("smoke", env={})
    assert p.replace(n_travel=7).n_travel == 7
    with pytest.raises(ValueError, match="n_travel must be a positive integer"):
        p.replace(n_travel=0)
    with pytest.raises(ValueError, match="autocast must be None or 'bf16'"):
        p.replace(autocast="fp16")
    with pytest.raises(ValueError, match="models must be a non-empty tuple"):
        p.replace(models=())
    with pytest.raises(TypeError, match="cache_dir must be a pathlib.Path"):
        p.replace(cache_dir="/tmp/x")


def test_parse_checkpoints():
    assert parse_checkpoints("") == () and parse_checkpoints(None) == ()
    assert parse_checkpoints({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))


def test_get_profile_is_the_only_reader_of_the_environment():
    """No library module but config reads os.environ / os.getenv (runner.distributed reads only
    torchrun's own WORLD_SIZE / LOCAL_RANK), and none writes it."""
    root = Path(config.__file__).parent
    distributed = root / "runner" / "distributed.py"
    for f in root.rglob("*.py"):
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv"):
                if f.name == "config.py":
                    continue
                assert f == distributed, f"{f.name}:{node.lineno} reads the environment"
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and f.name != "config.py":
                assert not node.value.startswith("CURVLIB_"), f"{f.name}:{node.lineno} names {node.value}"
    runner_src = distributed.read_text()
    assert set(__import__("re").findall(r'environ\.get\("(\w+)"', runner_src)) == {"WORLD_SIZE", "LOCAL_RANK"}


def test_library_functions_need_a_profile():
    from curvlib import data, models
    from curvlib.experiments import calibration, travel

    for call in (lambda: data.test_set(None, n=2), lambda: models.load("resnet", None),
                 lambda: calibration.predictions("resnet", None),
                 lambda: travel.travel_experiment("resnet", kind="fgsm")):
        with pytest.raises(TypeError, match="expected a curvlib Profile"):
            call()
