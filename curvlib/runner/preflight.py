"""A check that catches a wrong setup before it produces a wrong book.

Before an experiment computes anything on an ImageNet profile, each pretrained model is evaluated
on a seeded sample of ``N_CHECK`` images of the profile's folder (the same for every model) and its
top-1 is compared with what those weights reach on ImageNet val according to timm's own results
table (:data:`REFERENCE_TOP1`). Far below it — the upper end of a 99 % Wilson interval of the
measured top-1 under the reference less ``MAX_DROP`` — the run stops with :class:`SetupError`,
naming the likely causes: labels (a folder arrangement curvlib read wrongly), preprocessing, or
other weights. The tolerance is wide on purpose: ImageNet-V2 scores ~10 points under ImageNet
val, a subset such as Imagenette above it, and a local checkpoint of the same architecture may be
a different training run; shuffled labels (≈ 0.1 %) or a broken pipeline are caught all the same
— but only gross errors are: on an easy subset such as Imagenette (≈ 90 %+) a pipeline losing 30
points still passes.

Random-init weights (``profile.weights == "random"``, tests and benchmarks) have no reference and
are not checked; ``profile.check_accuracy = False`` (``CURVLIB_CHECK_ACCURACY=0``,
``--no-accuracy-check``) turns the check off for a run that knows better. The outcome is cached
like an experiment (keyed by the weights, the folder's class map and sampled files, and the code),
so it runs once per model and folder and again whenever any of those changes.
"""
from __future__ import annotations

from .. import cache, data, models
from ..config import Profile, require
from ..inference import predict
from ..stats import wilson
from .fingerprint import code_fingerprint, module_closure

#: timm's published ImageNet-val top-1 (%) of the weights ``timm.create_model(name, pretrained=True)``
#: loads (timm 1.0: the default pretrained tag), with the resolution timm evaluated at.
REFERENCE_TOP1 = {
    "resnet50": ("resnet50.a1_in1k", 81.214, "288 px, crop 1.0 (timm's test size; curvlib evaluates at 224 px)"),
    "mobilenetv2_100": ("mobilenetv2_100.ra_in1k", 72.976, "224 px, crop 0.875"),
    "vit_base_patch16_224": ("vit_base_patch16_224.augreg2_in21k_ft_in1k", 85.096, "224 px, crop 0.9"),
    "swin_tiny_patch4_window7_224": ("swin_tiny_patch4_window7_224.ms_in1k", 81.376, "224 px, crop 0.9"),
}
#: Where :data:`REFERENCE_TOP1` comes from.
SOURCE = ("timm's results table, github.com/huggingface/pytorch-image-models results/results-imagenet.csv "
          "(commit 0173a139)")
#: Images evaluated (the profile's seeded subset, the same for every model).
N_CHECK = 256
#: Fewest images the check runs on; a smaller folder is reported "too few images to check". Below 6
#: images not even 0 correct can fail (the 99 % interval's upper end stays above every threshold:
#: 1 image at 0 % "passed"); 10 leaves a margin, and catches shuffled labels (≈ 0 % top-1).
MIN_CHECK = 10
#: Allowed drop (in top-1 points) below the reference before a run stops.
MAX_DROP = 20.0
#: Confidence of the interval the decision uses.
LEVEL = 0.99


class SetupError(RuntimeError):
    """The data, preprocessing or weights are not what the experiment assumes."""


def judge(correct: int, n: int, reference: float, max_drop: float = MAX_DROP, level: float = LEVEL) -> dict:
    """The decision for ``correct`` of ``n`` images against a reference top-1 (%): ``ok`` unless the
    interval's upper end is below ``reference − max_drop``. Returns top1, lo, hi (%), threshold, ok."""
    lo, hi = wilson(correct, n, level)
    threshold = reference - max_drop
    return {"n": n, "top1": 100 * correct / n, "lo": 100 * lo, "hi": 100 * hi, "reference": reference,
            "threshold": threshold, "ok": bool(100 * hi >= threshold)}


def reference_for(model) -> tuple[str, float, str] | None:
    """(weights tag, top-1 %, how timm measured it) for a loaded paper model, or None (random init)."""
    card = getattr(model, "card", {})
    if card.get("weights") == "random":
        return None
    return REFERENCE_TOP1.get(model.name)


def _measure(model, profile: Profile, n: int) -> dict:
    x, y = data.test_set(profile, n=n, model_name=model.name)
    pred = predict(model, x, profile.batch_size, progress=True, desc=f"accuracy check {model.name}").argmax(-1)
    return {"correct": int((pred == y).sum()), "n": len(y)}


def check(model, profile: Profile, n: int = N_CHECK, refresh: bool = False) -> dict | None:
    """Measure a loaded ImageNet model's top-1 on the profile's first ``n`` images (cached) and judge it
    against :data:`REFERENCE_TOP1`; None where there is no reference (random init, unknown model)."""
    profile = require(profile)
    ref = reference_for(model)
    if ref is None or profile.dataset != "imagenet":
        return None
    tag, top1, how = ref

    if data.n_available(profile) < MIN_CHECK:  # see why_unchecked
        return None
    key = {"n": n, **data.data_identity(profile), "weights": model.fingerprint, "folder": _folder_signature(profile, n),
           "code": code_fingerprint(module_closure(__name__))}
    got = cache.cached("accuracy_check", model.name, key, lambda: _measure(model, profile, n), profile=profile,
                       refresh=refresh)
    out = judge(got["correct"], got["n"], top1)
    return {**out, "model": model.name, "reference_weights": tag, "reference_how": how,
            "weights": model.card.get("identity", model.fingerprint)}


