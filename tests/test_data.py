import numpy as np
import pytest
import torch

from curvlib import data
from curvlib.config import get_profile


def test_shipped_test_set():
    x, y = data.fashion_mnist("test")
    assert x.shape == (10000, 1, 32, 32) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.int64
    assert 0 <= x.min() and x.max() <= 1
    assert torch.bincount(y).tolist() == [1000] * 10
    # the 2-pixel border is zero padding
    assert x[:, :, :2].abs().max() == 0 and x[:, :, :, -2:].abs().max() == 0


def test_slice_is_prefix():
    x5, y5 = data.fashion_mnist("test", n=5)
    x, y = data.fashion_mnist("test", n=50)
    assert torch.equal(x5, x[:5]) and torch.equal(y5, y[:5])


def test_test_set_follows_profile():
    x, y = data.test_set(get_profile("smoke"), n=8)
    assert x.shape == (8, 1, 32, 32)


def test_missing_training_data_message(tmp_path, monkeypatch):
    import torchvision.datasets

    class NoNet:
        def __init__(self, *a, **k):
            raise OSError("no network")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", NoNet)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("train", root=tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        data.fashion_mnist("val")
    with pytest.raises(ValueError, match="positive integer"):
        data.fashion_mnist("test", n=0)


def test_check_pixels():
    data.check_pixels(torch.rand(2, 1, 4, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.check_pixels(torch.rand(2, 1, 4, 4) * 255)
    with pytest.raises(ValueError, match="NaN"):
        data.check_pixels(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        data.check_pixels(torch.rand(1, 4, 4))
    with pytest.raises(TypeError, match="floating point"):
        data.check_pixels(torch.ones(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty"):
        data.check_pixels(torch.rand(0, 1, 2, 2))


@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "val"
    for cls in ("n01440764", "n01443537"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            arr = rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"img{i}.png")
    return root


def test_imagefolder_pixels_and_crop(image_folder):
    ds = data.imagefolder(image_folder, input_size=224)
    x, y = data.load_tensors(ds)
    assert x.shape == (6, 3, 224, 224) and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    sub = data.imagefolder(image_folder, n=4, seed=1, input_size=64)
    xs, _ = data.load_tensors(sub)
    assert xs.shape == (4, 3, 64, 64)


def test_imagefolder_timm_config(image_folder):
    x, _ = data.load_tensors(data.imagefolder(image_folder, n=2, model_name="swin_tiny_patch4_window7_224"))
    assert x.shape == (2, 3, 224, 224)


def test_imagefolder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="CURVLIB_DATA"):
        data.imagefolder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        data.imagefolder(tmp_path / "empty")


def test_paper_profile_needs_data(monkeypatch):
    monkeypatch.delenv("CURVLIB_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="CURVLIB_DATA"):
        data.test_set(get_profile("paper"))


def test_batches_cover_the_set_in_order(image_folder, monkeypatch):
    x, y = data.fashion_mnist("test", n=10)
    got = list(data.batches(get_profile("smoke"), n=10, batch_size=4))
    assert [len(b[0]) for b in got] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in got]), x) and torch.equal(torch.cat([b[1] for b in got]), y)
    monkeypatch.setenv("CURVLIB_DATA", str(image_folder))
    got = list(data.batches(get_profile("paper"), n=5, model_name="resnet50", batch_size=2, num_workers=0))
    assert [tuple(b[0].shape) for b in got] == [(2, 3, 224, 224), (2, 3, 224, 224), (1, 3, 224, 224)]


def test_shipped_data_stays_within_60_mb():
    """Issue #3: everything shipped under data/ (tracked by git) together ≤ 60 MB."""
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(["git", "ls-files", "-z", "data"], cwd=repo, capture_output=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    files = [repo / f for f in r.stdout.decode().split("\0") if f]
    total = sum(f.stat().st_size for f in files if f.exists())
    assert len(files) > 10 and total <= 60_000_000, f"data/ ships {total / 1e6:.2f} MB"
