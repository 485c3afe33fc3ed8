"""keras-hub preset directories in h5py + json (FORMATS.md §12): config.json (the serialized
Backbone: module, class_name, config, registered_name "keras_hub>..."), metadata.json, and
the Backbone's weights as Keras 3 writes them (§2.1): model.weights.h5, or shards
model_NNNNN.weights.h5 listed by model.weights.json (§2.3).

Tensors are named by their path below `layers/`, the first component (a class-derived key,
'transformer_encoder', 'transformer_encoder_1') with its ordinal written out
('transformer_encoder_0'), so that the k-th layer of a class is always `<class>_<k>`
(models/kerashub.py). A layer's list attribute (ViT's `encoder_layers`) is a container as
`layers/` is: a group with no `vars` of its own whose keys are class-derived the same way
('vi_t_encoder_block', 'vi_t_encoder_block_1'), so its items get their ordinal written out
too. Written back, a `<key>_0` below a group that holds no weights of its own and only such
keys is the container's first item again.

A Task preset adds task.json (the serialized task, its Backbone config nested) and, where
the task has weights beyond the Backbone's, task.weights.h5 (the same layout, keyed by the
task's own layers; its optimizer state is training state, not read). Those weights are
named 'task/<name as above>'. Nothing here imports keras.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..ir import limits
from ..ir.errors import FormatError, UsageError
from ..ir.tensor import Tensor, TensorSpec
from .kerash5.common import _one_line
from .kerash5.guard import child, members, scope_of
from .kerash5.reading import _weight, open_h5
from .kerash5.writing import KerasH5Writer, _check_paths
from .keras3 import _datasets
from .partial import PartialWriter

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
SHARD_INDEX = "model.weights.json"
TOKENIZER = "tokenizer.json"
TASK_CONFIG = "task.json"
TASK_WEIGHTS = "task.weights.h5"
TASK = "task"           # raw names of task.weights.h5's weights start 'task/'
PREPROCESSOR = "preprocessor.json"
ASSETS = "assets/tokenizer"
# A preset's JSON files are a few KB (the largest, a shard index, a few hundred for the
# biggest models); a crafted one of many MB costs seconds and hundreds of MB to parse.
MAX_JSON = 8 << 20
_SHARD_NAME = re.compile(r"model_\d{5}\.weights\.h5")


def require_inside(directory: Path, path: Path, what: str = "") -> None:
    """Refuse a file of the preset that is a link out of it (a crafted preset's
    model.weights.h5 or vocabulary.txt naming a file elsewhere, whose bytes would be read or
    copied into the output)."""
    real = limits.outside(path, directory)
    if real is not None:
        raise FormatError(f"{what or path.name} is a link to {real}, outside the preset; irconv reads only "
                          "inside the directory it is given", path=str(path))


def _read_json(path: Path, what: str) -> dict:
    require_inside(path.parent, path, what)
    with limits.open_regular(path, what) as f:
        data = f.read(MAX_JSON + 1)
    if len(data) > MAX_JSON:
        raise FormatError(f"{what} is over {MAX_JSON >> 20} MiB: not a preset file", path=str(path))
    try:
        value = limits.loads_json(data.decode("utf-8"), path=str(path), what=what)
    except UnicodeDecodeError:
        raise FormatError(f"{what} is not UTF-8 text", path=str(path)) from None
    if not isinstance(value, dict):
        raise FormatError(f"{what} is not a JSON object", path=str(path))
    return value


def backbone_class(config: dict) -> str | None:
    """The keras_hub Backbone class a preset config.json serializes, or None."""
    registered, cls = config.get("registered_name"), config.get("class_name")
    module = config.get("module")
    if not isinstance(cls, str) or not cls.endswith("Backbone") or not isinstance(config.get("config"), dict):
        return None
    if (isinstance(registered, str) and registered.startswith("keras_hub>")) or \
            (isinstance(module, str) and module.startswith("keras_hub.")):
        return cls
    return None


def serialized_problem(value: dict, what: str) -> str | None:
    """Why a serialized keras_hub object (config.json's Backbone, task.json's task) says two
    things at once, or None: a registered_name other than its class's (Keras builds the class
    registered under that name, irconv reads class_name), or a module outside keras_hub."""
    cls, registered, module = value.get("class_name"), value.get("registered_name"), value.get("module")
    if not isinstance(cls, str):
        return f"{what} has no class_name string"
    if registered is not None and registered != f"keras_hub>{cls}":
        return f"{what}'s registered_name {registered!r} is not its class_name's ('keras_hub>{cls}')"
    if module is not None and not (isinstance(module, str) and module.startswith("keras_hub.")):
        return f"{what}'s module {module!r} is not in keras_hub"
    return None


def looks_like(path) -> bool:
    """Cheap: a directory with metadata.json and a config.json naming a keras_hub Backbone (or,
    beside a keras-hub metadata.json, one that does not, so that read() says what is wrong)."""
    path = Path(path)
    if not path.is_dir() or not (path / CONFIG).is_file() or not (path / METADATA).is_file():
        return False
    try:
        if backbone_class(_read_json(path / CONFIG, CONFIG)) is not None:
            return True
    except (FormatError, OSError):
        pass
    try:
        return "keras_hub_version" in _read_json(path / METADATA, METADATA)
    except (FormatError, OSError):
        return False


# --------------------------------------------------------------------------- names

def _split_key(key: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*\D)_(\d+)", key)
    return (m.group(1), int(m.group(2))) if m else (key, 0)


def _ordinal(key: str) -> str:
    base, n = _split_key(key)
    return f"{base}_{n}"


def raw_name(h5_path: str, containers: frozenset[str] = frozenset(), task: bool = False) -> str:
    """'layers/transformer_encoder/x/vars/0' -> 'transformer_encoder_0/x/vars/0'; the items of
    the nested `containers` (h5 group paths) get their ordinal too (in task.weights.h5:
    'task/transformer_encoder_0/...')."""
    if task:
        return f"{TASK}/{raw_name(h5_path, containers)}"
    parts = h5_path.removeprefix("layers/").split("/")
    out = [_ordinal(parts[0])]
    for n in range(1, len(parts)):
        parent = "layers/" + "/".join(parts[:n])
        out.append(_ordinal(parts[n]) if parent in containers else parts[n])
    return "/".join(out)


def _first_item(key: str) -> str:
    base, n = _split_key(key)
    return base if n == 0 else f"{base}_{n}"


def is_task(raw: str) -> bool:
    return raw.startswith(f"{TASK}/")


def h5_path(raw: str, containers: frozenset[str] = frozenset()) -> str:
    """The inverse of raw_name (the path in its file, task.weights.h5 for a task weight);
    `containers` are raw group paths (see h5_layout)."""
    raw = raw.removeprefix(f"{TASK}/")
    parts = raw.split("/")
    top = parts[0]
    if _ordinal(top) != top:
        raise UsageError(f"kerashub name {raw!r} does not start with <layer class>_<n>")
    out = [_first_item(top)]
    for n in range(1, len(parts)):
        out.append(_first_item(parts[n]) if "/".join(parts[:n]) in containers else parts[n])
    return "layers/" + "/".join(out)


def h5_layout(raws: Sequence[str]) -> tuple[list[str], list[str]]:
    """h5_path of every name, with the nested containers the names show (a group that holds no
    `vars` of its own and whose every key ends in its ordinal), and the h5 paths of the layers'
    `vars` groups, which Keras writes for every layer, weights or not (the containers have none:
    that is how a reader tells them apart)."""
    children: dict[str, set[str]] = {}
    for raw in raws:
        parts = raw.split("/")
        for n in range(1, len(parts) - 1):
            children.setdefault("/".join(parts[:n]), set()).add(parts[n])
    containers = frozenset(group for group, keys in children.items()
                           if "vars" not in keys and all(_ordinal(k) == k for k in keys))
    layers = [group for group in children if group not in containers]
    return ([h5_path(raw, containers) for raw in raws],
            sorted(h5_path(f"{group}/vars", containers) for group in layers))


# --------------------------------------------------------------------------- reading

@dataclass
class Preset:
    config: dict                 # config.json
    metadata: dict               # metadata.json
    tensors: list[Tensor]        # named by raw_name
    files: list[str]             # the weights files read
    skipped: list[str]           # h5 paths that are not layer weights
    task: dict | None = None     # task.json


def _read_h5(path: Path, label: str, out: list[Tensor], skipped: list[str], task: bool = False) -> None:
    spath = os.fspath(path)
    try:
        with open_h5(spath, label) as f:
            scope = scope_of(spath, label)
            paths = _datasets(f, scope, set())     # hard links only, every group once
            containers: dict[str, bool] = {}
            for rel in paths:
                parts = rel.split("/")
                if len(parts) < 4 or parts[0] != "layers" or parts[-2] != "vars" or not parts[-1].isdigit():
                    skipped.append(f"{TASK_WEIGHTS}:{rel}" if task else rel)
                    continue
                ds = f
                for part in parts:
                    ds = child(ds, part, scope)
                w = _weight(spath, "", raw_name(rel, _containers(f, parts, containers), task), ds, scope)
                out.append(w.tensor)
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, UnicodeError) as e:
        raise FormatError(f"unreadable Keras 3 weights: {_one_line(e)}", path=label) from None


def _containers(f, parts: list[str], known: dict[str, bool]) -> frozenset[str]:
    """The nested groups on a dataset's path that are containers (hold no `vars` group)."""
    out = []
    for n in range(2, len(parts) - 2):
        group = "/".join(parts[:n + 1])
        if group not in known:
            known[group] = "vars" not in f[group]
        if known[group]:
            out.append(group)
    return frozenset(out)


