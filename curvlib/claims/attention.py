"""Attention's bends against the CNNs' ReLU bends, per family, from the layer defects — and the attention
chapter's tables and sentences: the score path of real tokens (:func:`token_lines`), the ReLUs' true inputs
(:func:`relu_inputs`) and the per-component bends (:func:`component_grid`, :func:`attention_markdown`).
Tables are tidy frames; the ``*_markdown`` functions word them for the chapter."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import models
from ..measure import attention as at
from ..stats import bootstrap
from .records import CLAIMS
from .resample import family_map, split_families


def attention_claim(long: pd.DataFrame, families: dict | None = None, cnn_component: str = "relu",
                    n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Bend of the Transformers' attention modules over the bend of the CNNs' activations.

    ``long``: per-sample rows of :func:`curvlib.experiments.attention.attention_experiment` (``per_sample=True``:
    ``model``, ``component``, ``layer``, ``sample`` = test image, ``bend``; Swin: one row per window).
    The statistic follows the chapter: per layer the median bend over the images (and windows), per
    model the median over its layers of the component, per family the median over its models, then
    Transformers' attention / CNNs' ``cnn_component``. The interval resamples test images, the same
    resample for every model (they saw the same images). The paper's explanation needs attention to
    bend more: "holds" above 1. Bends are relative to each layer's own input change, which differs
    between architectures for the same input step."""
    need = {"model", "component", "layer", "sample", "bend"} - set(long.columns)
    if need:
        raise ValueError(f"not a per-sample attention frame: no column(s) {', '.join(sorted(need))}")
    names = list(dict.fromkeys(long.model))
    families = family_map(names, families)
    fams = split_families(names, families)
    want = {"Transformer": "attention", "CNN": cnn_component}
    images = np.sort(long["sample"].unique())
    pos = {s: i for i, s in enumerate(images)}
    layers = {}  # model → list of [n_images, rows per image] bend matrices, one per layer
    for m in names:
        sel = long[(long.model == m) & (long.component == want[families[m]])]
        if sel.empty:
            raise ValueError(f"{m!r} has no {want[families[m]]!r} layer to compare")
        mats = []
        for _, g in sel.groupby("layer", sort=False):
            k = g.groupby("sample").size()
            if k.nunique() != 1 or len(k) != len(images):
                raise ValueError(f"{m!r}: every image needs the same number of rows per layer")
            order = np.argsort([pos[s] for s in g["sample"].to_numpy()], kind="stable")
            mats.append(g.bend.to_numpy(float)[order].reshape(len(images), -1))
        layers[m] = mats

    def stat(idx):
        med = {m: np.median([np.median(a[idx].reshape(len(idx), -1), axis=1) for a in mats], axis=0)
               for m, mats in layers.items()}
        fam = {f: np.median([med[m] for m in ms], axis=0) for f, ms in fams.items()}
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(fam["CNN"] > 0, fam["Transformer"] / fam["CNN"], np.nan)

    est, lo, hi = bootstrap(stat, len(images), n_boot=n_boot, level=level, seed=seed)
    return CLAIMS["attention"].judge(
        est, lo, hi, len(images),
        measure=f"bend of attention (Transformers) / bend of {cnn_component} layers (CNNs), FGSM segment",
        note="Attention's non-additivity itself is exact algebra (the chapter checks eq. 8–13 to rounding); "
             "what is tested here is whether it bends a path more than the CNNs' activations do.")


# ---------------------------------------------------------------------------------------------
# The attention chapter's tables and sentences: the score path of real tokens, the ReLUs' inputs and
# the per-component bends, as data and as the chapter's Markdown.

#: The score-path columns of :func:`curvlib.measure.attention.score_line` the chapter takes medians of.
SCORE_PATH = ["change", "linear", "quadratic", "bend", "bend_predicted", "linear_share", "rel_bend"]
#: Row order of the component tables: elementary components, then composites.
COMPONENT_ORDER = ["conv", "linear", "batchnorm", "layernorm", "relu", "gelu", "batchnorm+relu", "mlp",
                   "attention scores", "softmax", "attention"]
#: Module type of a variant's swap → the component name it is measured under.
SWAP_KIND = {"ReLU": "relu", "ReLU6": "relu", "GELU": "gelu", "LayerNorm": "layernorm", "BatchNorm": "batchnorm"}


