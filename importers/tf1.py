"""TF checkpoints (TensorBundle: prefix.index + prefix.data-*): TF1 name-based ones such as
the original BERT release, and TF2 object-based ones (Keras save_weights(prefix)), whose
variable names come from the checkpoint's object graph."""
from __future__ import annotations

import os
from pathlib import Path

from ..formats import tensorbundle
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..models import FAMILIES
from .base import Importer, read_json, require_exists, resolve_family
from .keras import KerasImporter
from .tf2 import strip_model_name


def find_config(directory: Path, config: dict | None) -> dict | None:
    """config.json (HF), else a family's own config file for this view (bert_config.json)."""
    if config is not None:
        return config
    if os.path.lexists(directory / "config.json"):      # a FIFO is refused by read_json, not skipped
        return read_json(directory / "config.json")
    for fam in FAMILIES:
        vc = fam.view_configs.get("tf1")
        if vc and os.path.lexists(directory / vc.filename):
            return vc.to_canonical(read_json(directory / vc.filename))
    return None


class Tf1Importer(Importer):
    name = "tf1"
    description = ("TF checkpoint (prefix.index + data shards): TF1 names like the original BERT release, "
                   "or TF2 object-based (Keras save_weights)")

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return (path / "checkpoint").is_file() or any(path.glob("*.index"))
        return path.name.endswith(".index") or ".data-" in path.name or \
            (not path.exists() and Path(str(path) + ".index").is_file())

    def raw(self, path):
        bundle = tensorbundle.read(Path(path))
        names = tensorbundle.variable_names(bundle)
        return [t.with_spec(name=names.get(t.name) or t.name) for t in bundle.tensors]

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = Path(path)
        if not path.exists() and not Path(str(path) + ".index").is_file():
            require_exists(path)
        bundle = tensorbundle.read(path)
        directory = path if path.is_dir() else Path(bundle.prefix).parent
        config = find_config(directory, config)
        names = tensorbundle.variable_names(bundle)
        skipped = [key for key, name in names.items() if name is None]
        if bundle.objects is not None:
            # Object-based: variables are named by their Keras layers ('tf_bert_model/bert/...'),
            # which is HF's TF2 naming once the Keras model name is dropped.
            raw = [t.with_spec(name=strip_model_name(names[t.name])) for t in bundle.tensors if names[t.name]]
            view = view or "tf2"
        else:
            # Name-based: the key is the variable name; training state is left to the view's
            # ignore rules, so `irconv ls` lists it as skipped.
            raw = list(bundle.tensors)
            skipped = []
            view = view or "tf1"
        if not raw:
            raise FormatError("holds no model variables", path=bundle.prefix)
        family = resolve_family(model, config, raw, view, str(path))
        if bundle.objects is None and view == "tf1" and view not in family.views and "keras" in family.views:
            # A family with only Keras names (efficientnet), which `--to tf1` writes name-based
            # under those names: it is the keras importer's TF-format checkpoint.
            return KerasImporter().load(path, model=family.name, config=config)
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        if config is not None and view in family.view_configs:
            # A release config (bert_config.json) lacks what only the heads tell (num_labels).
            inferred, _ = family.infer_config({c: t.spec for c, t in ckpt.tensors.items()}, {})
            ckpt.config = {**{k: v for k, v in inferred.items() if k == "num_labels"}, **ckpt.config}
        ckpt.source.update({"format": self.name, "files": [os.path.basename(bundle.prefix) + ".index"]})
        ckpt.source["skipped"] = ckpt.source.get("skipped", []) + skipped
        return ckpt
