"""The four models of every chapter, built from timm's own classes, behind one interface.

Every model has one record, :class:`ModelSpec` (family, dataset, normalisation, activation, input
size, training recipe; for component-swap variants the parent and the swapped module types), in
a registry (:func:`spec`, :func:`family`, :func:`variants`). ``load(name, profile)`` returns a
:class:`CurvModel` in eval mode:

- ``model(x)``: logits ``[N, K]`` for pixels ``x`` ``[N, C, H, W]`` in [0, 1] (normalisation is inside);
- ``model.features(x)``: the penultimate representation ``[N, F]`` (timm
  ``forward_head(forward_features(x), pre_logits=True)``), the space the paper's trajectories live in;
- ``model.head(f)``: the classifier, so ``model.head(model.features(x)) == model(x)``.

Embedded profile: small timm ResNet (BasicBlock), MobileNetV2, VisionTransformer (patch 4) and
SwinTransformer for 1×32×32 Fashion-MNIST, trained by ``python -m curvlib.train`` and shipped in
``data/models`` (safetensors + a JSON card). Paper profile: timm's pretrained resnet50,
mobilenetv2_100, vit_base_patch16_224, swin_tiny_patch4_window7_224.
Longer than 400 lines: the registry of model records, the embedded models' builders and the
loading of both profiles' weights behind one interface (:class:`CurvModel`).
"""
from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import PAPER_MODELS, Profile, require
from .constants import FAMILIES
from .data import check_pixels

#: Pixel statistics of the zero-padded 32×32 Fashion-MNIST train set (folded into the models).
FASHION_MEAN, FASHION_STD = (0.2190,), (0.3318,)


@dataclass(frozen=True)
class ModelSpec:
    """Everything curvlib knows about one model, in one record (as timm's ``default_cfgs``).

    ``dataset``: "fashion-mnist" (embedded: built by ``build`` and trained here with ``recipe``)
    or "imagenet" (timm's pretrained weights of the same name). Component-swap variants name their
    ``parent`` and the module type swapped, ``swap = (from, to)`` (e.g. ("ReLU", "GELU")), with an
    optional ``swap_detail``; everything else equals the parent.
    """

    name: str
    family: str  #: "CNN" or "Transformer"
    dataset: str  #: "fashion-mnist" or "imagenet"
    norm: str  #: normalisation layers, e.g. "BatchNorm", "LayerNorm"
    act: str  #: activation, e.g. "ReLU", "GELU"
    input_size: tuple[int, int, int]  #: (C, H, W)
    build: Callable[..., nn.Module] | None = None  #: embedded: untrained timm network
    recipe: Mapping[str, Any] = field(default_factory=dict)  #: embedded: default epochs, lr
    parent: str | None = None
    swap: tuple[str, str] | None = None
    swap_detail: str = ""

    @property
    def swap_label(self) -> str:
        """"A → B (detail)" for a variant, "" otherwise."""
        if self.swap is None:
            return ""
        return f"{self.swap[0]} → {self.swap[1]}" + (f" ({self.swap_detail})" if self.swap_detail else "")


_SPECS: dict[str, ModelSpec] = {}


def register_spec(spec: ModelSpec) -> ModelSpec:
    """Add a model record (checked: known family and dataset, variants name a registered parent)."""
    if spec.name in _SPECS:
        raise ValueError(f"model {spec.name!r} registered twice")
    if spec.family not in FAMILIES:
        raise ValueError(f"model {spec.name!r}: family must be one of {FAMILIES}, got {spec.family!r}")
    if spec.dataset not in ("fashion-mnist", "imagenet"):
        raise ValueError(f"model {spec.name!r}: unknown dataset {spec.dataset!r}")
    if (spec.parent is None) != (spec.swap is None):
        raise ValueError(f"model {spec.name!r}: a variant needs both parent and swap=(from, to)")
    if spec.parent is not None and spec.parent not in _SPECS:
        raise ValueError(f"model {spec.name!r}: parent {spec.parent!r} is not registered")
    _SPECS[spec.name] = spec
    return spec


def register(name: str, *, family: str, norm: str, act: str, recipe: Mapping[str, Any] | None = None):
    """Decorator: register the builder of an (untrained) embedded timm network for 1×32×32 inputs."""
    def deco(fn):
        register_spec(ModelSpec(name, family, "fashion-mnist", norm, act, (1, 32, 32), fn, dict(recipe or {})))
        return fn
    return deco


