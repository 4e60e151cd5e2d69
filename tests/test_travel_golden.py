"""The boundary search gives, bit for bit, the results it gave before it became a typed state (issue #28).

``tests/data/travel_golden_toys.npz`` holds ε*, eps_lo, passes, status and new class of the search as it
was before the refactor (commit 000a106), on the adversarial toy margins of ``tests/test_travel.py``
(oscillations, tangent approaches, narrow and deep islands, sawtooth) under every named setting, budget
overrides and a grid — the paths that reach the never check and the forced joins most often. The same
runs on the embedded models (1,000 images × 4 models × 2 kinds) are ``benchmarks/_travel_golden.py``.
"""
import importlib.util
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("travel_golden", ROOT / "benchmarks" / "_travel_golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)


def test_the_search_matches_its_recorded_results_bit_for_bit():
    ref = np.load(ROOT / "tests" / "data" / "travel_golden_toys.npz")
    now = golden.toy_results()
    keys = [k.replace("__", "/") for k in ref.files]
    assert len(keys) > 200 and all(k in now for k in keys)
    differ = [k for k, f in zip(keys, ref.files)
              if not np.array_equal(ref[f], now[k], equal_nan=ref[f].dtype.kind == "f")]
    assert not differ, f"{len(differ)} of {len(keys)} recorded arrays differ, e.g. {differ[:3]}"
