"""Execute the book's chapters side by side before Jupyter Book renders them (``make book``).

Jupyter Book 1 executes chapters one after another, each kernel with every core. On a small machine that
leaves cores idle (a chapter's plotting and bootstraps run on one) and two-thread kernels scale poorly. This
script reads each chapter of the table of contents as MyST-NB reads it, skips those the execution cache
(``book/_build/.jupyter_cache``) already holds for their current code, and executes the others in ``--jobs``
kernels at once, one torch thread each, longest chapter first (by its last recorded execution time). Each
executed notebook is stored in the execution cache under the hash MyST-NB looks up, so the build that follows
renders it without executing it again. A chapter that fails is not stored: the build executes it again and
reports its error as usual (``book/_build/html/reports``). Experiments that two chapters ask for at once are
computed once (:func:`curvlib.cache.computing`).

Run: ``python book/_ext/parallel_execute.py [--jobs N]`` (``--jobs 1``: nothing to do, the build executes).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
CACHE = BOOK / "_build" / ".jupyter_cache"
TIMEOUT = 2400  # seconds per cell, as book/_config.yml's execute.timeout


def chapters(book: Path = BOOK) -> list[Path]:
    """The table of contents' files that are MyST-Markdown notebooks, in its order."""
    import yaml
    from myst_nb.core.read import is_myst_markdown_notebook

    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    out = []
    for name in names:
        path = book / f"{name}.md"
        if path.exists() and is_myst_markdown_notebook(path.read_text(encoding="utf-8")):
            out.append(path)
    return out


def read(path: Path):
    """The chapter as MyST-NB reads it for execution (its code cells decide the cache's hash)."""
    import yaml
    from myst_nb.core.read import read_myst_markdown_notebook
    from myst_parser.config.main import MdParserConfig

    cfg = yaml.safe_load((path.parent / "_config.yml").read_text(encoding="utf-8"))
    md = MdParserConfig(enable_extensions=set(cfg.get("parse", {}).get("myst_enable_extensions", [])))
    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), config=md, add_source_map=True, path=path)


def _execute(path: str) -> tuple[str, dict | None, float, str | None]:
    """(path, executed notebook as a dict or None, seconds, error text) — run in a worker process."""
    from jupyter_cache.executors.utils import single_nb_execution

    nb = read(Path(path))
    r = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=TIMEOUT, allow_errors=False, meta_override=True)
    if r.err is not None:
        return path, None, r.time, r.exc_string or repr(r.err)
    return path, dict(nb), r.time, None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="chapters executed at once")
    a = p.parse_args(argv)
    if a.jobs < 2:
        print("parallel execution: 1 job, Jupyter Book executes the chapters")
        return 0
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(CACHE)
    last = {Path(r.uri).name: (r.data or {}).get("execution_seconds") or 0.0 for r in cache.list_cache_records()}
    todo = []
    for path in chapters():
        try:
            cache.match_cache_notebook(read(path))
        except KeyError:
            todo.append(path)
    if not todo:
        print("parallel execution: every chapter is in the execution cache")
        return 0
    todo.sort(key=lambda q: -last.get(q.name, 0.0))  # longest first: the last one to start is short
    os.environ.setdefault("CURVLIB_PROGRESS", "text")  # as the build sets it (book/_ext/offline_assets.py)
    os.environ["OMP_NUM_THREADS"] = "1"  # the kernels inherit it: one thread each, jobs side by side
    start = time.perf_counter()
    print(f"parallel execution: {len(todo)} chapter(s) in {a.jobs} kernels at once: "
          + ", ".join(q.stem for q in todo), flush=True)
    failed = []
    with ProcessPoolExecutor(max_workers=a.jobs, mp_context=get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(_execute, str(q)) for q in todo]):
            path, nb, secs, err = fut.result()
            name = Path(path).name
            if err is not None:
                failed.append(name)
                print(f"  {name}: failed after {secs:.0f} s (the build executes it again and reports the error)",
                      flush=True)
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nbformat.from_dict(nb), path, data={"execution_seconds": secs}),
                                        check_validity=False, overwrite=True)
            print(f"  {name}: executed in {secs:.0f} s", flush=True)
    print(f"parallel execution: {time.perf_counter() - start:.0f} s wall"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
