"""`convert --check-sum`: the sum of every parameter before and after a conversion agrees.

This is the check convert_flava_original_pytorch_to_hf.py ends with, made an option of any
conversion. The source's sum is taken over every tensor the import kept (values computed
from the config rather than read, like TransfoXL's inv_freq, are left out on both sides),
plus every tensor it dropped as a copy of another (FLAVA's second set of embeddings, a tied
decoder stored twice) whose bytes differ from its twin's: a true copy is counted once, a
"copy" that is not one is data the output lacks, and the sums then disagree. The output's
sum is taken by reading the written files back. Both accumulate in float64; they must agree
within RTOL of the magnitude (the sum of absolute values).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .exporters.base import cast_floats
from .ir.checkpoint import Checkpoint
from .ir.errors import CheckError

RTOL = 1e-6


@dataclass
class Sum:
    total: float = 0.0
    magnitude: float = 0.0                                # sum of absolute values
    tensors: int = 0
    differing: list[str] = field(default_factory=list)    # dropped "copies" that are not copies
    copies: int = 0                                       # true copies, counted once

    def add(self, array: np.ndarray) -> None:
        if array.dtype == np.bool_:
            array = array.astype(np.uint8)
        self.total += float(np.sum(array, dtype=np.float64))
        self.magnitude += float(np.sum(np.abs(array), dtype=np.float64))
        self.tensors += 1


def checkpoint_sum(ckpt: Checkpoint, leave_out: set[str] = frozenset()) -> Sum:
    """Sum of `ckpt`'s tensors (one at a time) and of its dropped copies that differ from their twin."""
    out = Sum()
    leave_out = set(leave_out) | set(ckpt.source.get("derived", ()))
    for name, t in ckpt.tensors.items():
        if name not in leave_out:
            out.add(t.load())
    for raw, (copy, twin) in ckpt.dropped.items():
        a = copy.load()
        b = twin.load()
        if a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes():
            out.copies += 1
        else:
            out.differing.append(raw)
            out.add(a)
    return out


def checker(ckpt: Checkpoint, to: str, cast: str | None, load: Callable[[Path, str], Checkpoint],
            report: Callable[[str], None]) -> Callable[[Path], None]:
    """Sum the source now; return the check an exporter runs on its written (not yet committed)
    output: read back as format `to` with `load`, summed, compared; a mismatch raises CheckError
    (so nothing is committed), agreement is `report`ed."""
    source = checkpoint_sum(cast_floats(ckpt, cast) if cast else ckpt)
    derived = set(ckpt.source.get("derived", ()))

    def check(written: Path) -> None:
        output = checkpoint_sum(load(written, to), derived)
        diff = output.total - source.total
        tolerance = RTOL * max(source.magnitude, output.magnitude)
        numbers = (f"source {source.total:.10g} ({source.tensors} tensors), output {output.total:.10g} "
                   f"({output.tensors} tensors), difference {diff:.3g}, tolerance {tolerance:.3g}")
        if not abs(diff) <= tolerance:
            why = ""
            if source.differing:
                why = (f"; {len(source.differing)} tensor(s) dropped as copies differ from their twin: "
                       + ", ".join(map(repr, source.differing[:4])) + (" ..." if len(source.differing) > 4 else ""))
            raise CheckError(f"parameter sums disagree: {numbers}{why}")
        once = f"; {source.copies} copies counted once" if source.copies else ""
        report(f"check-sum: parameter sums agree: {numbers}{once}")

    return check
