"""The four models of every chapter, built from timm's own classes, behind one interface.

``load(name)`` returns a :class:`CurvModel` in eval mode:

- ``model(x)``: logits ``[N, K]`` for pixels ``x`` ``[N, C, H, W]`` in [0, 1] (normalisation is inside);
- ``model.features(x)``: the penultimate representation ``[N, F]`` (timm
  ``forward_head(forward_features(x), pre_logits=True)``), the space the paper's trajectories live in;
- ``model.head(f)``: the classifier, so ``model.head(model.features(x)) == model(x)``.

Embedded profile: small timm ResNet (BasicBlock), MobileNetV2, VisionTransformer (patch 4) and
SwinTransformer for 1×32×32 Fashion-MNIST, trained by ``python -m curvlib.train`` and shipped in
``data/models`` (safetensors + a JSON card). Paper profile: timm's pretrained resnet50,
mobilenetv2_100, vit_base_patch16_224, swin_tiny_patch4_window7_224.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .config import DATA_DIR, EMBEDDED_MODELS, PAPER_MODELS, Profile, get_profile

MODEL_DIR = Path(os.environ.get("CURVLIB_MODEL_DIR") or DATA_DIR / "models")  #: shipped weights + cards
CHECKPOINT_DIR = DATA_DIR / "checkpoints"
#: Pixel statistics of the zero-padded 32×32 Fashion-MNIST train set (folded into the models).
FASHION_MEAN, FASHION_STD = (0.2190,), (0.3318,)

_BUILDERS: dict[str, Callable[[], nn.Module]] = {}


def register(name: str):
    """Decorator: register a builder of an (untrained) timm network for the embedded profile."""
    def deco(fn):
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} registered twice")
        _BUILDERS[name] = fn
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_BUILDERS)


@register("resnet")
def _resnet(num_classes: int = 10, in_chans: int = 1, **kw) -> nn.Module:
    """timm ResNet with BasicBlocks, widths 32-64-128-256, one block per stage, 3×3 stride-2 stem."""
    from timm.models.resnet import BasicBlock, ResNet

    net = ResNet(BasicBlock, layers=(1, 1, 1, 1), channels=(32, 64, 128, 256),
                 num_classes=num_classes, in_chans=in_chans, **kw)
    # 32×32 inputs: a 3×3/2 stem conv (same 64 output channels) instead of 7×7/2 conv + max-pool,
    # so the four stages run at 16, 8, 4, 2 pixels.
    net.conv1 = nn.Conv2d(in_chans, net.conv1.out_channels, kernel_size=3, stride=2, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


@register("mobilenetv2")
def _mobilenetv2(num_classes: int = 10, in_chans: int = 1, **kw) -> nn.Module:
    """timm mobilenetv2_050 (width 0.5) with its first stride-2 stage at stride 1, so 32×32 inputs
    end at 2×2 before pooling (total stride 16, as CIFAR-style MobileNetV2s do)."""
    import timm

    net = timm.create_model("mobilenetv2_050", pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)
    net.blocks[1][0].conv_dw.stride = (1, 1)
    return net


@register("vit")
def _vit(num_classes: int = 10, in_chans: int = 1, **kw) -> nn.Module:
    """timm VisionTransformer: 32×32 input, patch 4 (64 tokens + class token), width 96, depth 4, 3 heads."""
    from timm.models.vision_transformer import VisionTransformer

    kw.setdefault("drop_path_rate", 0.05)
    return VisionTransformer(img_size=32, patch_size=4, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0, **kw)


@register("swin")
def _swin(num_classes: int = 10, in_chans: int = 1, **kw) -> nn.Module:
    """timm SwinTransformer: 32×32 input, patch 4, window 4, widths 64-128, depths 2-2."""
    from timm.models.swin_transformer import SwinTransformer

    kw.setdefault("drop_path_rate", 0.05)
    return SwinTransformer(img_size=32, patch_size=4, in_chans=in_chans, num_classes=num_classes,
                           embed_dim=64, depths=(2, 2), num_heads=(2, 4), window_size=4,
                           mlp_ratio=2.0, **kw)


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channels of token tensors ``[B, N, C]`` (statistics over batch and tokens),
    a drop-in for ViT's LayerNorm in the component-swap variant ``vit_bn``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


#: Component-swap variants (chapter "What bends the space"): one module type changed, the rest as
#: the parent. name → (parent, what is swapped).
VARIANTS = {
    "vit_bn": ("vit", "LayerNorm → BatchNorm"),
    "vit_relu": ("vit", "GELU → ReLU"),
    "resnet_ln": ("resnet", "BatchNorm → LayerNorm (over channels)"),
    "resnet_gelu": ("resnet", "ReLU → GELU"),
}


@register("vit_bn")
def _vit_bn(**kw) -> nn.Module:
    return _vit(norm_layer=TokenBatchNorm, **kw)


@register("vit_relu")
def _vit_relu(**kw) -> nn.Module:
    return _vit(act_layer=nn.ReLU, **kw)


@register("resnet_ln")
def _resnet_ln(**kw) -> nn.Module:
    from timm.layers import LayerNorm2d

    return _resnet(norm_layer=LayerNorm2d, **kw)


@register("resnet_gelu")
def _resnet_gelu(**kw) -> nn.Module:
    from timm.layers import GELU

    return _resnet(act_layer=GELU, **kw)


class CurvModel(nn.Module):
    """A timm network with its input normalisation folded in; takes pixels in [0, 1].

    Args:
        net: timm model with ``forward_features``, ``forward_head`` and ``get_classifier``.
        mean, std: per-channel pixel statistics, applied as ``(x - mean) / std``.
        name: registry or timm name. input_size: (C, H, W) the model expects.
        check_inputs: validate shape and range on every call (one min/max reduction).
    """

    def __init__(self, net: nn.Module, mean, std, name: str, input_size: tuple[int, int, int],
                 check_inputs: bool = True):
        super().__init__()
        self.net = net
        self.name = name
        self.input_size = tuple(input_size)
        self.check_inputs = check_inputs
        self.card: dict = {}
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    @property
    def fingerprint(self) -> str:
        """Identifies the weights (for cache keys): the weight file's hash, else the source
        (``timm:<name>:pretrained`` / ``timm:<name>:random``), else the name."""
        if "sha256" in self.card:
            return self.card["sha256"][:16]
        return self.card.get("source", self.name)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:
            from .data import check_pixels

            check_pixels(x)
            if tuple(x.shape[1:]) != self.input_size:
                raise ValueError(f"{self.name} expects images of shape [N, {', '.join(map(str, self.input_size))}], "
                                 f"got {list(x.shape)}")
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [N, C, H, W] in [0, 1] → logits [N, K]."""
        return self.net(self._prep(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels [N, C, H, W] in [0, 1] → penultimate representation [N, F]."""
        return self.net.forward_head(self.net.forward_features(self._prep(x)), pre_logits=True)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Representation [N, F] → logits [N, K]."""
        return self.net.get_classifier()(f)


def build(name: str) -> CurvModel:
    """An untrained embedded model (random init) with Fashion-MNIST normalisation."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown embedded model {name!r}; choose one of {', '.join(list_models())}")
    return CurvModel(_BUILDERS[name](), FASHION_MEAN, FASHION_STD, name, (1, 32, 32))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_embedded(name: str, path: Path | None = None) -> CurvModel:
    """A shipped embedded model (or a checkpoint ``path``), in eval mode, with its card."""
    from safetensors.torch import load_file

    model = build(name)
    path = Path(path) if path is not None else MODEL_DIR / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"no weights for {name!r} at {path}; train them with `python -m curvlib.train --model {name}` "
            "(or restore data/ from the repository)")
    state = load_file(str(path))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise ValueError(f"checkpoint {path} does not match model {name!r}: {str(e)[:300]}") from None
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match model {name!r}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    card_path = path.with_suffix(".json")
    model.card = json.loads(card_path.read_text()) if card_path.exists() else {}
    model.card["sha256"] = file_sha256(path)
    return model.eval().requires_grad_(False)


def load_paper(name: str, checkpoint: str | Path | None = None, weights: str = "pretrained") -> CurvModel:
    """A timm ImageNet model with its normalisation folded in.

    ``weights``: ``"pretrained"`` (timm hub or local cache), or ``"random"`` (explicit random
    init, for tests only). ``checkpoint``: a local state-dict file (.safetensors/.pth) instead.
    """
    import timm
    from timm.data import resolve_data_config

    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint {checkpoint} for {name!r} does not exist")
        net = timm.create_model(name, pretrained=False)
        if checkpoint.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(checkpoint))
        else:
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state.get("model", state)) if isinstance(state, dict) else state
        net.load_state_dict(state)
    elif weights == "random":
        with torch.random.fork_rng():  # the same random weights in every process (torchrun ranks)
            torch.manual_seed(0)
            net = timm.create_model(name, pretrained=False)
    else:
        try:
            net = timm.create_model(name, pretrained=True)
        except Exception as e:  # noqa: BLE001 - network / hub errors vary
            raise RuntimeError(
                f"could not load pretrained weights for {name!r} ({type(e).__name__}: {str(e)[:200]}). "
                "Offline, either put them in the Hugging Face / timm cache (run once with network, or set "
                "HF_HUB_CACHE), or pass a local file: load('" + name + "', checkpoint='path/to/weights.safetensors') "
                f"or `--checkpoint {name}=PATH` on the command line.") from None
    cfg = resolve_data_config({}, model=net)
    model = CurvModel(net, cfg["mean"], cfg["std"], name, tuple(cfg["input_size"]))
    model.card = {"source": str(checkpoint) if checkpoint else f"timm:{name}:{weights}"}
    if checkpoint is not None:
        model.card["sha256"] = file_sha256(checkpoint)
    return model.eval().requires_grad_(False)


def load(name: str, profile: Profile | str | None = None, checkpoint: str | Path | None = None,
         device: str | torch.device | None = None, **kw) -> CurvModel:
    """Load model ``name`` of the given (or active) profile onto ``device`` (default: the profile's)."""
    if isinstance(profile, str) or profile is None:
        profile = get_profile(profile)
    if profile.dataset == "fashion-mnist":
        if name not in _BUILDERS:
            raise ValueError(f"unknown embedded model {name!r}; choose one of {', '.join(EMBEDDED_MODELS)}")
        model = load_embedded(name, checkpoint)
    else:
        import timm

        if name not in timm.list_models():
            raise ValueError(f"unknown timm model {name!r} (the paper's are {', '.join(PAPER_MODELS)})")
        checkpoint = checkpoint or paper_checkpoints().get(name)
        kw.setdefault("weights", os.environ.get("CURVLIB_WEIGHTS", "").strip() or "pretrained")
        model = load_paper(name, checkpoint=checkpoint, **kw)
    return model.to(device or profile.device)


def paper_checkpoints() -> dict[str, str]:
    """Local weight files for paper models from ``CURVLIB_CHECKPOINTS="name=path,name=path"``
    (what ``python -m curvlib run --checkpoint name=path`` sets)."""
    out = {}
    for item in filter(None, (p.strip() for p in os.environ.get("CURVLIB_CHECKPOINTS", "").split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"CURVLIB_CHECKPOINTS entries must look like name=path, got {item!r}")
        out[name.strip()] = path.strip()
    return out


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
