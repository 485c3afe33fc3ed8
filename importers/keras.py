"""Keras applications weights: a Keras 2 / tf-keras h5 from `model.save_weights("x.h5")` (or
the weights of `model.save("x.h5")`), named by layer as the application builds them
('stem_conv/kernel:0'). Unlike HF TF2 files there is no model-name scope to drop, only ':0'."""
from __future__ import annotations

from pathlib import Path

from ..formats import kerash5
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from .base import Importer, require_exists, resolve_family


def weight_name(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


class KerasImporter(Importer):
    name = "keras"
    description = "Keras applications weights: save_weights('x.h5') (Keras 2 / tf-keras h5)"

    def detect(self, path: Path) -> bool:
        """A plain h5 whose every weight is named after its own layer ('stem_conv/kernel:0' in
        group 'stem_conv'). HF TF2 files name the Keras model first ('tf_bert_model/bert/...'
        in group 'bert'), so they never pass."""
        if path.is_dir() or not kerash5.looks_like(path):
            return False
        try:
            contents = kerash5.read(path)
        except FormatError:
            return False
        return (not contents.shard and bool(contents.weights)
                and all(w.layer and w.name.startswith(f"{w.layer}/") for w in contents.weights))

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = require_exists(Path(path))
        weights = kerash5.read(path).weights
        if not weights:
            raise FormatError("holds no weights", path=str(path))
        raw = [w.tensor.with_spec(name=weight_name(w.name)) for w in weights]
        names = [t.name for t in raw]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FormatError(f"weight names listed twice: {dupes[:5]!r}", path=str(path))
        view = view or "keras"
        family = resolve_family(model, config, raw, view, str(path))
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        ckpt.source.update({"format": self.name, "files": [path.name]})
        return ckpt
