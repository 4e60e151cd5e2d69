"""Where a book build spent its time: per chapter (Jupyter Book's execution cache) and per experiment
computed on the way (curvlib's timing log, ``<results cache>/timings.jsonl``, written by
:func:`curvlib.runner.run` for every result it computed rather than loaded).

Run by ``make book`` after the build: ``python book/_ext/timings.py [--since UNIX_TIME]``. Only
experiments computed since ``--since`` (the build's start) are listed.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

BOOK = Path(__file__).resolve().parents[1]


def chapter_seconds(cache_dir: Path = BOOK / "_build" / ".jupyter_cache") -> dict[str, float]:
    """{chapter file name: execution seconds} of the newest cached execution of each chapter."""
    if not cache_dir.exists():
        return {}
    from jupyter_cache import get_cache

    out: dict[str, tuple[float, float]] = {}
    for rec in get_cache(cache_dir).list_cache_records():
        secs = (rec.data or {}).get("execution_seconds")
        if secs is None:
            continue
        name = Path(rec.uri).name
        when = rec.created.timestamp() if rec.created else 0.0
        if name not in out or when > out[name][0]:
            out[name] = (when, float(secs))
    return {k: v[1] for k, v in out.items()}


def experiment_seconds(log: Path, since: float = 0.0) -> dict[str, dict[str, float]]:
    """{experiment: {"profile": s, "other": s}} summed over the entries of the timing log written at or after
    ``since``: the profile's own weights, and other weights (seed replicates, epoch snapshots)."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"profile": 0.0, "other": 0.0})
    if not log.exists():
        return {}
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a killed process
        if r.get("time", 0) >= since:
            totals[r["experiment"]]["other" if r.get("weights") else "profile"] += float(r["seconds"])
    return dict(totals)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--since", type=float, default=0.0, help="only experiments computed after this UNIX time")
    a = p.parse_args(argv)
    sys.path.insert(0, str(BOOK.parent))
    from curvlib.config import get_profile

    chapters = chapter_seconds()
    if chapters:
        print("chapter execution (s), newest run of each:")
        for name, s in sorted(chapters.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<24} {s:8.1f}")
        print(f"  {'total':<24} {sum(chapters.values()):8.1f}")
    exps = experiment_seconds(get_profile().cache_dir / "timings.jsonl", a.since)
    if exps:
        print("experiments computed during this build (s, all models; own weights, other weights = seed replicates "
              "and epoch snapshots):")
        print(f"  {'':<24} {'total':>8} {'own':>8} {'other':>8}")
        for name, s in sorted(exps.items(), key=lambda kv: -sum(kv[1].values())):
            print(f"  {name:<24} {sum(s.values()):8.1f} {s['profile']:8.1f} {s['other']:8.1f}")
        own, other = (sum(s[k] for s in exps.values()) for k in ("profile", "other"))
        print(f"  {'total':<24} {own + other:8.1f} {own:8.1f} {other:8.1f}")
    elif a.since:
        print("no experiment was computed during this build (every result came from the results cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
