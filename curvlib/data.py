"""Datasets as float32 pixels in [0, 1] (normalisation lives inside the models).

- Fashion-MNIST (embedded profile): ``[N, 1, 32, 32]``, the 28×28 images zero-padded by 2.
  The 10,000-image test set ships in ``data/fashion-mnist/`` (MIT licence); the 60,000-image
  train set (only needed to retrain) is read from Debian's ``dataset-fashion-mnist`` package
  or downloaded by torchvision.
- ImageNet-labelled folders (paper profiles): one sub-folder per class, named by its WordNet id
  (``n01440764``: ImageNet val, Imagenette, any class subset) or by its ImageNet-1k index
  (``0`` … ``999``: ImageNet-V2); labels are ImageNet-1k indices whatever subset is present
  (:func:`imagenet_class_index`). Resized and centre-cropped per timm's data config, ``[N, 3, S, S]``.

Image folders are read strictly (:func:`scan_folder`): symbolic links are followed but never in a
loop, each image file is counted once (by its real path), two class folders that are the same
folder or share a file are refused naming both, a class folder that cannot be listed is named, and
an image that cannot be decoded (truncated, not an image) stops the run with :class:`ImageReadError`
naming the file — it is not skipped, so every model sees the same images. 16-bit images are scaled
to 8 bits (not clipped to white). :func:`folder_identity` fingerprints a folder's contents for
cache keys.
Longer than 400 lines: both datasets share one sample order, one pixel contract and one set of
refusals (the folder checks are most of it); split, the rules would drift apart.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .config import DATA_DIR, Profile, require
from .constants import FASHION_CLASSES  # noqa: F401 (data.FASHION_CLASSES: the labels' names)

SHIPPED_TEST = DATA_DIR / "fashion-mnist" / "test.npz"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _raw_fashion(split: str, root: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 28, 28] and labels [N]."""
    if split == "test" and root is None and SHIPPED_TEST.exists():
        z = np.load(SHIPPED_TEST)
        return z["images"], z["labels"]
    root = Path(root) if root is not None else DEBIAN_DIR
    img, lab = (root / n for n in _IDX[split])
    if img.exists() and lab.exists():
        return _read_idx(img), _read_idx(lab)
    try:  # last resort: torchvision's downloader (needs network)
        from torchvision.datasets import FashionMNIST

        ds = FashionMNIST(Path.home() / ".cache" / "curvlib", train=split == "train", download=True)
        return ds.data.numpy(), ds.targets.numpy()
    except Exception as e:  # noqa: BLE001
        raise FileNotFoundError(
            f"Fashion-MNIST {split} set not found in {root} and the download failed ({type(e).__name__}). "
            "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or give "
            "a directory holding the four idx .gz files.") from None


def shipped_identity() -> str | None:
    """sha256 (16 hex digits) of the shipped Fashion-MNIST test set file, for cache keys (None where
    it is missing and the Debian package's test set is read)."""
    if not SHIPPED_TEST.exists():
        return None
    st = SHIPPED_TEST.stat()
    return "sha256:" + _file_sha256(str(SHIPPED_TEST), st.st_size, st.st_mtime_ns)[:16]


def to_pixels(images_uint8: np.ndarray, pad: int = 2) -> torch.Tensor:
    """uint8 [N, 28, 28] → float32 [N, 1, 28+2·pad, 28+2·pad] in [0, 1]."""
    x = torch.from_numpy(np.asarray(images_uint8, dtype=np.uint8).copy()).float().div_(255.0)
    return torch.nn.functional.pad(x.unsqueeze(1), (pad, pad, pad, pad))


