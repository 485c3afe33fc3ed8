"""What every importer shares: the contract, config loading, family resolution."""
from __future__ import annotations

import os
from pathlib import Path

from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError, UsageError
from ..ir.limits import loads_json, missing, open_regular
from ..ir.tensor import Tensor
from ..models import FAMILIES, family_for_model_type
from ..models.engine import Family


class Importer:
    """Lifts one file format into a canonical Checkpoint. Subclasses set `name`."""
    name: str = ""
    description: str = ""

    def detect(self, path: Path) -> bool:
        """Cheap check (names, magic bytes) that `path` is in this format."""
        raise NotImplementedError

    def load(self, path: Path, *, model: str | None = None, view: str | None = None,
             config: dict | None = None) -> Checkpoint:
        raise NotImplementedError

    def raw(self, path: Path) -> list[Tensor]:
        """The file's tensors under their stored names, before any family places them
        (`irconv ls --raw`: why does this file not fit?)."""
        raise UsageError(f"--raw is not available for the {self.name!r} format")


# A config or index file larger than this is not one (real ones are kilobytes; a sharded
# index of a 400B-parameter model is a few MB).
MAX_JSON_BYTES = 64 << 20


def read_json(path: Path) -> dict:
    """A JSON object file (config.json, an index), refusing FIFOs, huge files, deep nesting."""
    with open_regular(path, "JSON") as f:
        data = f.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise FormatError(f"is over {MAX_JSON_BYTES >> 20} MiB, too large for a JSON config or index", path=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"cannot read JSON: not UTF-8 ({exc.reason} at byte {exc.start})", path=str(path)) from None
    data = loads_json(text, path=str(path))
    if not isinstance(data, dict):
        raise FormatError(f"expected a JSON object, found {type(data).__name__}", path=str(path))
    return data


def config_beside(path: Path, names: tuple[str, ...] = ("config.json",)) -> tuple[dict, Path] | None:
    """(config, its file) of a model directory, or of the directory holding a bare weights
    file (model.safetensors with its config.json beside it): a file's config is read, never
    guessed. Whatever stands under the name is read (a FIFO is refused, not skipped)."""
    directory = path if path.is_dir() else path.parent
    for name in names:
        candidate = directory / name
        if os.path.lexists(candidate):
            return read_json(candidate), candidate
    return None


def sibling_config(path: Path, config: dict | None, model: str | None) -> dict | None:
    """`config` if given; else the config.json of `path`'s directory, unless --model names
    another family than it describes (then it is not this file's, and is left alone)."""
    if config is not None:
        return config
    found = config_beside(path)
    if found is None:
        return None
    beside, where = found
    if model and isinstance(beside.get("model_type"), str):
        if beside["model_type"] not in FAMILIES.get(model).model_types:
            return None
    return beside


def require_exists(path: Path) -> Path:
    if not os.path.exists(path):
        raise missing(path)
    return path


def fit_scores(names: list[str], view: str) -> dict[str, int]:
    """Family name -> how many of `names` its `view` places, for every family with that view:
    what tells which family a file holds, and (importers sharing a container, like a TF
    checkpoint) which importer's naming a file uses."""
    scores: dict[str, int] = {}
    for fam in FAMILIES:
        if view not in fam.views:
            continue
        if not names:           # nothing to place: no need to compile the family's name table
            scores[fam.name] = 0
            continue
        fv = fam.view(view)
        prefix = fv.detect_prefix(names)
        scores[fam.name] = fv.placed_count(names, prefix)
    return scores


def resolve_family(model: str | None, config: dict | None, raw: list[Tensor], view: str,
                   where: str, scores: dict[str, int] | None = None) -> Family:
    """--model wins; then config.json's model_type; then the family whose view places most names
    (scores: fit_scores of those names in `view`, when the caller has them already)."""
    if model:
        return FAMILIES.get(model)
    if config and config.get("model_type"):
        if not isinstance(config["model_type"], str):
            raise FormatError(f"config.json model_type {config['model_type']!r} is not a string", path=where)
        return family_for_model_type(config["model_type"])
    if scores is None:
        scores = fit_scores([t.name for t in raw], view)
    best_score = max(scores.values(), default=0)
    best = [name for name, score in scores.items() if score == best_score]
    if best_score == 0 or best_score * 2 < len(raw):
        raise UsageError(f"{where}: cannot tell which model family this is (no config.json model_type, "
                         f"and no family's {view!r} names fit); pass --model "
                         f"({', '.join(FAMILIES.names())})")
    if len(best) > 1:
        # Same names, different models (roberta, xlm-roberta and camembert): never guess.
        raise UsageError(f"{where}: the tensor names fit several families equally ({', '.join(best)}) and "
                         "there is no config.json model_type; pass --model or --config")
    return FAMILIES.get(best[0])
