"""Boundary travel: cost, correctness against a dense scan, and speed against the authors' search (issue #17).

For every model (default: the four embedded ones) and both direction kinds the travel experiment
uses (``fgsm`` and seeded ``random``, made exactly as ``curvlib.experiments.travel._travel_part`` makes them),
on the first ``--n`` test images:

1. forward passes per sample of :func:`curvlib.measure.travel.travel` (mean over the samples it searched,
   i.e. correctly classified at ε = 0, and max), against the bound :func:`curvlib.measure.search.max_passes`;
2. agreement with the first wrong point of a dense scan ε = k·1e-3, k = 1..1000 (same clipping), per
   sample correctly classified at ε = 0 by both (a disagreement there is counted separately):

   * ``agree``: both say never, or our bracket [eps_lo, eps] overlaps the scan's cell
     (first_wrong − 1e-3, first_wrong];
   * ``earlier, verified``: our ε* lies before the scan's cell (or we cross where the scan never does)
     and the model is wrong at our ε* (re-checked here): a wrong-class island narrower than the
     scan's spacing, or between its points; reported, not hidden;
   * ``missed``: our bracket lies after the scan's first wrong point (we stepped over a crossing);
   * ``false never``: we say never, the scan finds a wrong point ≤ eps_max.

   The scan is cached (``benchmarks/.cache``, see ``_dense_scan.py``) and scans each sample only up
   to its first wrong point: that alone decides every category above;
3. the authors' search, ported from ``yuptools.travel.Traveler`` (one image per forward pass): start
   at ε = 1e-3 with stride 1e-3; after each test, if correctness changed from the previous test
   (either way) go back one stride and halve it, else go on one stride; ε never below 0; stop when the
   stride is < tol at a wrong prediction (tol 1e-4 here, our precision); give up (never) when the
   stride is still the initial one after 1,000 iterations. The first test of an image counts as a
   change, as for the first image of the original (which carries the previous image's last result into
   the next image's first comparison). It runs on the first ``--n-ref`` samples we found crossed; we
   report its passes per sample, whether its bracket [last correct tested, its ε] overlaps ours within
   tol, and the speed ratio: its time per sample over ours per sample in the full batched run.

Timings are medians of ``--repeats`` runs after a warm-up, both methods on the same ``--threads``.
``bench_travel_frontier.py`` re-runs the agreement count with settings that spend more passes.
Run: python benchmarks/bench_travel.py [--models resnet,vit] [--kinds fgsm] [--n 1000] [--n-ref 25]
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's curvlib, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _dense_scan import cached_scan  # noqa: E402
from _timing import median_time  # noqa: E402

from curvlib import data, models  # noqa: E402
from curvlib.config import get_profile  # noqa: E402
from curvlib.measure.certify import CATEGORIES, categories  # noqa: E402
from curvlib.measure.direction import direction  # noqa: E402
from curvlib.measure.search import max_passes  # noqa: E402
from curvlib.measure.travel import travel  # noqa: E402

STEP, K_MAX = 1e-3, 1000


@torch.inference_mode()
def authors_search(model, x, y, d, tol=1e-4, init_eps=1e-3, stride=1e-3, decay=0.5, max_iter=10_000,
                   turnaround=0.1):
    """Port of the authors' per-image search (see the module docstring) for one image x [C, H, W].

    Returns (the ε it returns, or nan if it gives up or does not converge; the largest correct ε it
    tested below its last wrong one; that last wrong ε; forward passes)."""
    eps, stride0, prev, passes = init_eps, stride, None, 0
    last_wrong, ok_below = float("nan"), 0.0
    tested = []
    for i in range(max_iter):
        correct = bool(model((x + d * eps).clamp(0, 1)[None]).argmax(-1).item() == y)
        passes += 1
        tested.append((eps, correct))
        if not correct:
            last_wrong = eps
        if correct != prev:  # correctness changed (the first test always counts): go back, halve the stride
            eps, stride = eps - stride, stride * decay
        else:
            eps = eps + stride
        eps = max(eps, 0.0)
        prev = correct
        if i + 1 == int(max_iter * turnaround) and stride == stride0:
            return float("nan"), float("nan"), float("nan"), passes  # diverged: never
        if stride < tol and not correct:
            ok_below = max([e for e, c in tested if c and e < last_wrong], default=0.0)
            return eps, ok_below, last_wrong, passes
    return float("nan"), float("nan"), float("nan"), passes


def agreement(model, x, y, d, df, scan) -> tuple[dict, np.ndarray]:
    """Counts per category (:mod:`curvlib.measure.certify`) and each sample's category (None: skipped)."""
    cat = categories(model, x, y, d, df, scan, step=STEP)
    return {c: int((cat == c).sum()) for c in CATEGORIES}, cat


