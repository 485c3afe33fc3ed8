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
