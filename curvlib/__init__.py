"""curvlib: the analysis code of curvbook, a reproduction of *Curved Representation Space of
Vision Transformers* (Kim, Park, Kim, Lee, AAAI).

``CURVLIB_PROGRESS=text`` (set by the book build, ``book/_ext``) makes every progress bar plain text
on the process's own stderr: in a book build that is the terminal running ``jupyter-book``, so the
static pages get no empty widget boxes. Unset (``auto``), bars are widgets in a live notebook and
text in a terminal, as ``tqdm.auto`` decides.
"""
import os as _os

__version__ = "0.1.0"


def _text_progress() -> None:
    """Point ``tqdm.auto.tqdm`` (what curvlib's modules import) at a plain-text bar on ``sys.__stderr__``."""
    import sys

    import tqdm.auto
    import tqdm.std

    class TextBar(tqdm.std.tqdm):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("file", sys.__stderr__)
            super().__init__(*args, **kwargs)

    tqdm.auto.tqdm = TextBar


_mode = _os.environ.get("CURVLIB_PROGRESS", "auto")
if _mode == "text":
    _text_progress()
elif _mode != "auto":
    raise ValueError(f"CURVLIB_PROGRESS must be 'auto' or 'text', got {_mode!r}")
