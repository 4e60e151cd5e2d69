"""The repository link and launch buttons come from one setting, ``repository.url`` in
``book/_config.yml`` (or ``CURVBOOK_REPOSITORY_URL``, which wins). While it is empty the site shows
no repository button and no launch buttons, instead of links to a repository that does not exist;
once set, the repository button is switched on here (``_config.yml`` keeps it off, because
Jupyter Book refuses a repository button without a URL).
"""
import os

from sphinx.util import logging

LOG = logging.getLogger(__name__)
BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")


def apply(options: dict, env_url: str | None = None) -> dict:
    """``html_theme_options`` with the repository URL set from ``env_url`` when given, and with the
    repository and launch buttons removed when no URL is set."""
    options = dict(options)
    url = (env_url if env_url is not None else options.get("repository_url") or "").strip()
    options["repository_url"] = url
    if url:
        options["use_repository_button"] = True
    else:
        options.pop("launch_buttons", None)
        options.update({b: False for b in BUTTONS})
    return options


def _config_inited(app, config):
    config.html_theme_options = apply(config.html_theme_options or {}, os.environ.get("CURVBOOK_REPOSITORY_URL"))
    if not config.html_theme_options["repository_url"]:
        LOG.info("publish: no repository URL set (book/_config.yml repository.url): no launch buttons")


def setup(app):
    app.connect("config-inited", _config_inited, priority=800)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