def fashion_mnist(split: str = "test", n: int | None = None,
                  root: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST as (pixels float32 [N, 1, 32, 32] in [0, 1], labels int64 [N]).

    ``n`` keeps the first n images (the test set's order is fixed, so slices are reproducible).
    """
    if split not in _IDX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"n must be a positive integer or None, got {n!r}")
    images, labels = _raw_fashion(split, root)
    if n is not None:
        images, labels = images[:n], labels[:n]
    return to_pixels(images), torch.from_numpy(labels.astype(np.int64))


# ---------------------------------------------------------------------------------------------
# ImageNet-style ImageFolder (paper profile)

@functools.cache
def _timm_preprocessing(model_name: str) -> tuple[int, float, str]:
    """(input size, crop fraction, interpolation) of timm's pretrained config for ``model_name``, read from timm's
    registry without building the network (a name timm has no config for is built, and refused by timm if
    unknown)."""
    import timm
    from timm.data import resolve_data_config

    known = timm.get_pretrained_cfg(model_name)
    cfg = resolve_data_config(pretrained_cfg=known.to_dict()) if known is not None else \
        resolve_data_config({}, model=timm.create_model(model_name, pretrained=False, num_classes=0))
    return cfg["input_size"][-1], cfg["crop_pct"], cfg["interpolation"]


def imagefolder_transform(model_name: str | None = None, input_size: int = 224, crop_pct: float = 0.875,
                          interpolation: str = "bicubic"):
    """Resize(size / crop_pct) → CenterCrop(size) → ToTensor: pixels in [0, 1], no normalisation.

    With ``model_name`` the size, crop and interpolation come from timm's pretrained config.
    """
    from torchvision import transforms

    if model_name is not None:
        input_size, crop_pct, interpolation = _timm_preprocessing(model_name)
    modes = {"bicubic": transforms.InterpolationMode.BICUBIC, "bilinear": transforms.InterpolationMode.BILINEAR}
    resize = int(round(input_size / crop_pct))
    return transforms.Compose([
        transforms.Resize(resize, interpolation=modes.get(interpolation, transforms.InterpolationMode.BICUBIC)),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
    ])


class FolderError(ValueError):
    """An image folder curvlib refuses to read (the message names the folders or files)."""


#: The forms of class-folder names :func:`imagenet_class_index` accepts (for error messages).
FOLDER_FORMS = ("WordNet ids of ImageNet-1k (n01440764 … n15075141: ImageNet val, Imagenette, any class subset)",
                "ImageNet-1k class indices 0 … 999 (ImageNet-V2's folders)")


@functools.lru_cache(maxsize=1)
def _wordnet_ids() -> dict[str, int]:
    """WordNet id → ImageNet-1k index, from the class list shipped with timm (no download)."""
    from timm.data import ImageNetInfo

    names = ImageNetInfo("imagenet-1k").label_names()
    if len(names) != 1000:  # pragma: no cover - guards a changed timm
        raise RuntimeError(f"timm's ImageNet-1k class list has {len(names)} names, expected 1000")
    return {w: i for i, w in enumerate(names)}


def imagenet_class_index(folders) -> dict[str, int]:
    """ImageNet-1k index of every class folder name: WordNet ids through timm's own class list,
    integer names (``"7"``, ``"007"``) as the index itself. Any subset of the 1,000 classes is fine;
    an unknown name, or WordNet ids mixed with integers, is an error naming it (sorted folder names
    are *not* used: they are right only for exactly the 1,000 WordNet-id folders)."""
    folders = sorted(folders)
    if not folders:
        raise FolderError("no class folders given")
    wnids = _wordnet_ids()
    digits = [f for f in folders if _is_index(f)]
    if digits and len(digits) != len(folders):
        other = next(f for f in folders if not _is_index(f))
        raise FolderError(f"class folders mix integer names ({digits[0]!r}) with others ({other!r}); use one form: "
                         + "; or ".join(FOLDER_FORMS))
    out, bad = {}, []
    for f in folders:
        if _is_index(f):
            if int(f) >= 1000:
                bad.append(f)
            out[f] = int(f)
        elif f in wnids:
            out[f] = wnids[f]
        else:
            bad.append(f)
    if bad:
        shown = ", ".join(repr(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise FolderError(f"class folder name(s) {shown} are not ImageNet-1k classes; accepted forms: "
                         + "; or ".join(FOLDER_FORMS))
    if len(set(out.values())) != len(out):
        raise FolderError("two class folders name the same ImageNet-1k class (e.g. '7' and '007')")
    return out


def _is_index(name: str) -> bool:
    """A class index folder name: ASCII digits only (``str.isdigit`` also accepts '١' or '²')."""
    return name.isascii() and name.isdigit()


class ImageReadError(ValueError):
    """An image file of a folder cannot be read or decoded (the message names the file)."""


def load_image(path: str):
    """The RGB PIL image at ``path``. 16-bit (and 32-bit integer) greyscale images are scaled by
    1/257 to 8 bits instead of being clipped to white; other modes go through PIL's ``convert``
    (palette, greyscale, CMYK, alpha dropped). Raises :class:`ImageReadError` naming the file when it
    cannot be read or decoded (truncated, not an image)."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()
            if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                a = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8), "L")
            elif img.mode == "F":
                raise ValueError("floating-point images (PIL mode F) have no defined pixel range")
            return img.convert("RGB")
    except Exception as e:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError … for a bad file
        raise ImageReadError(f"cannot read image {path}: {type(e).__name__}: {e}") from None


