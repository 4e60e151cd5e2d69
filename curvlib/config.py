"""Named run profiles: which data, which four models, how many samples, where results are cached.

A profile is chosen by the environment variable ``CURVLIB_PROFILE`` (default ``embedded``).
Chapters read every sample size from the active profile, never from literals, so the same
notebook runs in seconds on CI (``smoke``), in minutes on a laptop CPU (``embedded``) and at the
paper's scale on a GPU (``paper``).

Environment overrides (all optional):

- ``CURVLIB_PROFILE``: profile name.
- ``CURVLIB_CACHE``: results cache directory (default ``<repo>/.cache/results``).
- ``CURVLIB_DEVICE``: ``cpu``, ``cuda``, ``cuda:1`` … (default: ``cuda`` when available).
- ``CURVLIB_DATA``: ImageNet validation ImageFolder for the ``paper`` profile.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "data"

EMBEDDED_MODELS = ("resnet", "mobilenetv2", "vit", "swin")
PAPER_MODELS = ("resnet50", "mobilenetv2_100", "vit_base_patch16_224", "swin_tiny_patch4_window7_224")
#: Which family each model belongs to (CNN or Transformer), for colours and legends.
FAMILY = {
    "resnet": "CNN", "mobilenetv2": "CNN", "vit": "Transformer", "swin": "Transformer",
    "resnet50": "CNN", "mobilenetv2_100": "CNN",
    "vit_base_patch16_224": "Transformer", "swin_tiny_patch4_window7_224": "Transformer",
}


@dataclass(frozen=True)
class Profile:
    """Everything a chapter needs to know about scale.

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
    device: str = field(default="")
    cache_dir: Path = field(default=Path())
    data_dir: Path | None = None

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (validated again)."""
        return _validate(dataclasses.replace(self, **changes))


def _default_device() -> str:
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return "cpu"


_BASE = {
    "embedded": dict(dataset="fashion-mnist", models=EMBEDDED_MODELS, n_calibration=None, n_travel=500,
                     n_theta_images=10, n_directions=50, n_steps=40, batch_size=500),
    "smoke": dict(dataset="fashion-mnist", models=EMBEDDED_MODELS, n_calibration=1000, n_travel=40,
                  n_theta_images=3, n_directions=4, n_steps=12, batch_size=250),
    "paper": dict(dataset="imagenet", models=PAPER_MODELS, n_calibration=None, n_travel=5000,
                  n_theta_images=10, n_directions=1000, n_steps=100, batch_size=128),
}
PROFILE_NAMES = tuple(_BASE)


def _validate(p: Profile) -> Profile:
    for f in ("n_travel", "n_theta_images", "n_directions", "n_steps", "batch_size"):
        v = getattr(p, f)
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"profile {p.name!r}: {f} must be a positive integer, got {v!r}")
    if p.n_calibration is not None and (not isinstance(p.n_calibration, int) or p.n_calibration < 1):
        raise ValueError(f"profile {p.name!r}: n_calibration must be None or a positive integer")
    if p.dataset not in ("fashion-mnist", "imagenet"):
        raise ValueError(f"profile {p.name!r}: unknown dataset {p.dataset!r}")
    return p


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name`` (default: ``$CURVLIB_PROFILE`` or ``embedded``)."""
    name = name or os.environ.get("CURVLIB_PROFILE", "").strip() or "embedded"
    if name not in _BASE:
        raise ValueError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)} "
            f"(set CURVLIB_PROFILE or pass the name)")
    cache = Path(os.environ.get("CURVLIB_CACHE") or REPO / ".cache" / "results")
    data = os.environ.get("CURVLIB_DATA")
    device = os.environ.get("CURVLIB_DEVICE") or _default_device()
    return _validate(Profile(name=name, device=device, cache_dir=cache,
                             data_dir=Path(data) if data else None, **_BASE[name]))
