"""What irconv is measured against, each run as its own process by bench/run.py.

    python bench/baselines.py naive SRC_DIR OUT.h5     every safetensors file of SRC_DIR
                                                        loaded whole (safetensors.numpy) and
                                                        written to one h5 with h5py, no relayout
    python bench/baselines.py transformers SRC_DIR OUT  TFBertForPreTraining.from_pretrained(
                                                        from_pt=True) + save_pretrained
    python bench/baselines.py efficientnet-b7 - OUT     a randomly initialised HF EfficientNet-B7
                                                        (the source of the keras target's case)

Both need the test extras (safetensors; torch + tensorflow + transformers); run.py skips a
baseline whose imports fail and says so.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def naive(src: str, out: str) -> None:
    import h5py
    from safetensors.numpy import load_file
    with h5py.File(out, "w") as f:
        for path in sorted(Path(src).glob("*.safetensors")):
            for name, array in load_file(path).items():
                f.create_dataset(name, data=array)


def transformers_tf2(src: str, out: str) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from transformers import TFBertForPreTraining
    TFBertForPreTraining.from_pretrained(src, from_pt=True).save_pretrained(out)


def efficientnet_b7(_: str, out: str) -> None:
    import torch
    from transformers import EfficientNetConfig, EfficientNetForImageClassification
    torch.manual_seed(0)
    config = EfficientNetConfig(width_coefficient=2.0, depth_coefficient=3.1, image_size=600, dropout_rate=0.5)
    EfficientNetForImageClassification(config).save_pretrained(out)


def available(kind: str) -> str | None:
    """None if the baseline can run here, else why not."""
    modules = {"naive": ("h5py", "safetensors"), "transformers": ("torch", "tensorflow", "transformers"),
               "efficientnet-b7": ("torch", "transformers")}[kind]
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return f"needs {', '.join(missing)} (pip install -e '.[test]')" if missing else None


if __name__ == "__main__":
    kind, src, out = sys.argv[1:4]
    {"naive": naive, "transformers": transformers_tf2, "efficientnet-b7": efficientnet_b7}[kind](src, out)