def register_variant(name: str, parent: str, swap: tuple[str, str], detail: str = ""):
    """Decorator: register a component-swap variant of ``parent``; it inherits the parent's family,
    input size and recipe, and its norm/act follow from the swap."""
    def deco(fn):
        p = spec(parent)
        norm = swap[1] if swap[0] == p.norm else p.norm
        act = swap[1] if swap[0] == p.act else p.act
        if (norm, act) == (p.norm, p.act):
            raise ValueError(f"variant {name!r}: {parent!r} has no {swap[0]} to swap (norm {p.norm}, act {p.act})")
        register_spec(ModelSpec(name, p.family, p.dataset, norm, act, p.input_size, fn, p.recipe,
                                parent=parent, swap=tuple(swap), swap_detail=detail))
        return fn
    return deco


def spec(name: str) -> ModelSpec:
    """The record of model ``name``; a clear error for an unknown name."""
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(_SPECS))}") from None


_STRICT = object()


def family(name: str, default=_STRICT) -> str:
    """"CNN" or "Transformer". An unknown model is an error, never a guess, unless a ``default``
    is given (for colours and labels only)."""
    if default is not _STRICT and name not in _SPECS:
        return default
    return spec(name).family


def list_models(dataset: str = "fashion-mnist") -> list[str]:
    """Registered model names of one dataset (default: the embedded models and their variants)."""
    return sorted(n for n, s in _SPECS.items() if s.dataset == dataset)


def variants() -> dict[str, ModelSpec]:
    """Component-swap variants: name → record (``parent``, ``swap``)."""
    return {n: s for n, s in sorted(_SPECS.items()) if s.parent is not None}


@register("resnet", family="CNN", norm="BatchNorm", act="ReLU", recipe=dict(epochs=12, lr=2e-3))
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


@register("mobilenetv2", family="CNN", norm="BatchNorm", act="ReLU6", recipe=dict(epochs=8, lr=2e-3))
def _mobilenetv2(num_classes: int = 10, in_chans: int = 1, **kw) -> nn.Module:
    """timm mobilenetv2_050 (width 0.5) with its first stride-2 stage at stride 1, so 32×32 inputs
    end at 2×2 before pooling (total stride 16, as CIFAR-style MobileNetV2s do)."""
    import timm

    net = timm.create_model("mobilenetv2_050", pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)
    net.blocks[1][0].conv_dw.stride = (1, 1)
    return net


@register("vit", family="Transformer", norm="LayerNorm", act="GELU", recipe=dict(epochs=15, lr=1e-3))
def _vit(num_classes: int = 10, in_chans: int = 1, **kw) -> nn.Module:
    """timm VisionTransformer: 32×32 input, patch 4 (64 tokens + class token), width 96, depth 4, 3 heads."""
    from timm.models.vision_transformer import VisionTransformer

    kw.setdefault("drop_path_rate", 0.05)
    return VisionTransformer(img_size=32, patch_size=4, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=96, depth=4, num_heads=3, mlp_ratio=2.0, **kw)


@register("swin", family="Transformer", norm="LayerNorm", act="GELU", recipe=dict(epochs=15, lr=1e-3))
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


# Component-swap variants (chapter "What bends the space"): one module type changed, the rest as
# the parent, trained with the parent's recipe.
@register_variant("vit_bn", "vit", ("LayerNorm", "BatchNorm"))
def _vit_bn(**kw) -> nn.Module:
    return _vit(norm_layer=TokenBatchNorm, **kw)


@register_variant("vit_relu", "vit", ("GELU", "ReLU"))
def _vit_relu(**kw) -> nn.Module:
    return _vit(act_layer=nn.ReLU, **kw)


@register_variant("resnet_ln", "resnet", ("BatchNorm", "LayerNorm"), "over channels")
def _resnet_ln(**kw) -> nn.Module:
    from timm.layers import LayerNorm2d

    return _resnet(norm_layer=LayerNorm2d, **kw)


@register_variant("resnet_gelu", "resnet", ("ReLU", "GELU"))
def _resnet_gelu(**kw) -> nn.Module:
    from timm.layers import GELU

    return _resnet(act_layer=GELU, **kw)


# The paper's timm models (ImageNet-1k weights; input size and pixel statistics come from timm's
# pretrained config when loaded).
for _name, _fam, _norm, _act in [("resnet50", "CNN", "BatchNorm", "ReLU"),
                                 ("mobilenetv2_100", "CNN", "BatchNorm", "ReLU6"),
                                 ("vit_base_patch16_224", "Transformer", "LayerNorm", "GELU"),
                                 ("swin_tiny_patch4_window7_224", "Transformer", "LayerNorm", "GELU")]:
    register_spec(ModelSpec(_name, _fam, "imagenet", _norm, _act, (3, 224, 224)))
