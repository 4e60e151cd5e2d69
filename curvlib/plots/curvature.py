"""The curvature chapter's figure grid and page tables, drawn from what :mod:`curvlib.claims.curvature`
computes: θ bands per model, mean θ per ruler, and ω / κ / kinks per model."""
from __future__ import annotations

import pandas as pd

from ..models import family
from .figures import theta_bands

#: Page headers of :func:`curvlib.claims.curvature.omega_table`'s shown columns.
OMEGA_COLUMNS = {"omega_median": "ω median (FGSM)", "kappa_median": "κ median", "kinks_per_eps": "kinks per ε (FGSM)",
                 "top_block": "fastest block", "omega_median (random)": "ω median (random)",
                 "kinks_per_eps (random)": "kinks per ε (random)"}


def theta_bands_figure(results: dict, kind: str, protocol: str = "oneway", saturation: bool = False):
    """The paper's Figure 5 for every model of ``results`` ((model, kind, protocol, saturation) →
    :func:`curvlib.experiments.theta.theta_experiment` result), one panel each (two per row, shared
    axes), θ in degrees against ε for one direction ``kind`` and ruler. Returns the Figure."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(k[0] for k in results))
    rows = -(-len(names) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(9, 3.2 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = results[(name, kind, protocol, saturation)]
        theta_bands(r["summary"], ax=ax, x=r["eps"][1:-1].numpy(), title=f"{name} ({family(name, 'model')}), {kind}")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.tight_layout()
    return fig


def ruler_pivot_style(table: pd.DataFrame):
    """A :func:`curvlib.claims.curvature.ruler_pivot` as a compact page table (degrees, two decimals).
    Returns a Styler."""
    return table.style.format("{:.2f}").set_table_styles(
        [{"selector": "td, th", "props": "font-size: 0.75em; padding: 2px 5px"}])


def omega_table_style(table: pd.DataFrame):
    """The shown columns of a :func:`curvlib.claims.curvature.omega_table` with the page's headers,
    three significant digits, "–" where a model has no value. Returns a Styler."""
    shown = table[["family", *OMEGA_COLUMNS]].rename(columns=OMEGA_COLUMNS)
    numbers = {c: "{:.3g}" for k, c in OMEGA_COLUMNS.items() if k != "top_block"}
    return shown.style.format(numbers, na_rep="–").set_table_styles(
        [{"selector": "td, th", "props": "font-size: 0.8em"}])