def _listdir(folder: str, what: str) -> list:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as e:
        raise PermissionError(e.errno, f"cannot read {what} {folder}: {e.strerror or e}") from None


def scan_folder(root: str | Path) -> tuple[list[str], dict[str, int], list[tuple[str, int]]]:
    """(class folder names, name → ImageNet-1k index, [(image path, index)]) of an ImageNet-labelled
    folder, in torchvision ImageFolder's order (classes sorted; within one, ``sorted(os.walk)``).

    Stricter than ImageFolder: a symbolic link back into a folder already walked is not followed
    again, an image file reached twice (by links) is counted once, and two class folders that are
    one folder, or share an image file, are refused naming both; a folder that cannot be listed
    raises ``PermissionError`` naming it."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    directory = os.path.expanduser(str(root))
    classes = [e.name for e in _listdir(directory, "image folder") if not e.name.startswith(".") and e.is_dir()]
    if not classes:
        raise FileNotFoundError(f"no class sub-folders in {directory}")
    class_to_idx = imagenet_class_index(classes)
    real_class = {}
    for c in classes:
        real = os.path.realpath(os.path.join(directory, c))
        if real in real_class:
            raise FolderError(f"class folders {real_class[real]!r} and {c!r} of {directory} are the same folder "
                             f"({real}): its images would be labelled twice; keep one")
        real_class[real] = c
    samples, owner, empty = [], {}, []
    for c in sorted(class_to_idx):
        start = os.path.join(directory, c)
        seen_dirs, walked, stack = set(), [], [start]
        while stack:  # os.walk(followlinks=True) without its loops
            d = stack.pop()
            real = os.path.realpath(d)
            if real in seen_dirs:
                continue
            seen_dirs.add(real)
            entries = _listdir(d, "class folder" if d == start else "folder")
            walked.append((d, [e.name for e in entries if not e.is_dir()]))
            stack.extend(os.path.join(d, e.name) for e in entries if e.is_dir())
        n0 = len(samples)
        for d, names in sorted(walked):
            for name in sorted(names):
                if not name.lower().endswith(IMG_EXTENSIONS):
                    continue
                path = os.path.join(d, name)
                real = os.path.realpath(path)
                if real in owner:
                    if owner[real][0] != c:
                        raise FolderError(f"image {path} (class folder {c!r}) is the same file as {owner[real][1]} "
                                         f"(class folder {owner[real][0]!r}): it would be labelled twice")
                    continue  # the same file again through a link: counted once
                owner[real] = (c, path)
                samples.append((path, class_to_idx[c]))
        if len(samples) == n0:
            empty.append(c)
    if empty:
        raise FileNotFoundError(f"no image files in class folder(s) {', '.join(sorted(empty))} of {directory} "
                                f"(image files end in {', '.join(IMG_EXTENSIONS)})")
    return sorted(class_to_idx), class_to_idx, samples


def folder_identity(root: str | Path, content_hash: bool = False) -> str:
    """Fingerprint (``"stat:<16 hex>"`` or ``"sha256:<16 hex>"``) of what :func:`imagefolder` reads
    from ``root``: the class → index map and every image's path relative to ``root``, label, and size
    and modification time (``content_hash``: the sha256 of its bytes instead, slower but the same
    after a copy that does not keep modification times). Not the folder's absolute path: the same
    images elsewhere are the same data."""
    root = Path(root)
    _require_folder(root)
    _, class_to_idx, samples = scan_folder(root)
    h = hashlib.sha256(repr(sorted(class_to_idx.items())).encode())
    for path, target in samples:
        st = os.stat(path)
        what = _file_sha256(path, st.st_size, st.st_mtime_ns) if content_hash else f"{st.st_size}:{st.st_mtime_ns}"
        h.update(f"{os.path.relpath(path, root)}\0{target}\0{what};".encode())
    return f"{'sha256' if content_hash else 'stat'}:{h.hexdigest()[:16]}"


@functools.lru_cache(maxsize=200_000)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _require_folder(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            f"image folder {root} is a file, not a folder; point CURVLIB_DATA (or --data) at the folder holding "
            "one sub-folder per class (e.g. val/ with val/n01440764/*.JPEG)")
    if not root.is_dir():
        raise FileNotFoundError(
            f"image folder {root} does not exist; point CURVLIB_DATA (or --data) at ImageNet-labelled images "
            "arranged as one sub-folder per class (e.g. val/n01440764/*.JPEG, or ImageNet-V2's 0/ … 999/)")


def _imagenet_folder_class():
    from torchvision.datasets import ImageFolder

    class ImageNetFolder(ImageFolder):
        """An ImageFolder whose targets are ImageNet-1k indices (:func:`imagenet_class_index`), read
        by :func:`scan_folder` and :func:`load_image`."""

        def __init__(self, root, transform=None):
            super().__init__(root, transform=transform, loader=load_image)

        def find_classes(self, directory):
            classes, class_to_idx, self._scanned = scan_folder(directory)
            return classes, class_to_idx

        def make_dataset(self, directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
            return self._scanned

    return ImageNetFolder


def imagefolder(root: str | Path, n: int | None = None, seed: int = 0, transform=None, **transform_kw):
    """A torch Dataset over a folder of ImageNet class sub-folders; images in [0, 1], targets the
    ImageNet-1k indices of the folder names (:func:`imagenet_class_index`).

    ``n`` draws a seeded random subset of n images (the same subset for every model).
    """
    root = Path(root)
    _require_folder(root)
    try:
        ds = _imagenet_folder_class()(root, transform=transform or imagefolder_transform(**transform_kw))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no images found under {root}: {e}") from None
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(ds), generator=g)[: min(n, len(ds))].sort().values.tolist()
        ds = torch.utils.data.Subset(ds, idx)
    return ds


def load_tensors(ds, batch_size: int = 64, num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialise a (small) Dataset as (images, labels) tensors."""
    xs, ys = [], []
    for x, y in torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    if not xs:
        raise ValueError("dataset is empty")
    return torch.cat(xs), torch.cat(ys).long()


