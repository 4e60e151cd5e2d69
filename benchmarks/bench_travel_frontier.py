"""What agreement costs: the boundary search's settings against a dense scan (issue #27, part 1).

Re-runs :func:`curvlib.measure.travel.travel` with each setting of :data:`curvlib.measure.search.SEARCHES`
(and, for comparison, the old default budget of 24 passes) on the same images and directions as
``bench_travel.py``, and prints one row per (model, kind, setting): mean and max passes per sample
and the counts of :mod:`curvlib.measure.certify` against the dense 1e-3 scan (``agree`` includes the samples
misclassified at the start and the earlier-verified ones, shown again as ``(earlier)``; ``missed`` and
``false never`` are the failures). Targets (issue #27):

* ``default`` (budget 26): mean ≤ 9 passes, max ≤ 26, no false "never", agreement ≥ 99.6 %;
* ``careful`` (steps grow ≤ 3× per probe, ≤ eps_max/32, budget 36): agreement ≥ 99.9 %, mean ≤ 14.

The dense scans are the cached ones of ``bench_travel.py`` (``benchmarks/.cache``). The last full
output is kept in ``benchmarks/results/travel_frontier.txt``.

Run: python benchmarks/bench_travel_frontier.py [--models mobilenetv2] [--kinds fgsm,random] [--n 1000]
"""
import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's curvlib, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_travel import agreement, setup  # noqa: E402

from curvlib import data  # noqa: E402
from curvlib.config import get_profile  # noqa: E402
from curvlib.measure import search as S_  # noqa: E402
from curvlib.measure import travel as T

#: name → (setting, targets: agreement share, mean passes, max passes)
SETTINGS = {
    "default": (S_.SEARCHES["default"], (0.996, 9.0, 26)),
    "careful": (S_.SEARCHES["careful"], (0.999, 14.0, S_.SEARCHES["careful"].budget)),
    "old (24)": (dataclasses.replace(S_.SEARCHES["default"], budget=24), (0.999, 9.0, 24)),
}


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
    print(f"{a.n} test images; targets per setting: " + "; ".join(
        f"{k}: agreement ≥ {t[0]:.1%} with no false never, mean ≤ {t[1]:g}, max ≤ {t[2]}"
        for k, (_, t) in SETTINGS.items()))
    print(f"{'model':<12} {'kind':<7} {'setting':<10} {'mean':>6} {'max':>4} {'agree':>6} {'(earlier)':>9} "
          f"{'missed':>7} {'false never':>12}  targets met  failing samples")
    for name in a.models.split(","):
        for kind in a.kinds.split(","):
            model, d, scan = setup(name, kind, prof, x, y)
            for s in names:
                setting, (share, mean_t, max_t) = SETTINGS[s]
                df = T.travel(model, x, y, d, batch_size=prof.batch_size, progress=False, search=setting)
                counts, cat = agreement(model, x, y, d, df, scan)
                agree = (counts["agree"] + counts["earlier, verified"]
                         + int((df.status == "misclassified_at_start").sum()))
                mean, mx = df.passes.mean(), int(df.passes.max())
                met = [agree >= int(np.ceil(share * a.n)) and counts["false never"] == 0, mean <= mean_t, mx <= max_t]
                bad = np.flatnonzero(np.isin(cat, ["missed", "false never", "earlier, NOT verified", "start differs"]))
                print(f"{name:<12} {kind:<7} {s:<10} {mean:6.2f} {mx:4d} {agree:6d} {counts['earlier, verified']:9d} "
                      f"{counts['missed']:7d} {counts['false never']:12d}  "
                      f"{'/'.join('yes' if m else 'no' for m in met):<11}  "
                      + " ".join(f"#{i}" for i in bad[:10]), flush=True)
    print("targets met: agreement / mean passes / max passes")
    print(f"wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
