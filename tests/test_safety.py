"""No input can make irconv execute code: hostile pickles are refused before anything runs.

The crafted pickles (os.system, exec, eval, Popen, INST, a module's state running code, a
module class outside the allowlist) are cases of the attack corpus (tests/attacks/cases_torch.py,
torch/pickle-*). What stays here needs the real torch to write its input: a module pickled
by torch.save itself, with the layout torch gives it."""
from __future__ import annotations

import pytest

from conftest import assert_one_line_error, run_irconv


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_pickled_module_outside_the_allowlist_or_running_code_is_refused(tmp):
    """A whole pickled nn.Module (as DALL-E's encoder.pkl is) is read as inert attribute data
    only for the module classes irconv lists: a module of another class (torch.nn.Linear here),
    or a listed one whose state REDUCEs os.system, is refused before anything runs."""
    import os
    torch = pytest.importorskip("torch")
    marker = tmp / "pwned"
    hostile = torch.nn.Sequential(torch.nn.ReLU())
    hostile.payload = _Reduce(os.system, (f"touch {marker}",))    # kept in the module's __dict__
    torch.save(hostile, tmp / "reduce.pkl")
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp / "linear.pkl")
    for name, needle in (("reduce.pkl", "system"), ("linear.pkl", "torch.nn.modules.linear.Linear")):
        for verb in (["convert", tmp / name, tmp / "out", "--to", "pt"], ["ls", tmp / name]):
            line = assert_one_line_error(run_irconv(*verb), name, needle)
            assert "refus" in line and "nothing was executed" in line, line
    assert not marker.exists() and not (tmp / "out").exists()