def _shard_indices(n_total: int, shard: tuple[int, int] | None) -> range:
    rank, size = shard or (0, 1)
    if not (0 <= rank < size):
        raise ValueError(f"shard must be (rank, world size) with 0 <= rank < size, got {shard}")
    return range(rank, n_total, size)


def _paper_dataset(profile: Profile, n: int | None, model_name: str | None, shard: tuple[int, int] | None):
    """The ImageNet-val ImageFolder of the paper profile (seeded subset of n, then every size-th item)."""
    if profile.data_dir is None:
        raise FileNotFoundError("the paper profile needs ImageNet val: set CURVLIB_DATA=/path/to/imagenet/val")
    ds = imagefolder(profile.data_dir, n=n, model_name=model_name)
    if shard is not None:
        ds = torch.utils.data.Subset(ds, list(_shard_indices(len(ds), shard)))
    return ds


def test_set(profile: Profile, n: int | None = None, model_name: str | None = None,
             shard: tuple[int, int] | None = None):
    """The active profile's evaluation images and labels as tensors (first ``n`` / a seeded subset).
    ``shard=(rank, size)`` keeps every size-th image from ``rank`` (global numbers: ``shard_index``)."""
    profile = require(profile)
    if profile.dataset == "fashion-mnist":
        x, y = fashion_mnist("test", n=n)
        idx = list(_shard_indices(len(x), shard))
        return (x, y) if shard is None else (x[idx], y[idx])
    ds = _paper_dataset(profile, n, model_name, shard)
    workers = min(8, os.cpu_count() or 1) if str(profile.device).startswith("cuda") else 0  # JPEG decoding
    return load_tensors(ds, num_workers=workers)


