"""CLI surface: listings, and that converting never imports a framework."""
from __future__ import annotations

import subprocess
import sys

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
    """convert, import and export with torch and tensorflow installed: neither gets imported."""
    import os
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "tiny-bert")
    code = f"""
import io, sys, irconv
irconv.convert({example!r}, {str(tmp / 'a')!r}, to="pt", bin=True)
buf = io.BytesIO()
irconv.write_stream(irconv.load({str(tmp / 'a')!r}), buf)
buf.seek(0)
irconv.save(irconv.open_stream(buf), {str(tmp / 'b')!r}, "pt")
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'transformers', 'keras', 'jax'))
assert not bad, bad
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp / "b" / "model.safetensors").is_file()


def test_progress_on_a_terminal_only(tmp):
    """Progress goes to stderr when it is a terminal, and never with --quiet or into a pipe."""
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
    assert rc == 0 and "46/46 tensors" in err
    rc, err = stderr_of("--quiet")
    assert rc == 0 and "tensors" not in err
    proc = run_irconv("convert", example, tmp / "piped", "--to", "pt", check=True)
    assert b"tensors" not in proc.stderr