def setup(name, kind, prof, x, y):
    """(model, directions, cached dense scan) of one embedded model and direction kind, made as the travel
    experiment makes them (seed 0)."""
    model = models.load(name, prof, device="cpu")
    model.check_inputs = False
    d = direction(model, x, y, kind, seed=0, batch_size=prof.batch_size, index=torch.arange(len(x)))
    scan = cached_scan(model, prof.model_dir / f"{name}.safetensors", x, y, d, kind, 0, step=STEP, k_max=K_MAX,
                       batch_size=prof.batch_size)
    return model, d, scan


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet,mobilenetv2,vit,swin")
    p.add_argument("--kinds", default="fgsm,random")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--n-ref", type=int, default=25, help="samples for the authors' search (first crossed ones)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eps-max", type=float, default=1.0)
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    prof = get_profile("embedded", device="cpu")
    x, y = data.test_set(prof, n=a.n)
    bound = max_passes(a.eps_max, a.tol)
    t_start = time.perf_counter()
    print(f"{a.n} test images, eps_max {a.eps_max:g}, tol {a.tol:g}, {a.threads} thread(s); worst-case bound "
          f"{bound} passes; dense scan step {STEP:g} × {K_MAX}; authors' search on the first {a.n_ref} crossed")
    rows = []
    for name in a.models.split(","):
        for kind in a.kinds.split(","):
            model, d, scan = setup(name, kind, prof, x, y)
            out = {}

            def run(model=model, d=d, out=out):
                out["df"] = travel(model, x, y, d, eps_max=a.eps_max, tol=a.tol, batch_size=prof.batch_size,
                                   progress=False)

            t_ours = median_time(run, a.repeats) / a.n
            df = out["df"]
            searched = df.status != "misclassified_at_start"
            passes = df.passes[searched]
            counts, cat = agreement(model, x, y, d, df, scan)
            sel = np.flatnonzero((df.status == "crossed").to_numpy())[: a.n_ref]
            ref = {}

            def run_ref(model=model, d=d, sel=sel, ref=ref):
                ref["r"] = [authors_search(model, x[i], int(y[i]), d[i], tol=a.tol) for i in sel]

            t_ref = median_time(run_ref, a.repeats) / max(1, len(sel))
            r = np.array(ref["r"], dtype=float).reshape(-1, 4)
            r_eps, r_lo, r_wrong, r_passes = r.T
            o_hi, o_lo = df.eps.to_numpy()[sel], df.eps_lo.to_numpy()[sel]
            # brackets overlap within tol: ours [eps_lo, eps], theirs [largest correct tested, last wrong tested]
            same = np.maximum(o_lo, r_lo) <= np.minimum(o_hi, r_wrong) + a.tol
            rows.append(dict(model=name, kind=kind, mean=passes.mean(), mean_all=df.passes.mean(),
                             max=int(passes.max()), **counts,
                             n_searched=int(searched.sum()), ref_passes=r_passes.mean(), ref_same=int(same.sum()),
                             ref_n=len(sel), ref_never=int(np.isnan(r_eps).sum()), ratio=t_ref / t_ours,
                             ms_ours=t_ours * 1e3, ms_ref=t_ref * 1e3))
            row = rows[-1]
            print(f"\n{name} / {kind}: passes per sample mean {row['mean_all']:.2f} (all {a.n}; per searched "
                  f"sample {row['mean']:.2f}), max {row['max']} "
                  f"(bound {bound}); {(df.status == 'crossed').sum()} crossed, {(df.status == 'never').sum()} never, "
                  f"{(~searched).sum()} misclassified at start")
            print("  vs dense scan: " + ", ".join(f"{c} {counts[c]}" for c in CATEGORIES)
                  + f"  (of {a.n}; scan cost {int(scan['passes'])} passes)")
            bad = np.flatnonzero(np.isin(cat, ["missed", "false never", "earlier, verified", "earlier, NOT verified",
                                               "start differs"]))
            for i in bad[:8]:
                print(f"    #{i}: {cat[i]}: ours [{df.eps_lo[i]:.5f}, {df.eps[i]:.5f}] ({df.status[i]}, "
                      f"{df.passes[i]} passes), scan first wrong {scan['first'][i] * STEP:.3f}")
            print(f"  authors' search on {len(sel)} crossed samples: {row['ref_passes']:.0f} passes/sample, "
                  f"{row['ref_never']} never, same crossing {row['ref_same']}/{len(sel)}; "
                  f"{row['ms_ref']:.1f} ms/sample vs ours {row['ms_ours']:.3f} ms/sample → {row['ratio']:.0f}× "
                  f"(target ≥ 25×)")
    print("\nagree counts every image on which both say the same, misclassified-at-start ones included")
    print("model        kind    passes mean (searched)/max  agree  earlier-verified  missed  false-never  | "
          "authors: passes  same   speed-up")
    for r in rows:
        agree = r["agree"] + (a.n - r["n_searched"])
        print(f"{r['model']:<12} {r['kind']:<7} {r['mean_all']:5.2f} ({r['mean']:5.2f}) / {r['max']:<3}  {agree:5d}  "
              f"{r['earlier, verified']:16d}  {r['missed']:6d}  {r['false never']:11d}  |  {r['ref_passes']:7.0f}  "
              f"{r['ref_same']:>2}/{r['ref_n']:<2}  {r['ratio']:6.0f}×")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind]
        ok = [r["agree"] + a.n - r["n_searched"] >= 0.999 * a.n and r["false never"] == 0 for r in rs]
        print(f"target {kind}: agreement ≥ 99.9 % of {a.n} with no false never: "
              + ", ".join(f"{r['model']} {'met' if o else 'NOT met'}" for r, o in zip(rs, ok)))
    print(f"targets: mean passes ≤ 9 on fgsm: {all(r['mean_all'] <= 9 for r in rows if r['kind'] == 'fgsm')}; "
          f"max ≤ {bound}: {all(r['max'] <= bound for r in rows)}; speed-up ≥ 25×: "
          f"{all(r['ratio'] >= 25 for r in rows)}")
    print(f"wall time {time.perf_counter() - t_start:.0f} s (threads {a.threads}, pid {os.getpid()})")


if __name__ == "__main__":
    main()
