"""Colours (one per family, one per model), the seaborn theme, PNG export and the pages' tables."""
from __future__ import annotations

import pandas as pd
import seaborn as sns

from .. import models

FAMILY_COLOR = {"CNN": "#1f77b4", "Transformer": "#d62728"}


#: The book's one figure style: seaborn's white "ticks" style at sizes readable in the ~800 px content
#: column (a 9-inch figure at 100 dpi is shown at about 0.9 of its size).
THEME = dict(style="ticks", context="notebook", font_scale=0.85,
             rc={"figure.dpi": 100, "savefig.dpi": 100, "axes.titlesize": 11, "legend.fontsize": 8.5,
                 "legend.title_fontsize": 9, "axes.spines.top": False, "axes.spines.right": False})


def use_theme() -> None:
    """Apply :data:`THEME` to matplotlib (idempotent). Importing curvlib applies nothing: a chapter calls
    this once, in its setup cell."""
    sns.set_theme(**THEME)


#: Distinct colours per model within a family's hue (blues/greens for CNNs, reds/oranges for Transformers).
FAMILY_PALETTE = {"CNN": ("#1f77b4", "#17becf", "#2ca02c", "#0b3d91"),
                  "Transformer": ("#d62728", "#ff7f0e", "#9467bd", "#8c564b")}


#: The same colour for a model in every figure of the book: the embedded models, their component-swap
#: variants and the paper's models (each paper model shares its embedded counterpart's colour).
_CNN, _TF = FAMILY_PALETTE["CNN"], FAMILY_PALETTE["Transformer"]


MODEL_COLOR = {"resnet": _CNN[0], "mobilenetv2": _CNN[1], "resnet_gelu": _CNN[2], "resnet_ln": _CNN[3],
               "vit": _TF[0], "swin": _TF[1], "vit_bn": _TF[2], "vit_relu": _TF[3]}


def model_colors(names) -> dict[str, str]:
    """One distinct colour per model for figures that compare models. Known models keep their
    colour in every figure (:data:`MODEL_COLOR`); others get the next unused colour of their
    family's palette (a CNN is always bluish, a Transformer reddish), unknown families greys."""
    names = list(names)
    out = {n: MODEL_COLOR[n] for n in names if n in MODEL_COLOR}
    for name in names:
        if name in out:
            continue
        fam = models.family(name, default=None)
        pal = FAMILY_PALETTE.get(fam, ("#444444", "#888888", "#bbbbbb"))
        free = [c for c in pal if c not in out.values()] or list(pal)
        out[name] = free[0]
    return {n: out[n] for n in names}


def model_dashes(names) -> dict:
    """seaborn ``dashes`` per model: solid for the models, dashed for component-swap variants."""
    return {n: (4, 1.5) if models.family(n, default=None) and models.spec(n).parent is not None else ""
            for n in names}


def to_png(fig, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure (for widgets whose content must survive a static build)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def new_axes(ax, figsize=(4, 4)):
    """``ax``, or the axes of a new figure of ``figsize`` inches when it is None."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


#: Column headers for tables on the pages: symbols and units instead of the frames' column names.
COLUMN_TEXT = {"accuracy": "accuracy", "ece": "ECE", "sece": "sECE", "theta_mean": "mean θ (°)",
               "theta_median": "median θ (°)", "theta_ci_lo": "θ 95 % lo", "theta_ci_hi": "θ 95 % hi",
               "eps_median": "median ε*", "eps_median_low": "median ε*, conf ≤ 0.9", "epoch": "epoch",
               "epochs": "epochs", "model": "model", "label": "model", "swap": "swap"}


def page_table(df: pd.DataFrame, columns, digits: int = 4, hide_index: bool = True):
    """A frame as a compact table for a page: ``columns`` (names in ``df``) renamed by
    :data:`COLUMN_TEXT`, numbers to ``digits`` significant digits, small font. Returns a Styler."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"no column(s) {', '.join(missing)} in the table (have {', '.join(map(str, df.columns))})")
    shown = df[list(columns)].rename(columns=COLUMN_TEXT)
    numeric = [COLUMN_TEXT.get(c, c) for c in columns if pd.api.types.is_float_dtype(df[c])]
    style = shown.style.format({c: f"{{:.{digits}g}}" for c in numeric}, na_rep="–").set_table_styles(
        [{"selector": "td, th", "props": "font-size: 0.8em; padding: 2px 6px"}])
    return style.hide(axis="index") if hide_index else style
