import matplotlib
import pytest

matplotlib.use("Agg")  # in-process plots only; notebook kernels keep their inline backend


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An isolated results cache for the active profile."""
    monkeypatch.setenv("CURVLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CURVLIB_DEVICE", "cpu")
    return tmp_path / "cache"
