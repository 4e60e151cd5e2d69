"""Tabs of pre-rendered figures: an ipywidgets ``Tab`` whose pages hold PNGs, kept in the widget state, so the
tabs switch on the static site too, with no kernel."""
from __future__ import annotations

from ..plots.theme import to_png


def figure_tabs(figures: dict):
    """An ipywidgets ``Tab`` with one page per figure (title → matplotlib figure), each shown as its PNG; the
    figures are closed. Returns the ``Tab``."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import Image

    if not figures:
        raise ValueError("figure_tabs needs at least one figure (title → matplotlib figure)")
    children = []
    for fig in figures.values():
        out = widgets.Output()
        out.append_display_data(Image(to_png(fig)))  # kept in the widget's state for the static page
        plt.close(fig)
        children.append(out)
    tabs = widgets.Tab(children=children)
    for i, title in enumerate(figures):
        tabs.set_title(i, title)
    return tabs
