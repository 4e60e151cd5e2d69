"""Progress bars: plain text on the process's stderr in book builds (no empty widget boxes)."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, mode: str | None):
    env = {k: v for k, v in os.environ.items() if k != "CURVLIB_PROGRESS"}
    if mode is not None:
        env["CURVLIB_PROGRESS"] = mode
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_text_mode_gives_text_bars_on_stderr():
    code = ("import tqdm.std, tqdm.notebook\nfrom curvlib.measure import travel\n"
            "assert issubclass(travel.tqdm, tqdm.std.tqdm) and not issubclass(travel.tqdm, tqdm.notebook.tqdm)\n"
            "for _ in travel.tqdm(range(3), desc='walk', mininterval=0): pass\n")
    r = _run(code, "text")
    assert r.returncode == 0, r.stderr
    assert "walk: 100%" in r.stderr and "walk" not in r.stdout


def test_auto_mode_leaves_tqdm_auto_alone_and_bad_values_are_refused():
    r = _run("import tqdm.auto\nfrom curvlib.measure import travel\nassert travel.tqdm is tqdm.auto.tqdm\n"
             "assert type(travel.tqdm).__name__ != 'TextBar' and travel.tqdm.__name__ != 'TextBar'", None)
    assert r.returncode == 0, r.stderr
    r = _run("import curvlib", "widgets")
    assert r.returncode != 0 and "CURVLIB_PROGRESS must be 'auto' or 'text'" in r.stderr


def test_the_book_build_asks_for_text_bars(monkeypatch):
    """The book's Sphinx extension sets the variable that the chapters' kernels inherit."""
    import importlib.util
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("offline_assets", ROOT / "book" / "_ext" / "offline_assets.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    environ = {}
    monkeypatch.setattr(ext.os, "environ", environ)
    ext.setup(SimpleNamespace(connect=lambda *a, **k: None))
    assert environ == {"CURVLIB_PROGRESS": "text"}
