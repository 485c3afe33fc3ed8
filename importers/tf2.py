"""HF TF2 (Keras 2 h5 as transformers' TF classes write it): a directory with config.json +
tf_model.h5 (or tf_model.h5.index.json and shards), or a bare .h5 file."""
from __future__ import annotations

from pathlib import Path

from ..formats import kerash5
from ..ir import limits
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..ir.tensor import Tensor
from .base import Importer, require_exists, resolve_family, sibling_config

WEIGHT_FILES = ("tf_model.h5", "tf_model.h5.index.json")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def strip_model_name(name: str) -> str:
    """'tf_bert_for_masked_lm/bert/embeddings/...:0' -> 'bert/embeddings/...' (HF's loader
    drops the Keras model name, which differs per head class, before matching)."""
    name = name[:-2] if name.endswith(":0") else name
    return name.split("/", 1)[1] if "/" in name else name


def raw_tensors(weights: list[kerash5.H5Weight], where: str) -> tuple[list[Tensor], list[str]]:
    """One raw tensor per weight. HF TF heads list weights of the layers they hold (the MLM
    head lists the embeddings), so the h5 stores them twice: keep the owner's copy."""
    by_name: dict[str, kerash5.H5Weight] = {}
    duplicates = []
    for w in weights:
        stripped = strip_model_name(w.name)
        owner = stripped.split("/", 1)[0]
        if stripped in by_name:
            if by_name[stripped].tensor.spec.shape != w.tensor.spec.shape:
                raise FormatError(f"weight {stripped!r} is stored twice with different shapes", path=where)
            if w.layer == owner and by_name[stripped].layer != owner:
                duplicates.append(f"{by_name[stripped].layer}/{by_name[stripped].name}")
                by_name[stripped] = w
            else:
                duplicates.append(f"{w.layer}/{w.name}")
            continue
        by_name[stripped] = w
    return [w.tensor.with_spec(name=s) for s, w in by_name.items()], duplicates


class Tf2Importer(Importer):
    name = "tf2"
    description = "HF TF2: tf_model.h5 (Keras 2 h5 as transformers writes it, + sharded .index.json)"

    def detect(self, path: Path) -> bool:
        if path.is_dir():   # a FIFO or device named so is this format's, refused on load
            return any((path / n).exists() for n in WEIGHT_FILES)
        if path.name.endswith(".h5.index.json"):
            return True
        with limits.open_regular(path) as f:     # a FIFO is refused, not waited on
            return f.read(8) == HDF5_MAGIC

    def raw(self, path):
        path = require_exists(Path(path))
        weights_path = next((path / n for n in WEIGHT_FILES if (path / n).exists()), path) if path.is_dir() else path
        weights = (kerash5.read_hf_sharded(weights_path) if weights_path.name.endswith(".index.json")
                   else kerash5.read(weights_path).weights)
        return raw_tensors(weights, str(weights_path))[0]

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = require_exists(Path(path))
        if path.is_dir():
            weights_path = next((path / n for n in WEIGHT_FILES if (path / n).exists()), None)
            if weights_path is None:
                raise FormatError(f"no TF2 weights here (looked for {', '.join(WEIGHT_FILES)})", path=str(path))
        else:
            weights_path = path
        config = sibling_config(path, config, model)
        if weights_path.name.endswith(".index.json"):
            weights = kerash5.read_hf_sharded(weights_path)
            files = [weights_path.name] + [p.name for p in kerash5.shard_files(weights_path)]
        else:
            weights = kerash5.read(weights_path).weights
            files = [weights_path.name]
        if not weights:
            raise FormatError("holds no weights", path=str(weights_path))
        raw, duplicates = raw_tensors(weights, str(weights_path))
        view = view or "tf2"
        family = resolve_family(model, config, raw, view, str(path))
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        ckpt.source.update({"format": self.name, "files": files,
                            "model_name": weights[0].name.split("/", 1)[0]})
        ckpt.source["skipped"] = ckpt.source.get("skipped", []) + duplicates
        return ckpt
