"""Execute the book's chapters side by side before Jupyter Book renders them (``make book``).

Jupyter Book 1 executes chapters one after another, each kernel with every core. On a small machine that
leaves cores idle (a chapter's plotting and bootstraps run on one) and two-thread kernels scale poorly. This
script reads each chapter of the table of contents as MyST-NB reads it, skips those the execution cache
(``book/_build/.jupyter_cache``) already holds for their current code, and executes the others in ``--jobs``
kernels at once, one torch thread each, longest chapter first (by its last recorded execution time, kept in
``book/_build/chapter_seconds.json``; on a fresh clone by :data:`LONGEST_FIRST`). Each
executed notebook is stored in the execution cache under the hash MyST-NB looks up, so the build that follows
renders it without executing it again. A chapter that fails is not stored: the build executes it again and
reports its error as usual (``book/_build/html/reports``). Experiments that two chapters ask for at once are
computed once (:func:`curvlib.cache.computing`).

``make test`` runs it with ``--strict``: every chapter must be in the execution cache for its current code, or
execute without error (its hidden validation cells assert on the results) — a chapter that ``make book`` has
just executed for the same code, library, data and profile (``book/_ext/exec_cache_guard.py`` forgets the cache
when any of them changes) is not executed a second time.

Run: ``python book/_ext/parallel_execute.py [--jobs N] [--strict]`` (``--jobs 1`` without ``--strict``: nothing
to do, the build executes).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]
TIMEOUT = 2400  # seconds per cell, as book/_config.yml's execute.timeout
#: Chapters that took longest in earlier builds (embedded profile), started first where this build has no
#: record of its own (a fresh clone): only an ordering hint — a wrong one costs time, never a wrong page.
LONGEST_FIRST = ("claims", "ablations", "curvature", "random_jump", "boundary")


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


@functools.lru_cache
def _md_config(book: Path):
    """MyST's parser settings of the book (its _config.yml's extensions), read once per book."""
    import yaml
    from myst_parser.config.main import MdParserConfig

    cfg = yaml.safe_load((book / "_config.yml").read_text(encoding="utf-8"))
    return MdParserConfig(enable_extensions=set(cfg.get("parse", {}).get("myst_enable_extensions", [])))


def read(path: Path):
    """The chapter as MyST-NB reads it for execution (its code cells decide the cache's hash)."""
    from myst_nb.core.read import read_myst_markdown_notebook

    return read_myst_markdown_notebook(path.read_text(encoding="utf-8"), config=_md_config(path.parent),
                                       add_source_map=True, path=path)


def _execute(path: str) -> tuple[str, dict | None, float, str | None]:
    """(path, executed notebook as a dict or None, seconds, error text) — run in a worker process. The kernel talks
    over Unix sockets in a folder of its own (IPC transport): kernels started side by side over TCP can race for
    the same ports (jupyter_client issue 487), and one such build hung with its kernel idle."""
    import tempfile

    from jupyter_cache.executors.utils import single_nb_execution
    from jupyter_client import KernelManager

    nb = read(Path(path))
    with tempfile.TemporaryDirectory(prefix="curvbook-kernel-") as sockets:
        km = KernelManager(kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"), transport="ipc",
                           ip=str(Path(sockets) / "k"))
        r = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=TIMEOUT, allow_errors=False,
                                meta_override=True, km=km)
    if r.err is not None:
        return path, None, r.time, r.exc_string or repr(r.err)
    return path, dict(nb), r.time, None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="chapters executed at once")
    p.add_argument("--book", type=Path, default=BOOK, help="the book's folder (default: this one)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a chapter fails, with its traceback (make "
                   "test; without it the build that follows executes the chapter again and reports it)")
    a = p.parse_args(argv)
    if a.jobs < 2 and not a.strict:
        print("parallel execution: 1 job, Jupyter Book executes the chapters")
        return 0
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(a.book / "_build" / ".jupyter_cache")
    record = a.book / "_build" / "chapter_seconds.json"  # kept when the execution cache is forgotten
    last = json.loads(record.read_text()) if record.exists() else {}
    last.update({Path(r.uri).name: (r.data or {}).get("execution_seconds") or 0.0
                 for r in cache.list_cache_records()})
    todo = []
    for path in chapters(a.book):
        try:
            cache.match_cache_notebook(read(path))
        except KeyError:
            todo.append(path)
    if not todo:
        print("parallel execution: every chapter is in the execution cache")
        return 0
    hint = {f"{n}.md": len(LONGEST_FIRST) - i for i, n in enumerate(LONGEST_FIRST)}
    # longest first, so the last one to start is short: by this book's own record, else by the hint
    todo.sort(key=lambda q: (-last.get(q.name, 0.0), -hint.get(q.name, 0)))
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
                print(f"  {name}: failed after {secs:.0f} s" + (f":\n{err}" if a.strict else
                      " (the build executes it again and reports the error)"), flush=True)
                continue
            cache.cache_notebook_bundle(CacheBundleIn(nbformat.from_dict(nb), path, data={"execution_seconds": secs}),
                                        check_validity=False, overwrite=True)
            print(f"  {name}: executed in {secs:.0f} s", flush=True)
            last[name] = secs
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(last, indent=1))
    print(f"parallel execution: {time.perf_counter() - start:.0f} s wall"
          + (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed and a.strict else 0


if __name__ == "__main__":
    sys.exit(main())