assert set(PAPER_MODELS) <= set(_SPECS)


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
        """Identifies the weights (for cache keys): the weight file's (or loaded state's) sha256,
        with the timm pretrained tag where there is one; else the source; else the name."""
        if "sha256" in self.card:
            tag = self.card.get("tag")
            return f"{tag}:{self.card['sha256'][:16]}" if tag else self.card["sha256"][:16]
        return self.card.get("source", self.name)

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        if self.check_inputs:

            check_pixels(x)
            if tuple(x.shape[1:]) != self.input_size:
                raise ValueError(f"{self.name} expects images of shape [N, {', '.join(map(str, self.input_size))}], "
                                 f"got {list(x.shape)}")
        if x.is_floating_point() and x.dtype != self.mean.dtype:  # e.g. float64 pixels: the weights' dtype
            x = x.to(self.mean.dtype)
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
    sp = spec(name)
    if sp.build is None:
        raise ValueError(f"{name!r} is a timm ImageNet model, not an embedded one; use load_paper({name!r})")
    return CurvModel(sp.build(), FASHION_MEAN, FASHION_STD, name, sp.input_size)


def seed_files(stem: str, seed_dir: str | Path) -> dict[int, Path]:
    """Seed → ``seed_dir/seed<k>/<stem>.safetensors`` for every ``seed<k>`` folder that holds one (sorted)."""
    out = {}
    for f in Path(seed_dir).glob(f"seed*/{stem}.safetensors"):
        k = f.parent.name[len("seed"):]
        if k.isdigit():
            out[int(k)] = f
    return dict(sorted(out.items()))


def seed_replicates(name: str, seed_dir: str | Path) -> dict[int, Path]:
    """Seed → weights of ``name`` retrained with :mod:`curvlib.seeds` (``seed_dir/seed<k>/<name>.safetensors``
    whose card records the seed plan: a validation split chose the epoch). Weights without that card
    (legacy replicates, trained before the clean stopping rule) are not seed replicates of the recipe."""
    out = {}
    for k, f in seed_files(name, seed_dir).items():
        card = f.with_suffix(".json")
        plan = json.loads(card.read_text()).get("seed_plan") if card.exists() else None
        if not plan:
            continue
        if plan.get("model") != name or int(plan.get("seed", -1)) != k:
            raise ValueError(f"{f}: its card's seed plan is for {plan.get('model')!r} seed {plan.get('seed')}, "
                             f"its place says {name!r} seed {k}")
        out[k] = f
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_embedded(name: str, path: str | Path) -> CurvModel:
    """Embedded model ``name`` with the weights in ``path`` (safetensors; its card ``.json`` beside
    it), in eval mode. Weights stored in half precision (seed replicates) are upcast to float32."""
    from safetensors.torch import load_file

    model = build(name)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no weights for {name!r} at {path}; train them with `python -m curvlib.train --model {name}` "
            "(or restore data/ from the repository)")
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
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


#: Paper models built in this process, by (name, weights, checkpoint file and its identity on disk), the most
#: recently used last: every experiment loads its model afresh, and building a ViT-B/16 (random init or reading
#: the weights) and hashing its weights cost more than copying it (``benchmarks/results/measurements.md``), so
#: :func:`load_paper` hands out copies. At most :data:`BUILT_MAX` are kept (the paper's four: about 0.6 GB).
_BUILT: OrderedDict[tuple, CurvModel] = OrderedDict()
BUILT_MAX = 4


