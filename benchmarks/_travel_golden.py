"""Golden outputs of :func:`curvlib.measure.travel.travel`, to check that a refactor changes no result bit for bit.

Runs travel on the first ``--n`` test images of the embedded models, both direction kinds (made as
``bench_travel.setup`` makes them), for each named setting of :data:`curvlib.measure.search.SEARCHES`, explicit
``budget=`` overrides (the tightest one forces joins and the budget's schedule) and a ``grid``, and saves
every returned column into one .npz; then the same on the adversarial toy margins of
``tests/test_travel.py`` (fast oscillations, tangent approaches, narrow and deep islands, sawtooth), whose
paths reach the never check and the forced joins far more often than the models' do. All of it is
saved (``--save``), or compared against a saved run (``--compare``) with ``np.array_equal`` (NaN equal
to NaN).

Run: python benchmarks/_travel_golden.py --save before.npz (on the old code), then --compare before.npz.
The toy part, recorded from the old code, is checked by tests/test_travel_golden.py.
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's curvlib, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402

from curvlib import data, models  # noqa: E402
from curvlib.config import get_profile  # noqa: E402
from curvlib.measure import travel as T  # noqa: E402
from curvlib.measure.direction import direction  # noqa: E402

#: name → keyword arguments of travel
RUNS = {
    "default": dict(search="default"),
    "careful": dict(search="careful"),
    "budget16": dict(search="default", budget=16),
    "careful_budget30": dict(search="careful", budget=30),
    "grid8": dict(search="default", grid=8),
}


def results(names, kinds, n) -> dict[str, np.ndarray]:
    prof = get_profile("embedded", device="cpu")
    x, y = data.test_set(prof, n=n)
    out = {}
    for name in names:
        model = models.load(name, prof, device="cpu")
        model.check_inputs = False
        for kind in kinds:
            d = direction(model, x, y, kind, seed=0, batch_size=prof.batch_size, index=torch.arange(len(x)))
            for run, kw in RUNS.items():
                t = time.perf_counter()
                df = T.travel(model, x, y, d, batch_size=prof.batch_size, progress=False, **kw)
                for col in df.columns:
                    v = df[col].to_numpy()
                    out[f"{name}/{kind}/{run}/{col}"] = v.astype(str) if v.dtype == object else v
                print(f"{name:<12} {kind:<7} {run:<17} mean passes {df.passes.mean():6.3f}  "
                      f"{time.perf_counter() - t:5.1f} s", flush=True)
    return out


def toy_results(n=200) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_travel as tt

    g = torch.Generator().manual_seed(0)
    p = torch.rand(3, n, generator=g)
    margins = {"wiggle": tt._wiggle, "slow_tangent": tt._slow_tangent, "touch": tt._touch, "sawtooth": tt._sawtooth,
               "deep_island": tt._deep_island, "steep_island": tt._steep_island_then_crossing}
    out = {}
    for name, margin in margins.items():
        model = tt.Path(margin)
        x, y, d = tt.Path.inputs(*p)
        extra = {"budget15": dict(budget=15), "small_eps": dict(eps_max=0.5, tol=1e-5, budget=20)}
        for run, kw in {**RUNS, **extra}.items():
            df = T.travel(model, x, y, d, batch_size=64, progress=False, **kw)
            for col in df.columns:
                v = df[col].to_numpy()
                out[f"toy/{name}/{run}/{col}"] = v.astype(str) if v.dtype == object else v
    print(f"toys: {len(margins)} margins × {n} paths", flush=True)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="resnet,mobilenetv2,vit,swin")
    p.add_argument("--kinds", default="fgsm,random")
    p.add_argument("--n", type=int, default=200)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save")
    g.add_argument("--compare")
    a = p.parse_args()
    torch.set_num_threads(1)
    out = results(a.models.split(","), a.kinds.split(","), a.n) if a.models else {}
    out.update(toy_results())
    if a.save:
        np.savez(a.save, **out)
        print(f"saved {len(out)} arrays to {a.save} (pid {os.getpid()})")
        return
    ref = np.load(a.compare, allow_pickle=False)
    missing = sorted(set(ref.files) ^ set(out))
    bad = [k for k in ref.files if k in out and not np.array_equal(ref[k], out[k], equal_nan=ref[k].dtype.kind == "f")]
    print(f"compared {len(set(ref.files) & set(out))} arrays: {len(bad)} differ, {len(missing)} missing on one side")
    for k in bad + missing:
        print("  ", k)
    sys.exit(1 if bad or missing else 0)


if __name__ == "__main__":
    main()
