import pytest

from curvlib.config import EMBEDDED_MODELS, PAPER_MODELS, PROFILE_NAMES, get_profile


def test_default_profile_is_embedded(monkeypatch):
    monkeypatch.delenv("CURVLIB_PROFILE", raising=False)
    p = get_profile()
    assert p.name == "embedded" and p.dataset == "fashion-mnist" and p.models == EMBEDDED_MODELS


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("CURVLIB_PROFILE", "paper")
    p = get_profile()
    assert p.name == "paper" and p.models == PAPER_MODELS and p.n_directions == 1000


def test_all_profiles_build():
    for name in PROFILE_NAMES:
        p = get_profile(name)
        assert p.batch_size > 0 and p.n_steps > 0 and p.device


def test_smoke_is_smaller_than_embedded():
    s, e = get_profile("smoke"), get_profile("embedded")
    assert s.n_travel < e.n_travel and s.n_directions < e.n_directions


def test_unknown_profile_has_clear_error(monkeypatch):
    monkeypatch.setenv("CURVLIB_PROFILE", "ImageNet")
    with pytest.raises(ValueError, match="unknown profile 'ImageNet'.*embedded, smoke, paper"):
        get_profile()


def test_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("CURVLIB_CACHE", str(tmp_path))
    monkeypatch.setenv("CURVLIB_DEVICE", "cpu")
    monkeypatch.setenv("CURVLIB_DATA", str(tmp_path / "val"))
    p = get_profile("paper")
    assert p.cache_dir == tmp_path and p.device == "cpu" and p.data_dir == tmp_path / "val"


def test_replace_validates():
    p = get_profile("smoke")
    assert p.replace(n_travel=7).n_travel == 7
    with pytest.raises(ValueError, match="n_travel must be a positive integer"):
        p.replace(n_travel=0)
