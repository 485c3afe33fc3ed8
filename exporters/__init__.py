"""Exporters, one module per target format, registered by format key."""
from __future__ import annotations

from ..registry import Registry
from .base import Exporter, ExportOptions
from .flax import FlaxExporter
from .keras import KerasExporter
from .kerashub import KerasHubExporter
from .meta import MetaExporter
from .pt import PtExporter
from .tf1 import Tf1Exporter
from .tf2 import Tf2Exporter

EXPORTERS: Registry[Exporter] = Registry("output format")
EXPORTERS.add("flax", FlaxExporter())
EXPORTERS.add("keras", KerasExporter())
EXPORTERS.add("kerashub", KerasHubExporter())
EXPORTERS.add("meta", MetaExporter())
EXPORTERS.add("pt", PtExporter())
EXPORTERS.add("tf1", Tf1Exporter())
EXPORTERS.add("tf2", Tf2Exporter())
EXPORTERS.alias_formats()
