"""Byte-level codecs. No model knowledge lives here.

`from ..formats import tensorbundle` hands out the codec module imported on its first use (a
lazy module), so a command costs only the codecs it reads or writes: `irconv convert` of a
safetensors model to h5 never imports the TensorBundle, zip or pickle code."""
import importlib.util
import sys

from ..ir.lazy import lazy_module

__all__ = ["lazy_module"]


def __getattr__(name: str):
    full = f"{__name__}.{name}"
    if full in sys.modules:         # (find_spec would ask a lazy module its __spec__: loading it)
        return sys.modules[full]
    if not name.startswith("_") and importlib.util.find_spec(full) is not None:
        return lazy_module(full)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
