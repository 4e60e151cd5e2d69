"""Exercise checks: compare a reader's answer with the chapter's reference solution.

Each exercise in the book has a cell to fill in (``answer = None``), a collapsed reference
solution and a check cell that calls :func:`check`. With no answer yet the check only states the
reference value, so the book builds and nbval runs every exercise against its solution; the
chapters also test each reference solution against an independent computation (e.g. ε* by the
formula against curvlib's numerical search).
"""
from __future__ import annotations

import numpy as np


def check(answer, solution, what: str = "answer", rtol: float = 1e-3, atol: float = 1e-6) -> bool | None:
    """Print whether ``answer`` matches ``solution`` (numbers or arrays: within rtol/atol; anything
    else: equality) and return True / False; ``answer`` None (not attempted yet): print the hint
    and return None."""
    if solution is None:
        raise ValueError(f"{what}: the reference solution is None")
    precision = f"a number counts as correct within {rtol:.1%} of the solution (relative) or {atol:g} (absolute)"
    if answer is None:
        print(f"{what}: not attempted yet — fill in the cell above, or open the solution; {precision}.")
        return None
    try:
        a, s = np.asarray(answer, dtype=float), np.asarray(solution, dtype=float)
        ok = a.shape == s.shape and bool(np.allclose(a, s, rtol=rtol, atol=atol))
    except (TypeError, ValueError):
        ok = answer == solution
    shown = np.array2string(np.asarray(answer), precision=4) if not isinstance(answer, str) else repr(answer)
    print(f"{what}: {'correct' if ok else 'not yet'} — you have {shown}"
          + ("" if ok else f"; compare with the reasoning in the solution ({precision})."))
    return ok
