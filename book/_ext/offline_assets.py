"""Serve MathJax and the ipywidgets HTML manager from the site itself when they were vendored.

``make vendor`` (book/_ext/vendor.sh) unpacks npm's ``mathjax@3`` and
``@jupyter-widgets/html-manager`` into ``book/_vendor`` (ignored by git). When those files are
there, this extension adds the folder to the static files (it is not under ``_static``, where
Jupyter Book would load every script on every page) and points Sphinx and MyST-NB at them, so
the built site needs no network; when they are not (no npm on the machine), the default CDN
URLs stay and a warning says so.
"""
import os
from pathlib import Path

from sphinx.util import logging

LOG = logging.getLogger(__name__)
VENDOR = "_vendor"
MATHJAX = "mathjax/es5/tex-chtml.js"
WIDGETS = "html-manager/dist/embed.js"


def _use_local(app, config):
    static = Path(app.srcdir) / VENDOR
    if static.is_dir() and VENDOR not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, VENDOR]
    if (static / MATHJAX).exists():
        config.mathjax_path = MATHJAX
    else:
        LOG.warning("offline_assets: %s missing (run `make vendor`); MathJax will load from a CDN", MATHJAX)
    if (static / WIDGETS).exists():
        # The standalone embedder: standard controls, no RequireJS, no CDN lookups.
        config.nb_ipywidgets_js = {WIDGETS: {}}
    else:
        LOG.warning("offline_assets: %s missing (run `make vendor`); widgets will load from a CDN", WIDGETS)


def setup(app):
    # Chapters' kernels inherit this: curvlib's progress bars become text on the kernel's own stderr
    # (this terminal), not ipywidgets that the static pages would show as empty boxes.
    os.environ.setdefault("CURVLIB_PROGRESS", "text")
    app.connect("config-inited", _use_local, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