def first_module(lines: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`token_lines` frames for the first attention module of the first model."""
    model = lines.model.iloc[0]
    return lines[(lines.model == model) & (lines.layer == lines[lines.model == model].layer.iloc[0])]


def score_path(rows: pd.DataFrame) -> pd.DataFrame:
    """Median over images (and windows) of the :data:`SCORE_PATH` columns per t (index ``t``)."""
    return rows.groupby("t")[SCORE_PATH].median()


def slope(t, v) -> float:
    """Exponent k of v ∝ t^k (least squares on log–log; t, v positive)."""
    return np.polyfit(np.log(t), np.log(v), 1)[0]


def score_path_markdown(rows: pd.DataFrame) -> str:
    """Two Markdown bullets on one module's score path (``rows``: :func:`first_module`): the exponents of the
    bend and of ‖tR‖ in t, measured against predicted bend, and R's share and β at the smallest and largest t."""
    med = score_path(rows)
    t0, t1 = med.index[0], med.index[-1]
    return (f"- The measured bend grows as t^{slope(med.index, med.bend):.3f}, ‖tR‖ as "
            f"t^{slope(med.index, med.linear):.3f}; measured and predicted bend (t²‖A(P)‖/2) agree to "
            f"{(rows.bend / rows.bend_predicted - 1).abs().max():.0e} (relative), eq. (line) to "
            f"{rows.identity_err.max():.0e}.\n"
            f"- R's share of the score change is {med.linear_share.iloc[0]:.4f} at t = {t0:g} and "
            f"{med.linear_share.iloc[-1]:.2f} at t = {t1:g}; the relative bend β is "
            f"{med.rel_bend.iloc[0]:.1e} at t = {t0:g} and {med.rel_bend.iloc[-1]:.2f} at t = {t1:g}.")


def share_column(t: float) -> str:
    """The :func:`per_layer_table` column of R's share at step ``t``."""
    return f"R share at t={t:g}"


def per_layer_table(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per attention module of :func:`token_lines` frames (model, layer, shifted): the exponent of the
    median bend in t, R's median share of the score change at the smallest and largest t, β at the largest."""
    t0, t1 = lines.t.min(), lines.t.max()
    return lines.groupby(["model", "layer", "shifted"], sort=False).apply(
        lambda g: pd.Series({"bend exponent": slope(*g.groupby("t").bend.median().reset_index().to_numpy().T),
                             share_column(t0): g[g.t == t0].linear_share.median(),
                             share_column(t1): g[g.t == t1].linear_share.median(),
                             f"β at t={t1:g}": g[g.t == t1].rel_bend.median()}), include_groups=False).reset_index()


def per_layer_markdown(per_layer: pd.DataFrame, t0: float) -> str:
    """One sentence on a :func:`per_layer_table`: the range of the bend exponents and the smallest share
    of R at step ``t0``."""
    return (f"Over all {len(per_layer)} attention modules the bend exponent lies in "
            f"[{per_layer['bend exponent'].min():.3f}, {per_layer['bend exponent'].max():.3f}] and R's share at "
            f"t = {t0:g} is at least {per_layer[share_column(t0)].min():.3f}.")


def relu_inputs_markdown(neg: pd.DataFrame, eps: float) -> str:
    """One sentence on a :func:`relu_inputs` table."""
    return ("Median over a model's ReLUs of the share of negative input entries / of entries that switch sign "
            f"along the FGSM segment (ε = {eps}): "
            + ", ".join(f"{r.model} {r['negative share']:.0%} / {r['switching share']:.1%} ({r.ReLUs} ReLUs)"
                        for _, r in neg.iterrows()) + ".")


def component_grid(bends: pd.DataFrame, names, value: str = "bend") -> pd.DataFrame:
    """Components (rows, in :data:`COMPONENT_ORDER`, others after) × models ``names`` (columns) of one
    column of :func:`~curvlib.measure.attention.component_bends` (``bend`` or ``defect``); NaN where a
    model has no such component."""
    grid = bends.pivot(index="component", columns="model", values=value)
    rows = [c for c in COMPONENT_ORDER if c in grid.index] + sorted(set(grid.index) - set(COMPONENT_ORDER))
    return grid.reindex(index=rows, columns=list(names))


def bend_of(bends: pd.DataFrame, model: str, component: str) -> float:
    """The median bend of ``component`` in ``model`` from :func:`~curvlib.measure.attention.component_bends`
    (NaN if the model has none)."""
    s = bends[(bends.model == model) & (bends.component == component)].bend
    return float(s.iloc[0]) if len(s) else float("nan")


def _elementary(bends: pd.DataFrame, model: str) -> pd.DataFrame:
    """The model's non-affine, non-composite components, most-bending first."""
    return bends[(bends.model == model) & ~bends.affine & ~bends.composite]


def model_lines(bends: pd.DataFrame, names) -> list[str]:
    """One Markdown bullet per model: its three most-bending elementary components, the whole attention
    module (Transformers) and, for a component-swap variant, the swapped component against its parent's."""
    out = []
    for name in names:
        sp = models.spec(name)
        line = (f"- **{name}** ({sp.family}, {sp.norm} + {sp.act}{', ' + sp.swap_label if sp.swap else ''}): bends "
                "most in " + ", then ".join(f"{r.component} ({r.bend:.2g})" for r in _elementary(bends, name)
                                           .head(3).itertuples()))
        if sp.family == "Transformer":
            line += f"; whole attention module {bend_of(bends, name, 'attention'):.2g}"
        if sp.swap:
            old, new = SWAP_KIND[sp.swap[0]], SWAP_KIND[sp.swap[1]]
            line += (f". The swap puts {new} ({bend_of(bends, name, new):.2g}) where {sp.parent} has {old} "
                     f"({bend_of(bends, sp.parent, old):.2g})")
            if sp.family == "Transformer":
                line += (f"; attention {bend_of(bends, name, 'attention'):.2g} vs "
                         f"{bend_of(bends, sp.parent, 'attention'):.2g}")
        out.append(line + ".")
    return out


def attention_markdown(bends: pd.DataFrame, layers: pd.DataFrame, row: dict, names, variants=()) -> str:
    """The chapter's reading of the per-component bends (``layers``: the models'
    :func:`~curvlib.measure.attention.layer_defects` rows, ``bends``: their ``component_bends``) and of the
    attention claim's ledger ``row`` (:func:`attention_claim`): :func:`model_lines` of the models ``names``
    and ``variants``; then, over ``names``, the verdict sentence, the statistic's parts per model, each
    Transformer's most-bending component, the non-affine components met, and the conclusion."""
    cnns = [m for m in names if models.family(m) == "CNN"]
    trs = [m for m in names if models.family(m) == "Transformer"]
    # one value per model (median over its layers), so a model with many layers does not outweigh the others
    relu_cnn = np.median([bend_of(bends, m, "relu") for m in cnns])
    attn_tr = np.median([bend_of(bends, m, "attention") for m in trs])
    top = {m: _elementary(bends, m).iloc[0].component for m in trs}
    top_bend = np.median([bend_of(bends, m, c) for m, c in top.items()])
    attn_top = [m for m, c in top.items() if c in ("attention", "attention scores", "softmax")]
    nonaffine = {m: _elementary(bends, m).component.tolist() for m in names}
    affine_max = layers[layers.component.isin(at.AFFINE)].defect.max()
    per_model = (", ".join(f"{m} relu {bend_of(bends, m, 'relu'):.2g}" for m in cnns) + "; "
                 + ", ".join(f"{m} attention {bend_of(bends, m, 'attention'):.2g}" for m in trs))
    out = [*model_lines(bends, [*names, *variants]), "",
           CLAIMS["attention"].sentence(row) + " The statistic (`claims.attention_claim`) is the median over models "
           f"of the median bend of a model's attention modules, {attn_tr:.2g}, over the same for the ReLUs, "
           f"{relu_cnn:.2g} (per model: {per_model}). Against each Transformer's most-bending elementary component "
           f"the CNNs' ReLUs bend ×{relu_cnn / top_bend:.2f} as much.",
           "",
           "The most-bending elementary component of each Transformer: "
           + ", ".join(f"{m} {c} ({bend_of(bends, m, c):.2g})" for m, c in top.items())
           + (f" — attention (or its scores/softmax) in {len(attn_top)} of {len(trs)}." if attn_top else
              " — in none of them the attention module, its scores or its softmax."),
           "",
           "Non-affine elementary components met along the path: "
           + "; ".join(f"{m}: {', '.join(c)}" for m, c in nonaffine.items())
           + f". Largest additivity defect of any conv / linear / batch-norm layer: {affine_max:.1e} "
           "(float32 rounding).",
           ""]
    out.append(CLAIMS["attention"].reads_as(row["verdict"]))
    return "\n".join(out)


def maps_markdown(props: pd.DataFrame) -> str:
    """The reading of the chapter's toy maps (``props``: one row per ``map`` with ``additivity gap``,
    ``δ (affine defect)`` and ``β (bend)``; rows "conv with bias", "score A(Z) = Z M Zᵀ" and "ReLU"): the
    convolution with bias is not additive but affine, the score and the ReLU are neither."""
    t = props.set_index("map")
    cb = t.loc["conv with bias"]
    return (f"The convolution with bias is not additive (gap {cb['additivity gap']:.2f}) but affine: "
            f"δ = {cb['δ (affine defect)']:.0e} and β = {cb['β (bend)']:.0e}, float64 rounding. The quadratic "
            "score and the ReLU are neither additive nor affine: " + "; ".join(
                f"{k}: gap {r['additivity gap']:.2f}, δ = {r['δ (affine defect)']:.2f}, β = {r['β (bend)']:.2f}"
                for k, r in t.loc[["score A(Z) = Z M Zᵀ", "ReLU"]].iterrows()) + ".")
