"""Comparing the two sides' outputs by max absolute difference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not a.size:
        return 0.0
    # NaN or inf in the same place on both sides is agreement, not an infinite difference.
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float(np.max(np.where(same, 0.0, np.abs(a - b))))


@dataclass(frozen=True)
class Result:
    name: str
    shape: str
    diff: float | None                           # None: the shapes differ
    ok: bool


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float) -> list[Result]:
    """One Result per output named on both sides, in the order of `a`."""
    results = []
    for name in [n for n in a if n in b]:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            results.append(Result(name, f"{_shape(x)} vs {_shape(y)}", None, False))
            continue
        diff = max_abs_diff(x, y)
        results.append(Result(name, _shape(x), diff, diff <= atol))   # NaN is not ok
    return results


def _shape(x: np.ndarray) -> str:
    return "x".join(map(str, x.shape)) or "scalar"


