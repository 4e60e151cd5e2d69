"""curvlib: the analysis code of curvbook, a reproduction of *Curved Representation Space of
Vision Transformers* (Kim, Park, Kim, Lee, AAAI).

``CURVLIB_PROGRESS=text`` (set by the book build, ``book/_ext``) makes every progress bar plain text
on the process's own stderr: in a book build that is the terminal running ``jupyter-book``, so the
static pages get no empty widget boxes. Unset (``auto``), bars are widgets in a live notebook and
text in a terminal, as ``tqdm.auto`` decides.
"""
__version__ = "0.1.0"

from .config import apply_progress_setting as _apply_progress_setting  # noqa: E402

_apply_progress_setting()
