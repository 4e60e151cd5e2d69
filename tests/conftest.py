import gzip

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")  # in-process plots only; notebook kernels keep their inline backend


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An isolated results cache for the active profile."""
    monkeypatch.setenv("CURVLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CURVLIB_DEVICE", "cpu")
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def no_fashion_train_set(tmp_path_factory, monkeypatch):
    """No test reads the real Fashion-MNIST training set or downloads it: its default location is
    an empty folder and torchvision's downloader fails. Training tests use ``fashion_train_root``."""
    import torchvision.datasets

    from curvlib import data

    class Offline:
        def __init__(self, *a, **k):
            raise OSError("tests run offline")

    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path_factory.getbasetemp() / "no-fashion-train")
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", Offline)


def _write_idx(path, array: np.ndarray) -> None:
    """uint8 array → idx file (the format of the Fashion-MNIST .gz files)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture(scope="session")
def fashion_train_root(tmp_path_factory):
    """A small stand-in training set (idx .gz files): the first 512 images of the shipped test set."""
    from curvlib.data import SHIPPED_TEST

    z = np.load(SHIPPED_TEST)
    root = tmp_path_factory.mktemp("fashion-train")
    _write_idx(root / "train-images-idx3-ubyte.gz", z["images"][:512])
    _write_idx(root / "train-labels-idx1-ubyte.gz", z["labels"][:512])
    return root


def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first, longest first (``@pytest.mark.slow(seconds=…)``: a rough duration on one
    core), stable otherwise: with several xdist workers the long ones then run beside the many short ones
    instead of after them."""
    def order(item):
        slow = item.get_closest_marker("slow")
        return (slow is None, -(slow.kwargs.get("seconds", 0) if slow else 0))
    items.sort(key=order)


MYST_CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# {title}

```{{code-cell}} ipython3
{code}
```
"""


@pytest.fixture
def myst_chapter():
    """``(title, code) → text``: a MyST-Markdown notebook with one code cell, as Jupyter Book reads a chapter."""
    return lambda title, code: MYST_CHAPTER.format(title=title, code=code)