def _shards(directory: Path) -> list[Path]:
    index = _read_json(directory / SHARD_INDEX, SHARD_INDEX)
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise FormatError(f"{SHARD_INDEX} has no weight_map object", path=str(directory / SHARD_INDEX))
    names: list[str] = []
    for value in weight_map.values():
        for name in value if isinstance(value, list) else [value]:
            if not isinstance(name, str) or not _SHARD_NAME.fullmatch(name):
                raise FormatError(f"{SHARD_INDEX} names shard {name!r}, not a model_NNNNN.weights.h5 "
                                  "file beside it", path=str(directory / SHARD_INDEX))
            if name not in names:
                names.append(name)
    return [directory / n for n in sorted(names)]


def read(directory) -> Preset:
    """The preset at `directory`: its configs and its Backbone's weights (lazy)."""
    directory = Path(directory)
    config = _read_json(directory / CONFIG, CONFIG)
    if backbone_class(config) is None:
        raise FormatError(f"{CONFIG} does not serialize a keras_hub Backbone (class_name "
                          f"{config.get('class_name')!r})", path=str(directory / CONFIG))
    problem = serialized_problem(config, CONFIG)
    if problem:
        raise FormatError(problem, path=str(directory / CONFIG))
    metadata = _read_json(directory / METADATA, METADATA) if os.path.lexists(directory / METADATA) else {}
    if os.path.lexists(directory / WEIGHTS):
        files = [directory / WEIGHTS]
    elif os.path.lexists(directory / SHARD_INDEX):
        files = _shards(directory)
    else:
        raise FormatError(f"no {WEIGHTS} (or {SHARD_INDEX} with its shards)", path=str(directory))
    tensors: list[Tensor] = []
    skipped: list[str] = []
    for path in files:
        require_inside(directory, path)
        limits.require_regular(path)
        _read_h5(path, str(path), tensors, skipped)
    task = _read_json(directory / TASK_CONFIG, TASK_CONFIG) if os.path.lexists(directory / TASK_CONFIG) else None
    problem = serialized_problem(task, TASK_CONFIG) if task is not None else None
    if problem:
        raise FormatError(problem, path=str(directory / TASK_CONFIG))
    if task is not None and os.path.lexists(directory / TASK_WEIGHTS):
        require_inside(directory, directory / TASK_WEIGHTS)
        limits.require_regular(directory / TASK_WEIGHTS)
        _read_h5(directory / TASK_WEIGHTS, str(directory / TASK_WEIGHTS), tensors, skipped, task=True)
        files.append(directory / TASK_WEIGHTS)
    seen: dict[str, int] = {}
    for t in tensors:
        seen[t.name] = seen.get(t.name, 0) + 1
    dupes = sorted(n for n, k in seen.items() if k > 1)
    if dupes:
        raise FormatError(f"weights stored twice (in two shards?): {dupes[:5]!r}", path=str(directory))
    if not tensors:
        raise FormatError("the preset's weights file holds no layer weights", path=str(files[0]))
    return Preset(config, metadata, tensors, [p.name for p in files], skipped, task)


