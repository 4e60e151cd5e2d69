"""The built site (README command 1) works offline: local MathJax and widget manager, no CDN scripts."""
import re
from pathlib import Path

import pytest

HTML = Path(__file__).resolve().parent.parent / "book" / "_build" / "html"
pytestmark = pytest.mark.skipif(not (HTML / "index.html").exists(),
                                reason="book not built: run `make book` first (CI does)")


def _pages():
    return sorted(p for p in HTML.glob("*.html") if p.name not in ("genindex.html", "search.html"))


def test_every_chapter_has_a_page():
    toc = (HTML.parent.parent / "_toc.yml").read_text()
    for name in re.findall(r"file:\s*(\S+)", toc) + ["intro"]:
        assert (HTML / f"{name}.html").exists(), name


def test_no_script_or_style_from_the_network():
    for page in _pages():
        text = page.read_text()
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        remote = [u for u in remote if not u.startswith(("https://mybinder.org", "https://colab"))]
        assert remote == [], f"{page.name} loads {remote}"


def test_mathjax_and_widgets_are_local():
    page = (HTML / "calibration.html").read_text()
    mj = re.search(r'<script[^>]+src="(_static/mathjax/[^"?]+)', page)
    wm = re.search(r'<script[^>]+src="(_static/html-manager/[^"?]+)', page)
    assert mj and (HTML / mj.group(1)).exists(), "MathJax not vendored (is npm installed? run `make vendor`)"
    assert wm and (HTML / wm.group(1)).exists(), "widget manager not vendored"
    assert "application/vnd.jupyter.widget-state+json" in page
    assert page.count("application/vnd.jupyter.widget-view+json") >= 1


def test_widget_outputs_are_in_the_page():
    page = (HTML / "calibration.html").read_text()
    state = re.search(r'widget-state\+json">(.*?)</script>', page, re.S).group(1)
    assert state.count('"image/png"') >= 4, "the per-model tabs lost their figures"


def test_no_execution_errors():
    reports = HTML / "reports"
    errs = sorted(reports.glob("*.log")) if reports.exists() else []
    assert errs == [], f"chapters failed to execute: {[p.name for p in errs]}"
