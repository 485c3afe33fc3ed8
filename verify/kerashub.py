"""The keras-hub loader: a preset directory run by keras_hub's `Backbone.from_preset`, on the
installed Keras 3 backend (KERAS_BACKEND, else jax, torch or tensorflow, the first installed).

HF's inputs are given under keras-hub's names (input_ids -> token_ids, attention_mask ->
padding_mask, token_type_ids -> segment_ids) and the outputs named as HF's: last_hidden_state,
BERT's pooler_output, and a decoder's logits (the ReversibleEmbedding run in reverse, which
is what keras-hub's CausalLM computes). A classifier task's preset (task.json) is run as its
task, whose logits are its HF class's."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ..formats import kerashub as fmt
from ..ir.errors import MissingDependencyError
from .base import INSTALL_HINT, LOADERS, LoadedModel, Loader

NAMES = {"input_ids": "token_ids", "attention_mask": "padding_mask", "token_type_ids": "segment_ids"}


def _backend() -> None:
    if "KERAS_BACKEND" not in os.environ:
        found = next((b for b in ("jax", "torch", "tensorflow") if importlib.util.find_spec(b)), None)
        if found:
            os.environ["KERAS_BACKEND"] = found


def read_config(path: Path) -> dict:
    """The HF config the preset's Backbone arguments map to (importers/kerashub.py)."""
    from ..importers.kerashub import KerasHubImporter
    return KerasHubImporter().load(path).config


def load_kerashub(path: Path, config: dict) -> LoadedModel:
    if importlib.util.find_spec("keras_hub") is None:
        raise MissingDependencyError(f"verify needs keras-hub to run keras-hub presets; install the pinned "
                                     f"oracles with: {INSTALL_HINT}")
    _backend()
    import keras_hub
    classifier = None
    if (path / fmt.TASK_CONFIG).is_file() and (path / fmt.TASK_WEIGHTS).is_file():
        classifier = keras_hub.models.TextClassifier.from_preset(str(path))
    backbone = classifier.backbone if classifier is not None else keras_hub.models.Backbone.from_preset(str(path))
    bert = "segment_ids" in {i.name for i in backbone.inputs}
    accepts = frozenset({"input_ids", "attention_mask"} | ({"token_type_ids"} if bert else set()))

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        given = {NAMES[k]: v.astype("int32") for k, v in inputs.items() if k in NAMES}
        if bert:
            given.setdefault("segment_ids", np.zeros_like(given["token_ids"]))
        given.setdefault("padding_mask", np.ones_like(given["token_ids"]))
        if classifier is not None:
            return {"logits": np.asarray(classifier(given), np.float64)}
        out = backbone(given)
        if isinstance(out, dict):
            return {"last_hidden_state": np.asarray(out["sequence_output"], np.float64),
                    "pooler_output": np.asarray(out["pooled_output"], np.float64)}
        logits = backbone.token_embedding(out, reverse=True)
        return {"last_hidden_state": np.asarray(out, np.float64), "logits": np.asarray(logits, np.float64)}

    return LoadedModel(f"kerashub {type(backbone).__name__} ({os.environ.get('KERAS_BACKEND', 'keras default')})",
                       config, accepts, run)


LOADERS.add("kerashub", Loader(
    "kerashub", "keras-hub preset directory: config.json (a keras_hub Backbone) + metadata.json + model.weights.h5",
    fmt.looks_like, (), load_kerashub, read_config))
