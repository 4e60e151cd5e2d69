"""curvlib: the analysis code of curvbook, a reproduction of *Curved Representation Space of
Vision Transformers* (Kim, Park, Kim, Lee, AAAI)."""
__version__ = "0.1.0"
