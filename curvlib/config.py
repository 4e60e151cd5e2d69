"""One explicit configuration: a :class:`Profile` carries everything an experiment depends on.

A profile names the data, the four models, the sample sizes, where weights and results live,
the device and the numeric mode. Library functions take it as an argument; :func:`get_profile`
is the only place that reads the environment (so a notebook, the CLI and a test all configure
curvlib the same way: build a profile, pass it on). Sample sizes are never literals in chapters,
so the same notebook runs in seconds on CI (``smoke``), in minutes on a laptop CPU (``embedded``),
on the paper's four ImageNet models on a laptop CPU (``paper-lite``: fewer images and directions;
the README gives its measured run time) and at the paper's scale on a GPU (``paper``).

Environment variables read by :func:`get_profile` (all optional):

======================== ======================================================================
``CURVLIB_PROFILE``      profile name: ``embedded`` (default), ``smoke``, ``paper-lite`` or ``paper``
``CURVLIB_CACHE``        results cache directory (default ``<repo>/.cache/results``)
``CURVLIB_DEVICE``       ``cpu``, ``cuda``, ``cuda:1`` … (default: ``cuda`` when available)
``CURVLIB_DATA``         ImageNet-labelled class folders (``paper`` / ``paper-lite``)
``CURVLIB_MODEL_DIR``    embedded weights + cards (default ``<repo>/data/models``)
``CURVLIB_SEED_DIR``     seed replicates ``seed<k>/<name>.safetensors`` (default ``<repo>/data/seeds``)
``CURVLIB_CHECKPOINTS``  local weights of paper models: ``name=path,name=path``
``CURVLIB_WEIGHTS``      paper models: ``pretrained`` (default) or ``random`` (tests only)
``CURVLIB_AUTOCAST``     ``bf16`` to autocast forward-only passes (calibration, θ); default off
``CURVLIB_SIZES``        sample sizes over the profile's: ``n_travel=200,n_directions=8``
``CURVLIB_CHECK_ACCURACY`` ``0`` skips the top-1 check of pretrained ImageNet models (default on)
``CURVLIB_HASH_DATA``    ``1``: identify the data folder by its files' sha256, not their sizes and times
``CURVLIB_SEARCH``       boundary search: ``default`` or ``careful`` (more passes, fewer missed crossings)
``CURVLIB_PROGRESS``     ``text``: plain-text progress bars (book builds set it); default ``auto``
======================== ======================================================================
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"
MODEL_DIR = DATA_DIR / "models"  #: shipped embedded weights + cards
CHECKPOINT_DIR = DATA_DIR / "checkpoints"  #: epoch snapshots of the embedded models
SEED_DIR = DATA_DIR / "seeds"  #: parents retrained with other seeds: seed<k>/<name>.safetensors
DEFAULT_CACHE = REPO / ".cache" / "results"

EMBEDDED_MODELS = ("resnet", "mobilenetv2", "vit", "swin")
PAPER_MODELS = ("resnet50", "mobilenetv2_100", "vit_base_patch16_224", "swin_tiny_patch4_window7_224")

#: The environment variables :func:`get_profile` reads, and what each sets.
ENV = {
    "CURVLIB_PROFILE": "profile name", "CURVLIB_CACHE": "cache_dir", "CURVLIB_DEVICE": "device",
    "CURVLIB_DATA": "data_dir", "CURVLIB_MODEL_DIR": "model_dir", "CURVLIB_SEED_DIR": "seed_dir",
    "CURVLIB_CHECKPOINTS": "checkpoints",
    "CURVLIB_WEIGHTS": "weights", "CURVLIB_AUTOCAST": "autocast", "CURVLIB_SIZES": "sample sizes",
    "CURVLIB_CHECK_ACCURACY": "check_accuracy", "CURVLIB_HASH_DATA": "hash_data", "CURVLIB_SEARCH": "search",
}
#: Profile fields that are sample sizes (``CURVLIB_SIZES`` and the CLI may override them).
SIZES = ("n_calibration", "n_travel", "n_theta_images", "n_directions", "n_steps", "batch_size")
WEIGHTS = ("pretrained", "random")
AUTOCAST = (None, "bf16")
#: The boundary search's named settings (``curvlib.measure.search.SEARCHES``, checked against it by a test).
SEARCH_NAMES = ("default", "careful")


@dataclass(frozen=True)
class Profile:
    """Everything an experiment depends on besides its own parameters.

    Sizes are counts of test images / random directions / steps along a line; ``None`` = all.
    """

    name: str
    dataset: str  #: "fashion-mnist" or "imagenet"
    models: tuple[str, ...]
    n_calibration: int | None  #: images for reliability diagrams (None = whole test set)
    n_travel: int  #: images for boundary-distance travel
    n_theta_images: int  #: images for curvature bands
    n_directions: int  #: random directions per image for curvature bands
    n_steps: int  #: steps along each line for trajectories / theta
    batch_size: int
    device: str = "cpu"
    cache_dir: Path = DEFAULT_CACHE
    data_dir: Path | None = None  #: ImageNet val ImageFolder (imagenet profiles)
    model_dir: Path = MODEL_DIR  #: embedded weights + cards
    checkpoint_dir: Path = CHECKPOINT_DIR  #: epoch snapshots (embedded)
    seed_dir: Path = SEED_DIR  #: seed replicates (embedded)
    checkpoints: tuple[tuple[str, str], ...] = ()  #: (paper model, local weight file) pairs
    weights: str = "pretrained"  #: paper models: "pretrained" or "random" (tests, benchmarks)
    autocast: str | None = None  #: "bf16": autocast forward-only passes; None: float32
    check_accuracy: bool = True  #: ImageNet profiles: stop when a pretrained model's top-1 is far off
    hash_data: bool = False  #: identify the data folder by its files' sha256 (else sizes + modification times)
    search: str = "default"  #: boundary search setting (``curvlib.measure.search.SEARCHES``): "default" or "careful"

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (validated again)."""
        return _validate(dataclasses.replace(self, **changes))

    def checkpoint_for(self, model: str) -> str | None:
        """The local weight file given for paper model ``model``, if any."""
        return dict(self.checkpoints).get(model)

    def summary(self) -> str:
        """A short readable description (for pages and logs)."""
        data = str(self.data_dir) if self.data_dir and self.dataset == "imagenet" else "shipped test set"
        return (f"profile {self.name}: {self.dataset} ({data}), models {', '.join(self.models)}, "
                f"device {self.device}" + (f", autocast {self.autocast}" if self.autocast else ""))


