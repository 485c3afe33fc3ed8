"""Byte-level codecs. No model knowledge lives here.

`from ..formats import tensorbundle` hands out the codec imported on its first use (a lazy
module), so a command costs only the codecs it reads or writes: `irconv convert` of a
safetensors model to h5 never imports the TensorBundle, zip or pickle code."""
from ..ir.lazy import lazy_module

__all__ = ["lazy_module"]

_CODECS = frozenset({"keras3", "kerash5", "partial", "pickle", "safetensors", "sharding",
                     "tensorbundle", "torchmodule", "torchzip", "ziprecords"})


def __getattr__(name: str):
    if name in _CODECS:
        return lazy_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
