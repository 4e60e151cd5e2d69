"""Forget Jupyter Book's execution cache when a chapter's output may change without its code changing.

The cache is keyed by the chapters' code cells only. This script hashes everything else the
outputs depend on — the profile and the ``CURVLIB_*`` environment variables, the files of the
``CURVLIB_DATA`` folder (relative paths, sizes, modification times), the model,
checkpoint and seed cards, and the source of every ``curvlib/**/*.py`` (subpackages included;
it holds the results cache's version) — and deletes ``<build>/.jupyter_cache`` when that stamp differs from the one
stored in ``<build>/.curvlib-stamp``. Run by ``make book`` / ``make book-fast``:

    python book/_ext/exec_cache_guard.py [--root REPO] [--build BUILD_DIR]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Files (globs relative to the repository root) whose content the chapters' outputs depend on.
INPUTS = ("curvlib/**/*.py", "data/models/*.json", "data/checkpoints/*.json", "data/seeds/*/*.json")
STAMP_FILE, CACHE_DIR = ".curvlib-stamp", ".jupyter_cache"


def stamp(root: Path = ROOT, env: dict | None = None) -> str:
    """sha256 over the ``CURVLIB_*`` variables and the path and content of every file in ``INPUTS``."""
    env = os.environ if env is None else env
    h = hashlib.sha256()
    for k in sorted(k for k in env if k.startswith("CURVLIB_")):
        h.update(f"env {k}={env[k]}\n".encode())
    data = env.get("CURVLIB_DATA", "").strip()
    if data and Path(data).is_dir():  # a folder refilled at the same path changes the chapters' output
        seen = set()
        for top, dirs, files in os.walk(data, followlinks=True):
            seen.add(os.path.realpath(top))
            dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(top, d)) not in seen)  # no loops
            for name in sorted(files):
                path = os.path.join(top, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                h.update(f"data {os.path.relpath(path, data)} {st.st_size} {st.st_mtime_ns}\n".encode())
    root = Path(root)
    for pattern in INPUTS:
        for path in sorted(root.glob(pattern)):
            h.update(f"file {path.relative_to(root).as_posix()} {path.stat().st_size}\n".encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def guard(root: Path = ROOT, build: Path | None = None, env: dict | None = None) -> bool:
    """Delete the execution cache under ``build`` (default ``<root>/book/_build``) if the stamp
    changed since the last call; store the new stamp. Returns whether the cache was deleted."""
    build = Path(build) if build is not None else Path(root) / "book" / "_build"
    new, stored = stamp(root, env), build / STAMP_FILE
    if stored.exists() and stored.read_text().strip() == new:
        return False
    cache = build / CACHE_DIR
    existed = cache.exists()
    shutil.rmtree(cache, ignore_errors=True)
    if cache.exists():
        raise OSError(f"could not delete the stale execution cache {cache}; delete it by hand")
    build.mkdir(parents=True, exist_ok=True)
    stored.write_text(new + "\n")
    if existed:
        print(f"exec-cache-guard: profile, environment, cards or curvlib changed; deleted {cache}")
    return existed


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    p.add_argument("--build", type=Path, help="Jupyter Book build directory (default: ROOT/book/_build)")
    a = p.parse_args(argv)
    guard(a.root, a.build)


if __name__ == "__main__":
    main()
