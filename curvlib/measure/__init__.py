"""Measurements: pure functions of a model, images (pixels in [0, 1]) and directions, returning
tensors or tidy tables. Nothing here caches, reads a profile or registers an experiment.

=================  ==========================================================================
``direction``      FGSM-sign and random directions d, ‖d‖ = √D, and the saturation-aware variant
``probe``          features along a line x + ε d or over a plane; ε grids; 2-D projections
``angles``         the finite-step turning angle θ(n) and its quantile bands
``curvature``      the step-free curvature κ and turning rate ω (forward-mode derivatives)
``kinks``          activation sign switches along a path
``mesh``           flatness of a probed plane (affine residual)
``travel``         ε*: the first ε with f(x + ε d) ≠ y (the boundary search)
``certify``        a dense scan that checks the search's ε*
``random_jump``    travel after a small random step; PSNR
``calibration``    reliability tables, ECE, sECE, MCE, ACE and their bootstrap intervals
``attention``      additivity defects of attention and of every layer type
``surgery``        a model with chosen parts replaced by their linearisation at an anchor
``views``          what the explorer and trajectory widgets show (computed, not drawn)
=================  ==========================================================================

Modules are imported by name (``from curvlib.measure.travel import travel``): the package does not
re-export, so a function never hides the module of the same name.
"""