def _default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"


# Batches of 500: 250 looked faster per model on one core, but a whole cold build took longer
# (benchmarks/results/measurements.md).
_BASE = {
    "embedded": dict(dataset="fashion-mnist", models=EMBEDDED_MODELS, n_calibration=None, n_travel=500,
                     n_theta_images=10, n_directions=50, n_steps=40, batch_size=500),
    "smoke": dict(dataset="fashion-mnist", models=EMBEDDED_MODELS, n_calibration=1000, n_travel=40,
                  n_theta_images=3, n_directions=4, n_steps=12, batch_size=250),
    # the paper's models and code on a laptop CPU in about an hour (README: measured times)
    "paper-lite": dict(dataset="imagenet", models=PAPER_MODELS, n_calibration=1000, n_travel=200,
                       n_theta_images=2, n_directions=4, n_steps=16, batch_size=32),
    "paper": dict(dataset="imagenet", models=PAPER_MODELS, n_calibration=None, n_travel=5000,
                  n_theta_images=10, n_directions=1000, n_steps=100, batch_size=128),
}
PROFILE_NAMES = tuple(_BASE)


def _validate(p: Profile) -> Profile:
    for f in ("n_travel", "n_theta_images", "n_directions", "n_steps", "batch_size"):
        v = getattr(p, f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"profile {p.name!r}: {f} must be a positive integer, got {v!r}")
    if p.n_calibration is not None and (not isinstance(p.n_calibration, int) or p.n_calibration < 1):
        raise ValueError(f"profile {p.name!r}: n_calibration must be None or a positive integer")
    if p.dataset not in ("fashion-mnist", "imagenet"):
        raise ValueError(f"profile {p.name!r}: unknown dataset {p.dataset!r}")
    if not p.models or not all(isinstance(m, str) and m for m in p.models):
        raise ValueError(f"profile {p.name!r}: models must be a non-empty tuple of names, got {p.models!r}")
    if not isinstance(p.device, str) or not p.device:
        raise ValueError(f"profile {p.name!r}: device must be a name such as 'cpu' or 'cuda:0', got {p.device!r}")
    if p.weights not in WEIGHTS:
        raise ValueError(f"profile {p.name!r}: weights must be one of {', '.join(WEIGHTS)}, got {p.weights!r}")
    for f in ("check_accuracy", "hash_data"):
        if not isinstance(getattr(p, f), bool):
            raise ValueError(f"profile {p.name!r}: {f} must be True or False, got {getattr(p, f)!r}")
    if p.search not in SEARCH_NAMES:
        raise ValueError(f"profile {p.name!r}: search must be one of {', '.join(SEARCH_NAMES)}, got {p.search!r}")
    if p.autocast not in AUTOCAST:
        raise ValueError(f"profile {p.name!r}: autocast must be None or 'bf16', got {p.autocast!r}")
    for f in ("cache_dir", "model_dir", "checkpoint_dir", "seed_dir"):
        if not isinstance(getattr(p, f), Path):
            raise TypeError(f"profile {p.name!r}: {f} must be a pathlib.Path, got {getattr(p, f)!r}")
    if p.data_dir is not None and not isinstance(p.data_dir, Path):
        raise TypeError(f"profile {p.name!r}: data_dir must be a pathlib.Path or None, got {p.data_dir!r}")
    for pair in p.checkpoints:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(s, str) and s for s in pair)):
            raise ValueError(f"profile {p.name!r}: checkpoints must be (model, path) pairs, got {pair!r}")
    return p


