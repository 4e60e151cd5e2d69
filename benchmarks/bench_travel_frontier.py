"""What agreement costs: the boundary search's forward passes against its agreement with a dense scan (issue #17).

``bench_travel.py`` measures the default search. This script re-runs it with settings that trade
passes for caution, on the same images and directions, and prints one row per (model, kind,
setting): mean and max passes per sample, and the counts that decide the agreement target
(``agree`` includes the samples misclassified at the start and, shown again as ``(earlier)``, the
earlier-verified ones: a wrong point before the scan's first, i.e. an island narrower than the
scan's spacing, which ``bench_travel.py``'s target line counts apart; ``missed`` and ``false never``
are the failures). The settings:

* ``default``: :func:`curvlib.travel.travel` as shipped (budget 24 passes);
* ``budget 26``: the same march with two more passes of budget (what the budget-forced failures
  of tangent approaches cost);
* ``careful``: steps grow at most 3× per probe and never exceed eps_max/32 (defaults 16× and
  eps_max/8), budget 40: march steps small enough to land inside most of the narrow wrong-class
  islands the default march steps over. On mobilenetv2's random directions it is the cheapest
  of the settings tried that reached 999 of 1,000: of ten cautious settings with budget 40–48
  (growth 1.5–3×, largest step eps_max/8–/64, a wider join cone, a shorter safe step), three
  reached 999 at 12.8, 13.7 and 18.0 mean passes, the other seven failed on 2–3 samples (not
  always the same ones) at 11.3–14.9; nine single-constant changes at budget 24 stayed at ≤ 996.

The settings change the module constants of :mod:`curvlib.travel` for one call only
(:func:`settings`); nothing in the library changes. The dense scans are the cached ones of
``bench_travel.py`` (``benchmarks/.cache``).

Run: python benchmarks/bench_travel_frontier.py [--models mobilenetv2] [--kinds fgsm,random] [--n 1000]
"""
import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's curvlib, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_travel import agreement, setup  # noqa: E402

from curvlib import data  # noqa: E402
from curvlib import travel as T  # noqa: E402
from curvlib.config import get_profile  # noqa: E402

#: name → (budget, overrides of curvlib.travel's module constants)
SETTINGS = {
    "default": (T.DEFAULT_BUDGET, {}),
    "budget 26": (26, {}),
    "careful": (40, {"GROWTH": 3.0, "MAX_STEP": 1 / 32}),
}


@contextlib.contextmanager
def settings(**constants):
    """Temporarily set module constants of curvlib.travel (names checked)."""
    unknown = [k for k in constants if not hasattr(T, k)]
    if unknown:
        raise ValueError(f"curvlib.travel has no constant {unknown}")
    old = {k: getattr(T, k) for k in constants}
    try:
        for k, v in constants.items():
            setattr(T, k, v)
        yield
    finally:
        for k, v in old.items():
            setattr(T, k, v)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet,mobilenetv2,vit,swin")
    p.add_argument("--kinds", default="fgsm,random")
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    names = a.settings.split(",")
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting(s) {unknown}; choose from {list(SETTINGS)}")
    torch.set_num_threads(a.threads)
    prof = get_profile("embedded", device="cpu")
    x, y = data.test_set(prof, n=a.n)
    t_start = time.perf_counter()
    target = int(np.ceil(0.999 * a.n))
    print(f"{a.n} test images; agreement target ≥ {target} with no false never, mean passes ≤ 9, max ≤ 24")
    print(f"{'model':<12} {'kind':<7} {'setting':<10} {'mean':>6} {'max':>4} {'agree':>6} {'(earlier)':>9} "
          f"{'missed':>7} {'false never':>12}  targets met  failing samples")
    for name in a.models.split(","):
        for kind in a.kinds.split(","):
            model, d, scan = setup(name, kind, prof, x, y)
            for s in names:
                budget, constants = SETTINGS[s]
                with settings(**constants):
                    df = T.travel(model, x, y, d, batch_size=prof.batch_size, progress=False, budget=budget)
                counts, cat = agreement(model, x, y, d, df, scan)
                agree = (counts["agree"] + counts["earlier, verified"]
                         + int((df.status == "misclassified_at_start").sum()))
                mean, mx = df.passes.mean(), int(df.passes.max())
                met = [agree >= target and counts["false never"] == 0, mean <= 9, mx <= 24]
                bad = np.flatnonzero(np.isin(cat, ["missed", "false never", "earlier, NOT verified", "start differs"]))
                print(f"{name:<12} {kind:<7} {s:<10} {mean:6.2f} {mx:4d} {agree:6d} {counts['earlier, verified']:9d} "
                      f"{counts['missed']:7d} {counts['false never']:12d}  "
                      f"{'/'.join('yes' if m else 'no' for m in met):<11}  "
                      + " ".join(f"#{i}" for i in bad[:10]), flush=True)
    print("targets met: agreement / mean passes / max passes")
    print(f"wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