def load_paper(name: str, checkpoint: str | Path | None = None, weights: str = "pretrained") -> CurvModel:
    """A timm ImageNet model with its normalisation folded in: a fresh copy of the one this process built for
    the same name, weights and checkpoint file (unchanged on disk). Pretrained weights are read once per
    process: a hub cache updated meanwhile is seen by the next process (the card names what was loaded).

    ``weights``: ``"pretrained"`` (timm hub or local cache), or ``"random"`` (explicit random
    init, for tests only). ``checkpoint``: a local state-dict file (.safetensors/.pth) instead.
    """
    if weights not in ("pretrained", "random"):
        raise ValueError(f"weights must be 'pretrained' or 'random', got {weights!r}")
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            raise FileNotFoundError(f"checkpoint {checkpoint} for {name!r} does not exist")
        st = checkpoint.stat()  # a rewritten file changes its inode or change time (which no copy tool keeps)
        key = (name, str(checkpoint.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    else:
        key = (name, weights)
    if key in _BUILT:
        _BUILT.move_to_end(key)
    else:
        _BUILT[key] = _build_paper(name, checkpoint, weights)
        while len(_BUILT) > BUILT_MAX:
            _BUILT.popitem(last=False)
    return copy.deepcopy(_BUILT[key])


def _build_paper(name: str, checkpoint: Path | None, weights: str) -> CurvModel:
    import timm
    from timm.data import resolve_data_config

    if checkpoint is not None:
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
    model.card = weights_card(net, name, "checkpoint" if checkpoint is not None else weights, checkpoint)
    return model.eval().requires_grad_(False)


def state_sha256(net: nn.Module) -> str:
    """sha256 of a network's state (names, dtypes, shapes and bytes of every tensor, in order)."""
    h = hashlib.sha256()
    for k, v in net.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _hub_file(net: nn.Module) -> Path | None:
    """The weight file timm read from the Hugging Face cache for a pretrained net, if it is there."""
    hub = (getattr(net, "pretrained_cfg", None) or {}).get("hf_hub_id")
    if not hub:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        got = try_to_load_from_cache(hub, fname)
        if isinstance(got, str):
            return Path(got)
    return None


def weights_card(net: nn.Module, name: str, weights: str, checkpoint: Path | None = None) -> dict:
    """What identifies a paper model's weights: timm name + pretrained tag + the weight file's
    sha256 (a local checkpoint, or the file timm read from the Hugging Face cache), else the sha256
    of the loaded state (random init, or a file not found in the cache)."""
    cfg = getattr(net, "pretrained_cfg", None) or {}
    tag = cfg.get("tag") if weights == "pretrained" else None
    timm_name = f"{cfg.get('architecture', name)}.{tag}" if tag else name
    file = checkpoint if checkpoint is not None else (_hub_file(net) if weights == "pretrained" else None)
    if file is not None:
        digest, what = file_sha256(file), "file sha256"
    else:
        digest, what = state_sha256(net), "state sha256"
    source = str(checkpoint) if checkpoint is not None else f"timm:{name}:{weights}"
    return {"source": source, "weights": weights, "timm_name": timm_name, "tag": tag, "sha256": digest,
            "sha256_of": what,
            "identity": f"{timm_name} ({weights}{': ' + Path(str(checkpoint)).name if checkpoint else ''}), "
                        f"{what} {digest[:16]}"}


def identity(model: "CurvModel") -> str:
    """One line naming a loaded model's weights (paper: timm name + tag + sha256; embedded: the
    shipped file's sha256)."""
    card = getattr(model, "card", {}) or {}
    if "identity" in card:
        return card["identity"]
    if "sha256" in card:
        return f"{model.name} (curvbook weights), file sha256 {card['sha256'][:16]}"
    return f"{model.name} ({card.get('source', 'unknown weights')})"


def load(name: str, profile: Profile, checkpoint: str | Path | None = None,
         device: str | torch.device | None = None) -> CurvModel:
    """Model ``name`` of ``profile`` on ``device`` (default: the profile's).

    Embedded profiles read ``profile.model_dir/<name>.safetensors`` (or ``checkpoint``: other weights,
    e.g. an epoch snapshot); ImageNet profiles load timm's weights (``profile.weights``), or a local
    file from ``checkpoint`` / ``profile.checkpoints``.
    """
    profile = require(profile)
    if profile.dataset == "fashion-mnist":
        if name not in _SPECS or _SPECS[name].dataset != "fashion-mnist":
            raise ValueError(f"unknown embedded model {name!r}; choose one of {', '.join(list_models())}")
        model = load_embedded(name, checkpoint if checkpoint is not None else profile.model_dir / f"{name}.safetensors")
    else:
        import timm

        if name in _SPECS and _SPECS[name].dataset != "imagenet":
            raise ValueError(f"{name!r} is an embedded (Fashion-MNIST) model; the {profile.name!r} profile "
                             f"uses ImageNet models such as {', '.join(PAPER_MODELS)}")
        if name not in timm.list_models():
            raise ValueError(f"unknown timm model {name!r} (the paper's are {', '.join(PAPER_MODELS)})")
        model = load_paper(name, checkpoint=checkpoint or profile.checkpoint_for(name), weights=profile.weights)
    return model.to(device or profile.device)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
