"""HF PyTorch: a model directory (config.json + model.safetensors / pytorch_model.bin,
sharded or not) or a bare weights file."""
from __future__ import annotations

from pathlib import Path

from ..formats import safetensors, sharding, torchmodule, torchzip
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError
from ..ir.tensor import Tensor
from ..models.engine import Family
from .base import Importer, fit_scores, require_exists, resolve_family, sibling_config

# In the order HF's from_pretrained prefers them.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")


def _read_file(path: Path) -> tuple[list[Tensor], dict]:
    """Raw tensors of one weights file (the codec is chosen by content, not by suffix)."""
    if torchzip.looks_like(path):
        # A state dict, or a whole pickled module (DALL-E's encoder.pkl) read as a module tree.
        return torchmodule.read(path), {"codec": "torchzip"}
    if not safetensors.looks_like(path):
        raise FormatError("not a model weights file (expected a PyTorch checkpoint or safetensors)",
                          path=str(path))
    return safetensors.read(path), {"codec": "safetensors"}


def read_weights(path: Path) -> tuple[list[Tensor], list[str], object]:
    """Raw tensors, the files they came from, and a `shares_storage(a, b)` hint."""
    if path.name.endswith(".index.json"):
        shard_of = sharding.read_index(path)
        raw, files, seen = [], [], {}
        for shard in dict.fromkeys(shard_of.values()):
            tensors, _ = _read_file(shard)
            files.append(shard.name)
            for t in tensors:
                if t.name in seen:
                    raise FormatError(f"tensor {t.name!r} appears in two shards ({seen[t.name].name} "
                                      f"and {shard.name})", path=str(shard))
                if t.name in shard_of and shard_of[t.name] != shard:
                    raise FormatError(f"tensor {t.name!r} is in {shard.name}, but the index says "
                                      f"{shard_of[t.name].name}", path=str(path))
                seen[t.name] = shard
                raw.append(t)
        return raw, files, torchzip.shares_storage
    return _read_file(path)[0], [path.name], torchzip.shares_storage


def find_weights(directory: Path) -> Path:
    # exists(), not is_file(): a FIFO or device under a weights name is refused by name when
    # it is opened (open_regular), not skipped for a less helpful "no weights file".
    for name in WEIGHT_FILES:
        if (directory / name).exists():
            return directory / name
    raise FormatError(f"no weights file here (looked for {', '.join(WEIGHT_FILES)})", path=str(directory))


# Naming conventions a torch.save or safetensors file may use, tried in this order when --view
# is not given: HF's, a research release's ("orig", FLAVA's), DALL-E's module tree ("dalle").
VIEWS = ("pt", "orig", "dalle")


def _fit(family: Family, view: str, names: list[str]) -> int:
    fv = family.view(view)
    prefix = fv.detect_prefix(names)
    return fv.placed_count(names, prefix)


def resolve_view(model: str | None, config: dict | None, raw: list[Tensor], where: str) -> tuple[Family, str]:
    """Family and view of a file read without --view. A family named by --model or the config
    takes whichever of its VIEWS places most names; otherwise the first of VIEWS in which some
    family places over half of them. "pt" when nothing fits, so its error is the one shown."""
    names = [t.name for t in raw]
    if model or (config and config.get("model_type")):
        family = resolve_family(model, config, raw, "pt", where)
        fits = [(_fit(family, v, names), -n, v) for n, v in enumerate(VIEWS) if v in family.views]
        best = max(fits, default=(0, 0, "pt"))
        return family, best[2] if best[0] else "pt"
    pt_scores = None
    for view in VIEWS:
        scores = fit_scores(names, view)
        if view == "pt":
            pt_scores = scores
        best = max(scores.values(), default=0)
        if best and best * 2 >= len(names):
            return resolve_family(None, None, raw, view, where, scores), view
    return resolve_family(None, None, raw, "pt", where, pt_scores), "pt"


# The renames transformers applies to checkpoint keys on load (PreTrainedModel.
# _fix_state_dict_key_on_load): LayerNorm gamma/beta of early ports from TF, and the weight-norm
# pair older torch saved as weight_g/weight_v (most wav2vec2/HuBERT files on the hub), which
# torch >= 2.1 keeps as parametrizations. A file HF loads is a file irconv reads.
LEGACY_SUFFIXES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"),
                   ("weight_g", "parametrizations.weight.original0"),
                   ("weight_v", "parametrizations.weight.original1"))


def modern_name(name: str) -> str:
    for old, new in LEGACY_SUFFIXES:
        if name.endswith(old):
            return name[: -len(old)] + new
    return name


class PtImporter(Importer):
    name = "pt"
    description = ("HF PyTorch: model.safetensors or pytorch_model.bin (+ sharded .index.json); "
                   "a whole pickled module (DALL-E's encoder.pkl), read as plain data")

    def detect(self, path: Path) -> bool:
        if path.is_dir():
            return any((path / n).exists() for n in WEIGHT_FILES)
        if path.suffix == ".pkl":       # torch.save of a whole module (DALL-E's encoder.pkl)
            return path.is_file() and torchzip.looks_like(path)
        return path.suffix in (".safetensors", ".bin", ".pt", ".pth") or path.name.endswith(
            (".safetensors.index.json", ".bin.index.json"))

    def raw(self, path):
        path = require_exists(Path(path))
        return read_weights(find_weights(path) if path.is_dir() else path)[0]

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = require_exists(Path(path))
        weights = find_weights(path) if path.is_dir() else path
        config = sibling_config(path, config, model)
        raw, files, shares = read_weights(weights)
        if not raw:
            raise FormatError("holds no tensors", path=str(weights))
        raw = [t.with_spec(name=modern_name(t.name)) for t in raw]
        if view is None:
            family, view = resolve_view(model, config, raw, str(path))
        else:
            family = resolve_family(model, config, raw, view, str(path))
        by_name = {t.name: t for t in raw}
        ckpt = family.view(view).to_canonical(
            raw, config, str(path), tied_hint=lambda a, b: shares(by_name[a], by_name[b]))
        ckpt.source.update({"format": self.name, "files": files})
        return ckpt
