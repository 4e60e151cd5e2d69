"""book/_ext/exec_cache_guard.py: Jupyter Book's execution cache is forgotten when curvlib changes."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "book" / "_ext" / "exec_cache_guard.py"
_spec = importlib.util.spec_from_file_location("exec_cache_guard", SCRIPT)
ecg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ecg)


@pytest.fixture
def tree(tmp_path):
    """A copy of curvlib's source and the cards in a temporary repository root."""
    for pattern in ecg.INPUTS:
        for src in REPO.glob(pattern):
            dst = tmp_path / src.relative_to(REPO)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dst)
    return tmp_path


def test_stamp_covers_the_source_the_cards_and_the_environment(tree):
    assert (tree / "curvlib" / "cache.py").exists() and (tree / "data" / "models" / "resnet.json").exists()
    env = {"CURVLIB_PROFILE": "embedded", "HOME": "/x"}
    base = ecg.stamp(tree, env)
    assert ecg.stamp(tree, env) == base and ecg.stamp(tree, env | {"HOME": "/y"}) == base
    assert ecg.stamp(tree, env | {"CURVLIB_PROFILE": "smoke"}) != base
    assert ecg.stamp(tree, env | {"CURVLIB_DATA": "/val"}) != base
    cards = [tree / "data" / "models" / "resnet.json", next((tree / "data" / "seeds").glob("*/*.json"))]
    for path in [tree / "curvlib" / "cache.py", tree / "curvlib" / "measure" / "travel.py", *cards]:
        old = path.read_bytes()
        path.write_bytes(old + b"\n")
        assert ecg.stamp(tree, env) != base, path
        path.write_bytes(old)
    assert ecg.stamp(tree, env) == base
    (tree / "curvlib" / "new_module.py").write_text("")
    top = ecg.stamp(tree, env)
    assert top != base
    (tree / "curvlib" / "measure" / "new_module.py").write_text("")  # a subpackage's new module too
    assert ecg.stamp(tree, env) != top


def test_stamp_covers_the_data_folder_s_contents(tree, tmp_path):
    """A folder refilled at the same path (issue #30) is another book, even with the same variables."""
    val = tmp_path / "val"
    (val / "n01440764").mkdir(parents=True)
    (val / "n01440764" / "a.png").write_bytes(b"a")
    (val / "n01440764" / "loop").symlink_to(val, target_is_directory=True)  # followed once, not forever
    env = {"CURVLIB_PROFILE": "paper", "CURVLIB_DATA": str(val)}
    base = ecg.stamp(tree, env)
    (val / "n01440764" / "a.png").rename(val / "n01440764" / "b.png")
    assert ecg.stamp(tree, env) != base


def test_guard_deletes_the_cache_only_when_the_stamp_changes(tree):
    env = {"CURVLIB_PROFILE": "embedded"}
    build = tree / "book" / "_build"
    cache = build / ".jupyter_cache"
    ecg.guard(tree, env=env)  # first run: writes the stamp
    cache.mkdir(parents=True)
    (cache / "global.db").write_text("cached outputs")
    assert ecg.guard(tree, env=env) is False and cache.exists()
    src = tree / "curvlib" / "measure" / "calibration.py"
    src.write_text(src.read_text().replace("def ", "def  ", 1))
    assert ecg.guard(tree, env=env) is True and not cache.exists()
    cache.mkdir()
    assert ecg.guard(tree, env=env) is False and cache.exists()
    assert ecg.guard(tree, env=env | {"CURVLIB_PROFILE": "smoke"}) is True and not cache.exists()


BOOK_CONFIG = """title: guard test
only_build_toc_files: true
execute:
  execute_notebooks: cache
"""


@pytest.mark.slow
def test_rebuilt_book_shows_the_changed_library_output(tmp_path, myst_chapter):
    """A one-chapter book importing a stand-in ``curvlib``: after the library changes, guard +
    build shows the new output (the chapter's code is unchanged, so the cache alone would not)."""
    book = tmp_path / "book"
    book.mkdir()
    (book / "_config.yml").write_text(BOOK_CONFIG)
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\n")
    (book / "index.md").write_text(myst_chapter("Guard test", "import curvlib\nprint(curvlib.answer())"))
    lib = tmp_path / "curvlib"
    lib.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    jb = Path(sys.executable).parent / "jupyter-book"

    def guard_and_build(answer):
        (lib / "__init__.py").write_text(f"def answer():\n    return {answer!r}\n")
        subprocess.run([sys.executable, str(SCRIPT), "--root", str(tmp_path)], env=env, check=True, timeout=60)
        r = subprocess.run([str(jb), "build", str(book), "--all", "--builder", "html"], env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        return (book / "_build" / "html" / "index.html").read_text()

    assert "first output" in guard_and_build("first output")
    assert (book / "_build" / ".jupyter_cache").exists()
    html = guard_and_build("second, changed output")
    assert "second, changed output" in html and "first output" not in html
