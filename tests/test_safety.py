"""No input can make irconv execute code: hostile pickles are refused before anything runs."""
from __future__ import annotations

import pickle
import zipfile

import pytest

from conftest import assert_one_line_error, run_irconv


def hostile_zip(path, payload: bytes):
    """A torch-style zip checkpoint whose data.pkl is `payload`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("pytorch_model/data.pkl", payload)
        z.writestr("pytorch_model/byteorder", "little")
        z.writestr("pytorch_model/version", "3\n")


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def payloads(marker):
    import builtins
    import os
    import subprocess
    yield "os.system", pickle.dumps({"w": _Reduce(os.system, (f"touch {marker}",))}, protocol=2)
    yield "builtins.exec", pickle.dumps(
        _Reduce(builtins.exec, (f"open({str(marker)!r}, 'w').write('x')",)), protocol=2)
    yield "builtins.eval", pickle.dumps(
        _Reduce(builtins.eval, (f"open({str(marker)!r}, 'w')",)), protocol=4)    # STACK_GLOBAL
    yield "subprocess.Popen", pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],)), protocol=2)
    # Protocol 0 INST opcode: a class instantiated with arguments, no REDUCE.
    yield "INST os.system", b"(S'touch " + str(marker).encode() + b"'\nios\nsystem\n."


@pytest.mark.parametrize("index", range(5))
def test_hostile_pickle_is_refused_and_not_run(index, tmp):
    marker = tmp / "pwned"
    label, payload = list(payloads(marker))[index]
    src = tmp / "pytorch_model.bin"
    hostile_zip(src, payload)
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt", "--model", "bert")
    line = assert_one_line_error(proc, "pytorch_model.bin")
    assert "refus" in line or "unsafe" in line.lower(), line
    assert not marker.exists(), f"{label} ran"
    assert not (tmp / "out").exists()
    # Listing the file is as safe as converting it.
    proc = run_irconv("ls", src, "--model", "bert")
    assert proc.returncode == 2 and not marker.exists()


def test_safe_pickle_round_trip_still_loads(tmp):
    """Control: the same zip layout with a harmless payload gets past the unpickler."""
    src = tmp / "pytorch_model.bin"
    hostile_zip(src, pickle.dumps({}, protocol=2))
    proc = run_irconv("convert", src, tmp / "out", "--to", "pt", "--model", "bert")
    assert proc.returncode == 2 and b"no tensors" in proc.stderr


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
