"""Figures and page tables: each function takes computed data (tables, tensors) and draws it; none
computes a statistic. Importing this package applies nothing: chapters call :func:`use_theme`.

===============  ============================================================================
``theme``        family and model colours, the seaborn theme, PNG export, page tables
``calibration``  reliability diagrams and confidence histograms
``figures``      the chapters' figures: boundary scatter, θ bands, jump pairs, ablations
``attention``    the attention chapter's score-path figure
``boundary``     the boundary chapter's scatter grid, images at ε* and page tables
``curvature``    the curvature chapter's θ bands and table styles
``random_jump``  the random-jump chapter's images, sweep figure and page tables
``trajectories`` the trajectories chapter's flatness and single-line figures
``surgery``      the surgery chapter's figures
``explorer``     the 2-D explorer and trajectory-player drawings the widgets show
===============  ============================================================================

Public names are re-exported: ``from curvlib import plots; plots.reliability_diagram(...)``.
"""
from .calibration import confidence_histogram, reliability_diagram
from .explorer import class_colors, class_legend, class_names, explorer_figure, plot_plane, plot_walk
from .figures import (
                      block_omega_figure,
                      boundary_scatter,
                      component_heatmap,
                      dynamics_figure,
                      image_row,
                      interval_lines,
                      intuition_figure,
                      jump_pairs,
                      status_text,
                      step_sweep_figure,
                      swap_figure,
                      theta_at_step,
                      theta_bands,
                      theta_step_limits,
)
from .surgery import SURGERY_ORDER, surgery_ratios, surgery_shares, turning_scatter
from .theme import (
                      COLUMN_TEXT,
                      FAMILY_COLOR,
                      FAMILY_PALETTE,
                      MODEL_COLOR,
                      THEME,
                      model_colors,
                      model_dashes,
                      page_table,
                      to_png,
                      use_theme,
)

__all__ = ["COLUMN_TEXT", "FAMILY_COLOR", "FAMILY_PALETTE", "MODEL_COLOR", "SURGERY_ORDER", "THEME",
           "block_omega_figure", "boundary_scatter", "class_colors", "class_legend", "class_names", "component_heatmap",
           "confidence_histogram", "dynamics_figure", "explorer_figure", "image_row", "interval_lines",
           "intuition_figure", "jump_pairs", "model_colors", "model_dashes", "page_table", "plot_plane", "plot_walk",
           "reliability_diagram", "status_text", "step_sweep_figure", "surgery_ratios", "surgery_shares",
           "swap_figure", "theta_at_step", "theta_bands", "theta_step_limits", "to_png", "turning_scatter", "use_theme"]
from .calibration import calibration_panel, confidence_grid, reliability_grid, training_curves  # noqa: E402
from .surgery import gelu_toy_paths  # noqa: E402

__all__ += ["calibration_panel", "confidence_grid", "gelu_toy_paths", "reliability_grid", "training_curves"]
