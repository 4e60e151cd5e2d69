import gzip
import os

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


def _seconds(item) -> float:
    """A slow test's rough duration on one core (``@pytest.mark.slow(seconds=…)``; 10 where it gives none)."""
    slow = item.get_closest_marker("slow")
    return slow.kwargs.get("seconds", 10) if slow else 0


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have removed tests: the blocks are of what runs
def pytest_collection_modifyitems(config, items):
    """The slow end-to-end tests first, longest first (``@pytest.mark.slow(seconds=…)``: a rough duration on one
    core), stable otherwise, so the long ones run beside the many short ones instead of after them.

    In xdist workers (``make unit``: ``--dist worksteal``) each worker is handed one contiguous block of this
    order, and an idle worker takes tests only from the *end* of another's block: the slow tests are therefore
    spread over the blocks' fronts (each to the block with the fewest slow seconds so far), not all put in the
    first block, where they would run one after another. (Workers see ``--dist`` as "no": the split assumed is
    worksteal's.)"""
    slow = sorted((i for i in items if i.get_closest_marker("slow")), key=lambda i: -_seconds(i))
    fast = [i for i in items if not i.get_closest_marker("slow")]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or len(items) < 2 * workers:
        items[:] = slow + fast
        return
    sizes, left = [], len(items)  # xdist's first split: each worker len(pending) // workers still to serve
    for k in range(workers):
        sizes.append(left // (workers - k))
        left -= sizes[-1]
    blocks, load = [[] for _ in sizes], [0.0] * workers
    for item in slow:
        k = min((k for k in range(workers) if len(blocks[k]) < sizes[k]), key=lambda k: (load[k], len(blocks[k])))
        blocks[k].append(item)
        load[k] += _seconds(item)
    rest = iter(fast)
    items[:] = [i for k, block in enumerate(blocks) for i in block + [next(rest) for _ in range(sizes[k] - len(block))]]


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