def shard_index(n_total: int, shard: tuple[int, int] | None) -> torch.Tensor:
    """Global sample numbers [M] of a shard of ``n_total`` samples."""
    return torch.tensor(list(_shard_indices(n_total, shard)), dtype=torch.long)


def n_available(profile: Profile, n: int | None = None) -> int:
    """How many evaluation images ``test_set(profile, n)`` returns (without loading them; the folder
    is scanned anew each call, so a folder changed in between is counted as it is now)."""
    profile = require(profile)
    if profile.dataset == "fashion-mnist":
        total = len(fashion_mnist("test")[1])
    else:
        if profile.data_dir is None:
            raise FileNotFoundError("the paper profile needs ImageNet val: set CURVLIB_DATA=/path/to/imagenet/val")
        _require_folder(profile.data_dir)
        total = len(scan_folder(profile.data_dir)[2])
    return total if n is None else min(n, total)


def batches(profile: Profile, n: int | None = None, model_name: str | None = None,
            batch_size: int = 256, num_workers: int = 4, shard: tuple[int, int] | None = None):
    """Iterate (images, labels) batches of the profile's evaluation set without holding it all in
    memory (50,000 ImageNet images would take 30 GB as one tensor). Pinned memory and worker
    processes on CUDA. ``shard``: as in :func:`test_set`."""
    profile = require(profile)
    if profile.dataset == "fashion-mnist":
        x, y = test_set(profile, n=n, shard=shard)
        for i in range(0, len(x), batch_size):
            yield x[i:i + batch_size], y[i:i + batch_size]
        return
    ds = _paper_dataset(profile, n, model_name, shard)
    cuda = str(profile.device).startswith("cuda")
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers if cuda else 0,
                                         pin_memory=cuda, persistent_workers=False)
    for x, y in loader:
        yield x, torch.as_tensor(y).long()


def check_pixels(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """Raise a clear error unless ``x`` is a float image batch [N, C, H, W] with values in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape [N, C, H, W], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point pixels in [0, 1], got dtype {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty")
    lo, hi = torch.aminmax(x.detach())
    if torch.isnan(lo) or torch.isnan(hi):
        raise ValueError(f"{name} contains NaN")
    if lo < 0 or hi > 1:
        raise ValueError(f"{name} must hold pixels in [0, 1] (got min {lo.item():.3g}, max {hi.item():.3g}); "
                         "curvlib models normalise internally")
    return x


def data_identity(profile: Profile) -> dict:
    """What identifies ``profile``'s evaluation data, for cache keys: the folder's contents
    (:func:`folder_identity`: class map, relative paths, sizes and modification
    times, or sha256 with ``hash_data``), read anew on every call; the shipped test set's file."""
    if profile.dataset == "fashion-mnist":
        return {"dataset": profile.dataset, "data": shipped_identity()}
    if profile.data_dir is None:
        return {"dataset": profile.dataset, "data": None}
    return {"dataset": profile.dataset, "data": folder_identity(profile.data_dir, profile.hash_data)}
