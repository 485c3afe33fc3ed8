"""Importers, one module per source format, registered by format key."""
from __future__ import annotations

from ..registry import Registry
from .base import Importer
from .fairseq import FairseqImporter
from .flax import FlaxImporter
from .keras import KerasImporter
from .kerashub import KerasHubImporter
from .meta import MetaImporter
from .pt import PtImporter
from .tf1 import Tf1Importer
from .tf2 import Tf2Importer

IMPORTERS: Registry[Importer] = Registry("input format")
IMPORTERS.add("fairseq", FairseqImporter())
IMPORTERS.add("keras", KerasImporter())
IMPORTERS.add("kerashub", KerasHubImporter())
IMPORTERS.add("meta", MetaImporter())
IMPORTERS.add("pt", PtImporter())
IMPORTERS.add("tf1", Tf1Importer())
IMPORTERS.add("tf2", Tf2Importer())
IMPORTERS.add("flax", FlaxImporter())    # last: a directory holding PyTorch weights too is read as pt
IMPORTERS.alias_formats()
