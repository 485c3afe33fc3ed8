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


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float,
            mask: np.ndarray | None = None) -> list[Result]:
    """One Result per output named on both sides, in the order of `a`. `mask` (batch, seq), the
    inputs' attention_mask: an output per position is compared at its unpadded positions only
    (what a model leaves at a padded one is no result: DeBERTa zeroes their embeddings, keras-hub's
    DeBERTa does not, and neither changes an unpadded position)."""
    results = []
    for name in [n for n in a if n in b]:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            results.append(Result(name, f"{_shape(x)} vs {_shape(y)}", None, False))
            continue
        shape = _shape(x)
        if per_position(x, mask):
            x, y = x[mask.astype(bool)], y[mask.astype(bool)]
        diff = max_abs_diff(x, y)
        results.append(Result(name, shape, diff, diff <= atol))   # NaN is not ok
    return results


def per_position(x: np.ndarray, mask: np.ndarray | None) -> bool:
    """Whether `x` has an output per (batch, position) of a mask that pads some."""
    return mask is not None and not mask.all() and x.ndim >= mask.ndim and x.shape[:mask.ndim] == mask.shape


def _shape(x: np.ndarray) -> str:
    return "x".join(map(str, x.shape)) or "scalar"


