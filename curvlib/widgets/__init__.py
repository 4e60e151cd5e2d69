"""Sliders over precomputed frames: ``live`` (ipywidgets, in Jupyter) and ``static`` (self-contained
HTML and JavaScript for the built site) show the same frames. What a frame shows is computed in
:mod:`curvlib.measure.views` and drawn by :mod:`curvlib.plots.explorer`.
"""
from .live import live_explorer, live_slider, live_trajectory_player
from .static import static_explorer, static_sliders, static_trajectory_player

__all__ = ["live_explorer", "live_slider", "live_trajectory_player", "static_explorer", "static_sliders",
           "static_trajectory_player"]
from .tabs import figure_tabs  # noqa: E402

__all__ += ["figure_tabs"]
