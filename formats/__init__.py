"""Byte-level codecs. No model knowledge lives here."""
from ..ir.lazy import lazy_module

__all__ = ["lazy_module"]
