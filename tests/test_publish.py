"""The site's repository link and launch buttons follow one setting, and vanish while it is unset."""
import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("publish", ROOT / "book" / "_ext" / "publish.py")
publish = importlib.util.module_from_spec(spec)
spec.loader.exec_module(publish)

THEME = {"launch_buttons": {"binderhub_url": "https://mybinder.org"}, "repository_url": "",
         "use_repository_button": False, "use_issues_button": False, "use_edit_page_button": False}


def test_no_url_no_buttons():
    out = publish.apply(THEME)
    assert "launch_buttons" not in out and not any(out[b] for b in publish.BUTTONS)
    assert "launch_buttons" in THEME  # the input is not modified


def test_a_url_keeps_the_buttons_and_the_environment_wins():
    out = publish.apply({**THEME, "repository_url": "https://github.com/a/b"})
    assert out["launch_buttons"] and out["use_repository_button"] and out["repository_url"] == "https://github.com/a/b"
    out = publish.apply(THEME, env_url="https://github.com/c/d")
    assert out["repository_url"] == "https://github.com/c/d" and out["launch_buttons"]


def test_the_book_ships_without_a_placeholder_url():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert config["repository"]["url"] == "" and "publish" in config["sphinx"]["local_extensions"]
    assert config["html"]["use_repository_button"] is False  # Jupyter Book refuses it without a URL