def parse_checkpoints(text: str | Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    """``"name=path,name=path"`` (or a mapping) → sorted (name, path) pairs; a malformed item is an error."""
    if not text:
        return ()
    items = text.items() if isinstance(text, Mapping) else (
        item.partition("=")[::2] if "=" in item else (item, "")
        for item in (s.strip() for s in text.split(",")) if item)
    out = {}
    for name, path in items:
        name, path = str(name).strip(), str(path).strip()
        if not name or not path:
            raise ValueError(f"checkpoints must look like name=path, got {name + '=' + path if name else path!r}")
        out[name] = path
    return tuple(sorted(out.items()))


def _autocast(value: str | None) -> str | None:
    v = (value or "").strip().lower()
    if v in ("", "0", "off", "none"):
        return None
    if v != "bf16":
        raise ValueError(f"CURVLIB_AUTOCAST must be 'bf16' or empty, got {value!r}")
    return v


def parse_sizes(text: str | None) -> dict[str, int | None]:
    """``"n_travel=200,n_directions=8"`` → {field: value} (``n_calibration=all`` → None); unknown
    fields and non-integers are errors naming them."""
    out: dict[str, int | None] = {}
    for item in (s.strip() for s in (text or "").split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if name not in SIZES:
            raise ValueError(f"CURVLIB_SIZES: unknown size {name!r}; sizes are {', '.join(SIZES)}")
        if name == "n_calibration" and value.lower() in ("all", "none"):
            out[name] = None
            continue
        try:
            out[name] = int(value)
        except ValueError:
            raise ValueError(f"CURVLIB_SIZES: {name} must be an integer, got {value!r}") from None
    return out


def _flag(name: str, value: str | None, default: bool) -> bool:
    v = (value or "").strip().lower()
    if v == "":
        return default
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 0 or 1, got {value!r}")


def apply_progress_setting(env: Mapping[str, str] | None = None) -> str:
    """Apply ``CURVLIB_PROGRESS`` (``auto`` or ``text``; run when curvlib is imported) and return it.
    ``text`` points ``tqdm.auto.tqdm``, which curvlib's modules import, at a plain-text bar on
    ``sys.__stderr__``: in a book build that is the terminal running ``jupyter-book``, so the static
    pages get no empty widget boxes."""
    mode = (os.environ if env is None else env).get("CURVLIB_PROGRESS", "auto")
    if mode not in ("auto", "text"):
        raise ValueError(f"CURVLIB_PROGRESS must be 'auto' or 'text', got {mode!r}")
    if mode == "text":
        import sys

        import tqdm.auto
        import tqdm.std

        class TextBar(tqdm.std.tqdm):
            def __init__(self, *args, **kwargs):
                kwargs.setdefault("file", sys.__stderr__)
                super().__init__(*args, **kwargs)

        tqdm.auto.tqdm = TextBar
    return mode


def get_profile(name: str | None = None, env: Mapping[str, str] | None = None, **overrides) -> Profile:
    """The profile called ``name`` (default: ``$CURVLIB_PROFILE`` or ``embedded``), with the
    settings of the ``CURVLIB_*`` variables in ``env`` (default ``os.environ``; see the module
    docstring) and then ``overrides`` (field=value) applied. The only reader of the environment."""
    env = os.environ if env is None else env
    name = name or env.get("CURVLIB_PROFILE", "").strip() or "embedded"
    if name not in _BASE:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
            f"(set CURVLIB_PROFILE or pass the name)")
    data, cache_dir = env.get("CURVLIB_DATA", "").strip(), env.get("CURVLIB_CACHE", "").strip()
    settings = dict(  # relative paths: against the cwd where the profile is made (make passes absolute ones)
        device=env.get("CURVLIB_DEVICE", "").strip() or _default_device(),
        cache_dir=Path(cache_dir).expanduser().resolve() if cache_dir else DEFAULT_CACHE,
        data_dir=Path(data).expanduser().resolve() if data else None,  # chapters run with book/ as their cwd
        model_dir=Path(env.get("CURVLIB_MODEL_DIR", "").strip() or MODEL_DIR),
        seed_dir=Path(env.get("CURVLIB_SEED_DIR", "").strip() or SEED_DIR),
        checkpoints=parse_checkpoints(env.get("CURVLIB_CHECKPOINTS", "")),
        weights=env.get("CURVLIB_WEIGHTS", "").strip() or "pretrained",
        autocast=_autocast(env.get("CURVLIB_AUTOCAST")),
        check_accuracy=_flag("CURVLIB_CHECK_ACCURACY", env.get("CURVLIB_CHECK_ACCURACY"), True),
        hash_data=_flag("CURVLIB_HASH_DATA", env.get("CURVLIB_HASH_DATA"), False),
        search=env.get("CURVLIB_SEARCH", "").strip() or "default",
        **parse_sizes(env.get("CURVLIB_SIZES")),
    )
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Profile)}
    if unknown or "name" in overrides:
        raise TypeError(f"get_profile: unknown or fixed profile fields {sorted(unknown | ({'name'} & set(overrides)))}")
    return _validate(Profile(name=name, **{**_BASE[name], **settings, **overrides}))


def require(profile) -> Profile:
    """``profile`` itself, or a clear error where a library function was given none."""
    if not isinstance(profile, Profile):
        raise TypeError(f"expected a curvlib Profile (e.g. curvlib.config.get_profile()), got {profile!r}")
    return profile
