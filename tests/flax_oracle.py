"""Oracle helpers for the Flax tests: transformers' Flax classes (jax) load irconv's files, run,
and save their own; torch is the reference. Imported by tests/test_flax*.py only."""
from __future__ import annotations

import logging
import os

import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def flax_from_pretrained(cls_name: str, directory, **kwargs):
    """(model, warnings transformers logged while loading it)."""
    import transformers
    from transformers.utils import logging as hf_logging
    capture = _Capture()
    logger = hf_logging.get_logger("transformers")
    logger.addHandler(capture)
    try:
        model = getattr(transformers, "Flax" + cls_name).from_pretrained(str(directory), **kwargs)
    finally:
        logger.removeHandler(capture)
    return model, capture.messages


LOAD_PROBLEMS = ("were not used", "newly initialized", "not initialized", "mismatch", "missing")


def flax_loads_cleanly(cls_name: str, directory, **kwargs):
    model, messages = flax_from_pretrained(cls_name, directory, **kwargs)
    bad = [m for m in messages if any(p in m for p in LOAD_PROBLEMS)]
    assert not bad, bad
    return model


def flat_params(params, prefix="") -> dict[str, np.ndarray]:
    out = {}
    for k, v in params.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict) or hasattr(v, "items"):
            out.update(flat_params(v, name))
        else:
            out[name] = np.asarray(v)
    return out


def assert_same_params(ref, got):
    ref, got = flat_params(ref), flat_params(got)
    assert sorted(ref) == sorted(got), (sorted(set(ref) - set(got)), sorted(set(got) - set(ref)))
    for k in ref:
        assert ref[k].dtype == got[k].dtype and ref[k].shape == got[k].shape, (k, ref[k].shape, got[k].shape)
        assert ref[k].tobytes() == got[k].tobytes(), k


def run_flax(model, inputs) -> dict[str, np.ndarray]:
    out = model(**inputs)
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items() if hasattr(v, "shape")}
