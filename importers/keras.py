"""Keras models' weights, named as Keras names them ('stem_conv/kernel',
'tf_bert_model/bert/embeddings/...'): the family's "keras" view places them.

Keras writes weights in several containers; each is one `Container` below that lifts its
file into raw tensors under Keras 2 variable names (no ':0'), so the rest of the import does
not care which container it came from:

* Keras 2 / tf-keras h5: `save_weights("x.h5")`, or `save("x.h5")` (under /model_weights).
  Unlike HF TF2 files, whose every weight sits under one Keras model name, the names here
  start with their own layer ('stem_conv/kernel:0' in group 'stem_conv'), or with the
  layers of a nested model.
* TF checkpoints (TensorBundle): tf_keras `save_weights("dir/prefix")`, object-based, whose
  object graph names the variables; or name-based, keyed by variable name, as irconv's tf1
  export writes a family that has only Keras names. Optimizer state and save_counter are
  skipped.
* Keras 3 `.weights.h5` (`save_weights("x.weights.h5")`) and `.keras` archives
  (`save("x.keras")`: config.json + model.weights.h5): variables stored by position under
  class-derived groups (`layers/batch_normalization_3/vars/0`), named here from the layer's
  own name and a per-class table of Keras 2 leaves (formats/keras3.py); the archive's
  config.json says which optional variables (bias, gamma, beta) a layer has. The optimizer's
  variables are skipped.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..formats import keras3, kerash5, tensorbundle
from ..ir.checkpoint import Checkpoint
from ..ir.errors import FormatError, IrconvError, MappingError
from ..ir.tensor import Tensor
from .base import Importer, fit_scores, require_exists, resolve_family, sibling_config


def weight_name(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


@dataclass(frozen=True)
class Container:
    name: str                                   # shown in `ls` and errors
    detect: Callable[[Path], bool]              # cheap: magic bytes, names
    read: Callable[[Path], list[Tensor]]        # raw tensors named 'layer/leaf'
    # Entries that are not model weights (optimizer state), listed by `irconv ls` as skipped.
    skipped: Callable[[Path], list[str]] = lambda path: []


def _keras2_h5_detect(path: Path) -> bool:
    """A Keras 2 h5 that is not an HF TF2 file. HF's TF classes create every variable under the
    one Keras model name ('tf_bert_model/bert/...'); a Keras model's weights are named after
    their own layers, so their first name components differ (a nested model's layers too)."""
    if not path.is_file() or not kerash5.looks_like(path):
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


def _bundle_names(path: Path) -> dict[str, str | None]:
    """Each key's variable name (None: not a model weight) in the TF checkpoint at `path` (a
    prefix, its .index, or a directory with a `checkpoint` state file); {} if there is none."""
    if not tensorbundle.looks_like(path):
        return {}
    try:
        return tensorbundle.variable_names(tensorbundle.read(path))
    except IrconvError:
        return {}          # the tf1 importer reports what is wrong with it


def _keras_bundle_detect(path: Path) -> bool:
    """A TF checkpoint whose variables are mostly placed by some family's "keras" view. Both
    importers read TF checkpoints; the names decide: an HF TF model saved so is named
    'tf_bert_model/bert/...' and the original BERT release 'bert/...', which no Keras view
    places, so those stay the tf1 importer's."""
    names = [n for n in _bundle_names(path).values() if n]
    if not names:
        return False            # no TF checkpoint here (or no weight in it): no family to score
    best = max(fit_scores(names, "keras").values(), default=0)
    return best > 0 and best * 2 >= len(names)


def _keras_bundle_read(path: Path) -> list[Tensor]:
    bundle = tensorbundle.read(path)
    names = tensorbundle.variable_names(bundle)
    return [t.with_spec(name=names[t.name]) for t in bundle.tensors if names[t.name]]


def _keras_bundle_skipped(path: Path) -> list[str]:
    return [key for key, name in tensorbundle.variable_names(tensorbundle.read(path)).items() if name is None]


KERAS_TF_CHECKPOINT = Container("tf-checkpoint", _keras_bundle_detect, _keras_bundle_read, _keras_bundle_skipped)


def _keras3_h5_detect(path: Path) -> bool:
    """Keras 3's own suffix (even when damaged, so the error says what is wrong), or any HDF5
    file laid out as Keras 3 writes it. Checked after the Keras 2 h5, which has `layer_names`."""
    return path.is_file() and (path.name.endswith(".weights.h5") or keras3.is_weights_h5(path))


def _keras3_archive_detect(path: Path) -> bool:
    return path.is_file() and (path.suffix == ".keras" or keras3.is_archive(path))


def _weights(contents: keras3.Keras3Contents) -> list[Tensor]:
    return [w.tensor for w in contents.weights]


KERAS3_H5 = Container("keras3-weights-h5", _keras3_h5_detect,
                      lambda path: _weights(keras3.read_weights_h5(path)),
                      lambda path: keras3.read_weights_h5(path).skipped)
KERAS3_ARCHIVE = Container("keras3-archive", _keras3_archive_detect,
                           lambda path: _weights(keras3.read_archive(path)),
                           lambda path: keras3.read_archive(path).skipped)

# In detection order.
CONTAINERS: list[Container] = [KERAS2_H5, KERAS_TF_CHECKPOINT, KERAS3_H5, KERAS3_ARCHIVE]


def refuse_foreign_layers(family_view, raw: list[Tensor], where: str) -> None:
    """Name the Keras layers none of whose weights the view places (a head added on top of an
    applications model): the per-tensor mapping error would list their weights and blame the
    variant instead."""
    prefix = family_view.detect_prefix(t.name for t in raw)
    layer = [t.name.split("/", 1)[0] for t in raw]
    known = {lay for lay, t in zip(layer, raw)
             if family_view.canonical_name(t.name, prefix) or family_view.is_ignored(t.name)}
    foreign = Counter(lay for lay in layer if lay not in known)
    if foreign:
        listed = ", ".join(f"{lay!r} ({n} weight{'s' * (n > 1)})" for lay, n in foreign.items())
        raise MappingError(f"Keras layer(s) that the {family_view.family.name} model does not have: {listed}; "
                           "save the weights without them, or name another family with --model", path=where)


# The weights file of the model directory irconv's keras exporter writes (config.json beside
# it), which tf2 also writes for a family with only Keras names: that directory reads back.
DIRECTORY_WEIGHTS = "model.h5"


def weights_in(path: Path) -> Path:
    """`path`, or the model.h5 in it when `path` is such a model directory."""
    return path / DIRECTORY_WEIGHTS if path.is_dir() and (path / DIRECTORY_WEIGHTS).is_file() else path


def container_of(path: Path) -> Container | None:
    return next((c for c in CONTAINERS if c.detect(path)), None)


class KerasImporter(Importer):
    name = "keras"
    description = ("Keras model weights: save_weights('x.h5') / save('x.h5') (Keras 2 / tf-keras h5), "
                   "save_weights('dir/prefix') (TF checkpoint), Keras 3 save_weights('x.weights.h5') "
                   "/ save('x.keras')")

    def detect(self, path: Path) -> bool:
        return container_of(weights_in(path)) is not None

    def raw(self, path):
        path = weights_in(Path(path))
        container = container_of(path)
        if container is None:
            raise FormatError("not a Keras weights file this version reads", path=str(path))
        return container.read(Path(path))

    def load(self, path, *, model=None, view=None, config=None) -> Checkpoint:
        path = weights_in(Path(path))
        if not Path(f"{path}{tensorbundle.INDEX_SUFFIX}").is_file():
            require_exists(path)        # a TF checkpoint prefix names no file itself
        container = container_of(path)
        if container is None and path.is_file() and kerash5.looks_like(path):
            kerash5.read(path)      # an HDF5 file the detection could not read: say why
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
        # A Keras TF checkpoint prefix names no file; its directory is still the model's.
        config = sibling_config(path if path.exists() else path.parent, config, model)
        family = resolve_family(model, config, raw, view, str(path))
        refuse_foreign_layers(family.view(view), raw, str(path))
        ckpt = family.view(view).to_canonical(raw, config, str(path))
        ckpt.source.update({"format": self.name, "container": container.name, "files": [path.name]})
        ckpt.source["skipped"] = ckpt.source.get("skipped", []) + container.skipped(path)
        return ckpt
