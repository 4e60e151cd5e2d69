"""book/_ext/parallel_execute.py: chapters executed side by side land in the execution cache under the hash
MyST-NB looks up (the build renders them without executing again); a failing chapter is left to the build."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "book" / "_ext" / "parallel_execute.py"


def _module():
    spec = importlib.util.spec_from_file_location("parallel_execute", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def book(tmp_path, myst_chapter):
    b = tmp_path / "book"
    b.mkdir()
    (b / "_config.yml").write_text("title: t\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: cache\n"
                                   "parse:\n  myst_enable_extensions: [dollarmath]\n")
    (b / "_toc.yml").write_text("format: jb-book\nroot: index\nparts:\n  - caption: c\n    chapters:\n"
                                "      - file: one\n      - file: bad\n      - file: notes\n")
    (b / "index.md").write_text(myst_chapter("Index", "print('from index', 6 * 7)"))
    one = "import os\nprint('threads', os.environ['OMP_NUM_THREADS'])"
    (b / "one.md").write_text(myst_chapter("One", one))
    (b / "bad.md").write_text(myst_chapter("Bad", "raise ValueError('chapter error')"))
    (b / "notes.md").write_text("# Notes\n\nNo code here.\n")
    return b


def _run(book, jobs=2):
    return subprocess.run([sys.executable, str(SCRIPT), "--book", str(book), "--jobs", str(jobs)],
                          capture_output=True, text=True, timeout=300)


def test_chapters_run_side_by_side_into_the_execution_cache(book):
    from jupyter_cache import get_cache

    pe = _module()
    assert [p.name for p in pe.chapters(book)] == ["index.md", "one.md", "bad.md"]  # notes.md is no notebook
    r = _run(book)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "bad.md: failed" in r.stdout and "index.md: executed" in r.stdout
    cache = get_cache(book / "_build" / ".jupyter_cache")
    outputs = {}
    for name in ("index.md", "one.md"):
        rec = cache.match_cache_notebook(pe.read(book / name))
        nb = cache.get_cache_bundle(rec.pk).nb
        outputs[name] = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "from index 42" in outputs["index.md"] and "threads 1" in outputs["one.md"]
    with pytest.raises(KeyError):
        cache.match_cache_notebook(pe.read(book / "bad.md"))
    again = _run(book)  # cached chapters are not executed again; the failing one is tried again
    assert "2 chapter" not in again.stdout and "1 chapter(s)" in again.stdout and "bad" in again.stdout
    assert "1 job" in _run(book, jobs=1).stdout


@pytest.mark.slow
def test_the_build_renders_the_cached_chapters_without_executing_them(book):
    (book / "bad.md").unlink()
    (book / "_toc.yml").write_text("format: jb-book\nroot: index\nparts:\n  - caption: c\n    chapters:\n"
                                   "      - file: one\n")
    assert _run(book).returncode == 0
    jb = Path(sys.executable).parent / "jupyter-book"
    r = subprocess.run([str(jb), "build", str(book), "--all", "--builder", "html"], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert r.returncode == 0, r.stdout[-2000:]
    assert "Executing notebook" not in r.stdout + r.stderr
    assert "threads 1" in (book / "_build" / "html" / "one.html").read_text()
