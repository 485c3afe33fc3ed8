"""Shared test helpers. torch/transformers/tensorflow are oracles here, never the code under test."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# The CLI is run in thousands of subprocesses. Compile the package's bytecode once first, as
# pip would: under PYTHONDONTWRITEBYTECODE a checkout is otherwise compiled from source at every
# start (~0.1 s each, minutes over the suite). Once, in the controller, before any worker runs.
if not os.environ.get("PYTEST_XDIST_WORKER"):
    import compileall
    import re
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    compileall.compile_dir(_root, quiet=1, rx=re.compile(re.escape(_root) + r"[/\\](\.venv|\.git|build)[/\\]"))

# Under pytest-xdist each worker keeps its own hypothesis example database, so that two
# workers never write one directory at once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    settings.register_profile("xdist-worker", database=DirectoryBasedExampleDatabase(
        os.path.join(".hypothesis", f"examples-{os.environ['PYTEST_XDIST_WORKER']}")))
    settings.load_profile("xdist-worker")


def run_irconv(*args, input=None, cwd=None, check=False):
    """Run the real CLI in a subprocess; returns CompletedProcess with bytes stdout/stderr."""
    proc = subprocess.run([sys.executable, "-m", "irconv", *map(str, args)], input=input,
                          capture_output=True, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"irconv {args} failed ({proc.returncode}): {proc.stderr.decode()}")
    return proc


def run_pipe(left: list, right: list, cwd=None):
    """`irconv LEFT | irconv RIGHT` through a real OS pipe; returns (left rc, right proc)."""
    a = subprocess.Popen([sys.executable, "-m", "irconv", *map(str, left)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd)
    b = subprocess.run([sys.executable, "-m", "irconv", *map(str, right)], stdin=a.stdout,
                       capture_output=True, cwd=cwd)
    a.stdout.close()
    a_err = a.stderr.read()
    a.wait()
    return a.returncode, a_err, b


def assert_one_line_error(proc, *needles):
    err = proc.stderr.decode()
    assert proc.returncode == 2, (proc.returncode, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("irconv: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def written_both_ways(tmp_path, arrays: dict, make_writer, name: str) -> tuple:
    """`arrays` saved as safetensors, then given to a writer twice: in tmp_path/write every
    tensor by write(array), in tmp_path/copy each one copy() can take from its file range
    (a kernel copy). make_writer(path, specs) -> a context-manager writer at path/name.
    Returns the two paths written."""
    from safetensors.numpy import save_file
    from irconv.formats import safetensors as st_format
    save_file(arrays, str(tmp_path / "src.safetensors"))
    tensors = {t.name: t for t in st_format.read(tmp_path / "src.safetensors")}
    assert any(t.extent is not None for t in tensors.values())
    for how in ("write", "copy"):
        (tmp_path / how).mkdir()
        with make_writer(tmp_path / how / name, [tensors[n].spec for n in sorted(arrays)]) as w:
            for n in sorted(arrays):
                t = tensors[n]
                if how == "copy" and t.extent is not None:
                    w.copy(n, t.spec, t.extent)
                else:
                    w.write(n, t.load())
    return tmp_path / "write" / name, tmp_path / "copy" / name


def load_counting_reads(t):
    """t.load(), and the size of each os.preadv it made."""
    reads = []
    real = os.preadv

    def counting(fd, buffers, offset):
        reads.append(sum(len(b) for b in buffers))
        return real(fd, buffers, offset)
    os.preadv = counting
    try:
        return t.load(), reads
    finally:
        os.preadv = real
