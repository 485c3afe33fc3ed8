"""Keras models' weights, named as Keras names them ('stem_conv/kernel',
'tf_bert_model/bert/embeddings/...'): the family's "keras" view places them.

Keras writes weights in several containers; each is one `Container` below that lifts its
file into raw tensors under Keras 2 variable names (no ':0'), so the rest of the import does
not care which container it came from:

* Keras 2 / tf-keras h5: `save_weights("x.h5")`, or `save("x.h5")` (under /model_weights).
  Unlike HF TF2 files, whose every weight sits under one Keras model name, the names here
  start with their own layer ('stem_conv/kernel:0' in group 'stem_conv'), or with the
  layers of a nested model.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..formats import kerash5
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..ir.tensor import Tensor
from .base import Importer, require_exists, resolve_family


def weight_name(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


@dataclass(frozen=True)
class Container:
    name: str                                   # shown in `ls` and errors
    detect: Callable[[Path], bool]              # cheap: magic bytes, names
    read: Callable[[Path], list[Tensor]]        # raw tensors named 'layer/leaf'


def _keras2_h5_detect(path: Path) -> bool:
    """A Keras 2 h5 that is not an HF TF2 file. HF's TF classes create every variable under the
    one Keras model name ('tf_bert_model/bert/...'); a Keras model's weights are named after
    their own layers, so their first name components differ (a nested model's layers too)."""
    if path.is_dir() or not kerash5.looks_like(path):
        return False
    try:
        contents = kerash5.read(path)
    except FormatError:
        return False
    weights = contents.weights
    if contents.shard or not weights:
        return False
    if all(w.layer and w.name.startswith(f"{w.layer}/") for w in weights):
        return True
    first = Counter(w.name.split("/", 1)[0] for w in weights)
    return first.most_common(1)[0][1] * 2 < len(weights)


def _keras2_h5_read(path: Path) -> list[Tensor]:
    return [w.tensor.with_spec(name=weight_name(w.name)) for w in kerash5.read(path).weights]


KERAS2_H5 = Container("keras2-h5", _keras2_h5_detect, _keras2_h5_read)

# In detection order.
CONTAINERS: list[Container] = [KERAS2_H5]


def container_of(path: Path) -> Container | None:
    return next((c for c in CONTAINERS if c.detect(path)), None)


class KerasImporter(Importer):
    name = "keras"
    description = "Keras model weights: save_weights('x.h5') / save('x.h5') (Keras 2 / tf-keras h5)"

    def detect(self, path: Path) -> bool:
        return container_of(path) is not None

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = require_exists(Path(path))
        container = container_of(path)
        if container is None:
            raise FormatError("not a Keras weights file this version reads ("
                              + ", ".join(c.name for c in CONTAINERS) + ")", path=str(path))
        raw = container.read(path)
        if not raw:
            raise FormatError("holds no weights", path=str(path))
        dupes = sorted(n for n, k in Counter(t.name for t in raw).items() if k > 1)
        if dupes:
            raise FormatError(f"weight names listed twice: {dupes[:5]!r}", path=str(path))
        view = view or "keras"
        family = resolve_family(model, config, raw, view, str(path))
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        ckpt.source.update({"format": self.name, "container": container.name, "files": [path.name]})
        return ckpt