def _folder_signature(profile: Profile, n: int) -> str:
    """A hash of the folder's class → index map and the sampled files (relative paths and sizes), so
    a renamed or refilled folder at the same path is checked again."""
    import hashlib
    import os


    ds = data.imagefolder(profile.data_dir, n=n, transform=lambda im: im)
    base = ds.dataset if hasattr(ds, "dataset") else ds
    idx = ds.indices if hasattr(ds, "indices") else range(len(base))
    h = hashlib.sha256(repr(sorted(base.class_to_idx.items())).encode())
    for i in idx:
        path, target = base.samples[i]
        h.update(f"{os.path.relpath(path, profile.data_dir)}:{os.path.getsize(path)}:{target};".encode())
    return h.hexdigest()[:16]


def why_unchecked(name: str, profile: Profile) -> str:
    """Why a model of an ImageNet profile is not checked (for the CLI and the pages)."""
    if not profile.check_accuracy:
        return "accuracy check switched off"
    if profile.weights == "random":
        return "no accuracy check (random-init weights have no reference)"

    if profile.dataset == "imagenet" and (k := data.n_available(profile)) < MIN_CHECK:
        return f"too few images to check ({k} in {profile.data_dir}; the accuracy check needs at least {MIN_CHECK})"
    return f"no accuracy check (no published top-1 recorded for {name} in curvlib.runner.preflight.REFERENCE_TOP1)"


def message(result: dict, profile: Profile) -> str:
    """Why a run stopped, and what to look at."""
    return (f"{result['model']}: top-1 {result['top1']:.1f} % on a seeded sample of {result['n']} images of "
            f"{profile.data_dir} "
            f"({LEVEL:.0%} interval up to {result['hi']:.1f} %), but the weights it was given "
            f"({result['weights']}) should reach about {result['reference']:.1f} % on ImageNet val "
            f"({result['reference_weights']}, {result['reference_how']}; {SOURCE}); the run stops below "
            f"{result['threshold']:.1f} %. Likely causes: (1) labels — class folders must be named by WordNet id "
            "(n01440764 …) or by ImageNet-1k index (0 … 999), one folder per class, images of that class inside; "
            "(2) preprocessing — images must be ordinary RGB photos (curvlib resizes, crops and normalises them "
            "itself: do not give it normalised or pre-cropped tensors); (3) weights — another checkpoint than "
            "the timm default. If you know the data is right (e.g. a deliberately hard subset), rerun with "
            "--no-accuracy-check or CURVLIB_CHECK_ACCURACY=0.")


def require_accuracy(model, profile: Profile) -> dict | None:
    """:func:`check`, raising :class:`SetupError` (see :func:`message`) when the model is far below its
    reference; does nothing when ``profile.check_accuracy`` is off."""
    profile = require(profile)
    if not profile.check_accuracy:
        return None
    result = check(model, profile)
    if result is not None and not result["ok"]:
        raise SetupError(message(result, profile))
    return result


def assert_reference_tags() -> None:
    """The default pretrained tag timm would load for each paper model is the one :data:`REFERENCE_TOP1`
    describes (a newer timm may change it; then the reference must be looked up again)."""
    import timm

    for name, (tag, _, _) in REFERENCE_TOP1.items():
        cfg = timm.create_model(name, pretrained=False).pretrained_cfg
        got = f"{cfg.get('architecture', name)}.{cfg.get('tag')}"
        if got != tag:
            raise AssertionError(f"timm's default weights for {name} are {got}, the reference describes {tag}")


def setup_summary(profile: Profile) -> str:
    """One line per model of ``profile``: the weights' identity (timm name + pretrained tag + sha256,
    or the shipped file's sha256) and, on ImageNet profiles, the accuracy check's outcome — printed
    at the top of every chapter so a page says which weights and data produced it."""

    profile = require(profile)
    lines = []
    for name in profile.models:
        model = models.load(name, profile, device="cpu")
        line = "  " + models.identity(model).replace("), ", ")\n      ", 1)  # name (weights) / sha256 on two lines
        if profile.dataset == "imagenet":
            r = check(model, profile) if profile.check_accuracy else None
            if r is not None:
                line += (f"\n      top-1 {r['top1']:.1f} % [{r['lo']:.1f}, {r['hi']:.1f}] on {r['n']} images vs "
                         f"timm's {r['reference']:.1f} %: check {'passed' if r['ok'] else 'FAILED'}")
            else:
                line += "\n      " + why_unchecked(name, profile)
        lines.append(line)
    data = str(profile.data_dir) if profile.data_dir else "the shipped Fashion-MNIST test set"
    return f"weights ({profile.name} profile, data: {data}):\n" + "\n".join(lines)
