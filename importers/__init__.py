"""Importers, one module per source format, registered by format key."""
from __future__ import annotations

from ..registry import Registry
from .base import Importer
from .pt import PtImporter

IMPORTERS: Registry[Importer] = Registry("input format")
IMPORTERS.add("pt", PtImporter())
