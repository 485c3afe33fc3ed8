"""Loader for transformers' Flax classes: an HF Flax directory (config.json + flax_model.msgpack
or its sharded index), loaded by 'Flax' + architectures[0] from_pretrained and run on CPU."""
from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path

import numpy as np

from .base import LOADERS, LoadedModel, Loader, _architecture, _flatten, _hf_dir_with, _transformers_class

# What transformers' Flax from_pretrained logs (it returns no loading report) when a stored
# weight goes unused or one the model has is missing, newly initialised, or of another shape.
LOAD_PROBLEMS = ("were not used", "newly initialized", "not initialized", "mismatch")


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def load_with_report(cls, path: Path):
    """(model, transformers' loading warnings), kept off the screen."""
    from transformers.utils import logging as hf_logging
    capture, level = _Capture(), hf_logging.get_verbosity()
    logger = hf_logging.get_logger("transformers")
    hf_logging.set_verbosity_warning()
    hf_logging.disable_default_handler()
    logger.addHandler(capture)
    try:
        model = cls.from_pretrained(str(path), local_files_only=True)
    finally:
        logger.removeHandler(capture)
        hf_logging.enable_default_handler()
        hf_logging.set_verbosity(level)
    return model, capture.messages


def load_hf_flax(path: Path, config: dict) -> LoadedModel:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    cls = _transformers_class("Flax" + _architecture(config, path), path)
    model, messages = load_with_report(cls, path)

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = model(**inputs, return_dict=True)
        return _flatten(out, lambda v: isinstance(v, jax.Array), lambda v: np.asarray(v, dtype=np.float64))

    problems = [m.splitlines()[0] for m in messages if any(p in m for p in LOAD_PROBLEMS)]
    return LoadedModel(f"flax {cls.__name__}", config, frozenset(inspect.signature(model.__call__).parameters),
                       run, problems)


LOADERS.add("flax", Loader(
    "flax", "HF Flax directory: config.json + flax_model.msgpack (or flax_model.msgpack.index.json)",
    _hf_dir_with("flax_model.msgpack", "flax_model.msgpack.index.json"),
    ("jax", "flax", "transformers"), load_hf_flax))
