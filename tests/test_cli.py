"""CLI surface: listings, and that converting never imports a framework."""
from __future__ import annotations

import subprocess
import sys

import pytest

from irconv import EXPORTERS, FAMILIES, IMPORTERS
from conftest import run_irconv


def test_formats_and_models_list_the_registries():
    text = run_irconv("formats", check=True).stdout.decode()
    for name in set(IMPORTERS.names()) | set(EXPORTERS.names()):
        assert any(line.startswith(name + " ") for line in text.splitlines()), name
    text = run_irconv("models", check=True).stdout.decode()
    for fam in FAMILIES:
        assert fam.name in text
        for cls in fam.architectures:
            assert cls in text


def test_conversion_path_imports_no_framework(tmp):
    """Every format in and out (pt, tf2, tf1, fairseq, the stream) with torch and tensorflow
    installed: none of the frameworks gets imported."""
    import os
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    fairseq = os.path.join(os.path.dirname(__file__), "fixtures", "fairseq", "roberta_base-trainer")
    code = f"""
import io, sys, irconv
irconv.convert({example!r}, {str(tmp / 'a')!r}, to="pt", bin=True)
buf = io.BytesIO()
irconv.write_stream(irconv.load({str(tmp / 'a')!r}), buf)
buf.seek(0)
irconv.save(irconv.open_stream(buf), {str(tmp / 'b')!r}, "pt")
irconv.convert({str(tmp / 'b')!r}, {str(tmp / 'c')!r}, to="tf2")
irconv.convert({str(tmp / 'c')!r}, {str(tmp / 'd')!r}, to="tf1")
irconv.convert({str(tmp / 'd')!r}, {str(tmp / 'e')!r}, to="pt")
irconv.convert({fairseq!r}, {str(tmp / 'f')!r}, to="tf2")
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'keras', 'jax'))
assert not bad, bad
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp / "b" / "model.safetensors").is_file()


def test_progress_on_a_terminal_only(tmp):
    """Progress goes to stderr when it is a terminal, and never with --quiet or into a pipe
    (where stderr holds the one-line summary of what was written, and nothing else)."""
    import os
    import pty
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")

    def stderr_of(*extra):
        master, slave = pty.openpty()
        try:
            proc = subprocess.run([sys.executable, "-m", "irconv", "convert", example, str(tmp / f"o{len(extra)}"),
                                   "--to", "pt", *extra], stderr=slave, stdout=subprocess.DEVNULL, timeout=120)
            os.close(slave)
            slave = None
            chunks = []
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return proc.returncode, b"".join(chunks).decode()
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)

    rc, err = stderr_of()
    assert rc == 0 and "export pt" in err and "100%" in err, err       # tqdm's bar: bytes, rate, time left
    rc, err = stderr_of("--quiet")
    assert rc == 0 and "export pt" not in err and "tensors" not in err
    proc = run_irconv("convert", example, tmp / "piped", "--to", "pt", check=True)
    err = proc.stderr.decode()
    assert "export pt" not in err and "\r" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith(f"irconv: wrote {tmp / 'piped'}: "), err


def test_cast_is_the_only_way_a_dtype_changes(tmp):
    """bf16 cannot go into HF TF2 h5: refused, unless --cast says how."""
    import json
    import os
    import numpy as np
    from safetensors.numpy import load_file
    from conftest import assert_one_line_error
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    run_irconv("convert", example, tmp / "bf16", "--to", "pt", "--cast", "BF16", check=True)
    assert "BF16" in run_irconv("ls", tmp / "bf16", check=True).stdout.decode()
    assert json.loads((tmp / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    assert_one_line_error(run_irconv("convert", tmp / "bf16", tmp / "tf2", "--to", "tf2"), "BF16", "--cast F32")
    assert not (tmp / "tf2").exists()
    run_irconv("convert", tmp / "bf16", tmp / "tf2", "--to", "tf2", "--cast", "F32", check=True)
    assert "BF16" not in run_irconv("ls", tmp / "tf2", check=True).stdout.decode()
    assert_one_line_error(run_irconv("convert", example, tmp / "x", "--to", "pt", "--cast", "I8"), "I8")
    ref = load_file(os.path.join(example, "model.safetensors"))
    assert all(v.dtype == np.float32 for v in ref.values())


def test_ls_to_shows_the_name_each_tensor_gets(tmp):
    """`ls --to FORMAT` adds where each tensor goes; the names are the ones the export writes
    (read back with TensorFlow's own checkpoint reader, not irconv's)."""
    import os
    tf = pytest.importorskip("tensorflow")
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    proc = run_irconv("ls", example, "--to", "tf1", check=True)
    goes = [line.rsplit("-> ", 1)[1] for line in proc.stdout.decode().splitlines()[1:] if "-> " in line]
    run_irconv("convert", example, tmp / "tf1", "--to", "tf1", check=True)
    stored = set(tf.train.load_checkpoint(str(tmp / "tf1" / "bert_model.ckpt")).get_variable_to_shape_map())
    assert goes and set(goes) <= stored, sorted(set(goes) - stored)[:5]
    assert "bert/encoder/layer_0/attention/self/query/kernel" in goes