# --------------------------------------------------------------------------- writing

class PresetWeightsWriter(KerasH5Writer):
    """model.weights.h5 as Keras 3's H5IOStore writes it: a root `vars` group and every
    declared tensor at h5_path(name) (`layers/<key>/.../vars/N`), and the task's weights
    ('task/...' names) so in task.weights.h5 beside it. Written, closed and aborted as the
    Keras 2 writer is: datasets laid out now, tensors pwritten in any order from any thread,
    .partial files renamed into place once every tensor is written."""

    def __init__(self, path, specs: Sequence[TensorSpec]):
        PartialWriter.__init__(self, os.fspath(path))
        self._specs = {s.name: s for s in specs}
        files = [(self.path, [s for s in specs if not is_task(s.name)])]
        if any(is_task(s.name) for s in specs):
            files.append((os.path.join(os.path.dirname(self.path), TASK_WEIGHTS), [s for s in specs if is_task(s.name)]))
        self._tmps, self._finals = [p + ".partial" for p, _ in files], [p for p, _ in files]
        self._places = {name: [] for name in self._specs}

        def build(listed, paths, layer_vars):
            def lay(f, place) -> None:
                f.create_group("vars")
                for group in layer_vars:
                    f.require_group(group)
                for spec, where in zip(listed, paths):
                    group, _, leaf = where.rpartition("/")
                    place(f.require_group(group), leaf, spec)
            return lay

        builds = []
        for final, listed in files:
            paths, layer_vars = h5_layout([s.name.removeprefix(f"{TASK}/") for s in listed])
            _check_paths(paths, "kerashub weights", final)
            builds.append(build(listed, paths, layer_vars))
        self._lay_out_behind(builds)


def write_json(path: Path, value: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=4)
        f.write("\n")


__all__ = ["Preset", "read", "looks_like", "backbone_class", "serialized_problem", "require_inside", "raw_name", "h5_path", "h5_layout", "PresetWeightsWriter",
           "write_json", "is_task", "CONFIG", "METADATA", "WEIGHTS", "SHARD_INDEX", "TOKENIZER", "ASSETS", "TASK",
           "TASK_CONFIG", "TASK_WEIGHTS", "PREPROCESSOR", "members"]
