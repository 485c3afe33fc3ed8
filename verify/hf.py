"""Loaders for transformers' classes: HF PyTorch and TF2 directories (from_pretrained), and a
TF1 BERT checkpoint through transformers' own load_tf_weights_in_bert."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np

from .base import LOADERS, LoadedModel, Loader, _architecture, _flatten, _hf_dir_with, _transformers_class, _weight_problems


def load_hf_pt(path: Path, config: dict) -> LoadedModel:
    """transformers PyTorch class named by architectures[0], from_pretrained, eval mode."""
    import torch
    cls = _transformers_class(_architecture(config, path), path)
    model, info = cls.from_pretrained(str(path), output_loading_info=True, local_files_only=True)
    notes, lacks = [], frozenset()
    missing = info.get("missing_keys") or ()
    if missing and all(_POOLER.search(k) for k in missing) and \
            "add_pooling_layer" in inspect.signature(cls.__init__).parameters:
        # A model saved without its pooler (RobertaModel(add_pooling_layer=False)): the class
        # builds one by default, which the file cannot fill.
        model, info = cls.from_pretrained(str(path), output_loading_info=True, local_files_only=True,
                                          add_pooling_layer=False)
        notes.append("the file has no pooler weights: loaded without a pooler (add_pooling_layer=False)")
        lacks = frozenset({"pooler_output"})
    model.eval()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_dict=True)
        return _flatten(out, torch.is_tensor, lambda t: t.detach().cpu().to(torch.float64).numpy())

    return LoadedModel(f"pt {cls.__name__}", config, frozenset(inspect.signature(model.forward).parameters),
                       run, _weight_problems(info), notes, lacks)


_POOLER = re.compile(r"(^|\.)pooler\.")


# HF's h5 loader matches layers by name, and Keras numbers Dropout layers per process, so
# even a file transformers wrote itself reloads with e.g. 'dropout_49' listed: it holds no
# weights, so nothing was left uninitialised.
_KERAS_DROPOUT = re.compile(r"(^|/)dropout(_\d+)?$")


def load_hf_tf(path: Path, config: dict) -> LoadedModel:
    """transformers TF2 class 'TF' + architectures[0], from_pretrained on tf_model.h5."""
    import tensorflow as tf
    cls = _transformers_class("TF" + _architecture(config, path), path)
    model, info = cls.from_pretrained(str(path), output_loading_info=True, local_files_only=True)

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = model(**{k: tf.constant(v) for k, v in inputs.items()}, training=False, return_dict=True)
        return _flatten(out, tf.is_tensor, lambda t: t.numpy().astype(np.float64))

    return LoadedModel(f"tf2 {cls.__name__}", config, frozenset(inspect.signature(model.call).parameters),
                       run, _weight_problems(info, ignore=lambda k: bool(_KERAS_DROPOUT.search(k))))


LOADERS.add("pt", Loader(
    "pt", "HF PyTorch directory: config.json + model.safetensors or pytorch_model.bin (or .index.json)",
    _hf_dir_with("model.safetensors", "model.safetensors.index.json",
                 "pytorch_model.bin", "pytorch_model.bin.index.json"),
    ("torch", "transformers"), load_hf_pt))
LOADERS.add("tf2", Loader(
    "tf2", "HF TF2 directory: config.json + tf_model.h5 (or tf_model.h5.index.json)",
    _hf_dir_with("tf_model.h5", "tf_model.h5.index.json"),
    ("tensorflow", "tf_keras", "transformers"), load_hf_tf))


def _tf1_config(path: Path) -> dict:
    """The canonical (HF) config irconv reads from bert_config.json, with the class its heads name."""
    from .. import load
    return load(path, "tf1").config


def load_tf1_bert(path: Path, config: dict) -> LoadedModel:
    """transformers' own TF1 BERT loader (load_tf_weights_in_bert) into the PyTorch class."""
    import torch
    import transformers
    from ..formats.tensorbundle import resolve_prefix
    cls = _transformers_class(_architecture(config, path), path)
    model = cls(transformers.BertConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    transformers.load_tf_weights_in_bert(model, model.config, resolve_prefix(path))
    model.eval()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_dict=True)
        return _flatten(out, torch.is_tensor, lambda t: t.detach().cpu().to(torch.float64).numpy())

    return LoadedModel(f"tf1 {cls.__name__} (load_tf_weights_in_bert)", config,
                       frozenset(inspect.signature(model.forward).parameters), run)


LOADERS.add("tf1", Loader(
    "tf1", "TF1 BERT checkpoint directory: bert_config.json + bert_model.ckpt.index (or another prefix)",
    lambda p: p.is_dir() and (p / "bert_config.json").is_file() and any(p.glob("*.index")),
    ("torch", "tensorflow", "transformers"), load_tf1_bert, _tf1_config))

