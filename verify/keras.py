"""The Keras loader: a Keras EfficientNet directory (config.json + model.h5) run as
tf_keras.applications.EfficientNetB0..B7."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..importers.base import read_json
from ..ir.errors import FormatError, IrconvError, UsageError
from .base import LOADERS, LoadedModel, Loader, _architecture


def _keras():
    """tf_keras, or a Keras 2 `keras` where tf_keras is absent (as _import_frameworks allows)."""
    try:
        import tf_keras
        return tf_keras
    except ImportError:
        import keras
        return keras


def _is_keras_efficientnet(path: Path) -> bool:
    if not (path.is_dir() and (path / "config.json").is_file() and (path / "model.h5").is_file()):
        return False
    try:
        return read_json(path / "config.json").get("model_type") == "efficientnet"
    except IrconvError:
        return False


def _keras_efficientnet_variant(config: dict, path: Path) -> str:
    """B0..B7 from the config's width and depth coefficients; tf_keras.applications builds only
    those, from its fixed block arguments (= HF EfficientNetConfig's defaults)."""
    from ..models.efficientnet import BASE, VARIANTS
    try:
        width, depth = float(config["width_coefficient"]), float(config["depth_coefficient"])
    except (KeyError, TypeError, ValueError):
        raise UsageError("config.json needs numeric width_coefficient and depth_coefficient to pick "
                         "a tf_keras EfficientNetB0..B7", path=str(path)) from None
    fixed = dict(BASE, depth_divisor=8, hidden_act="swish")
    other = sorted(k for k, v in fixed.items() if k in config and config[k] != v)
    if other:
        raise UsageError(f"config.json's {', '.join(other)} differ from EfficientNetB0..B7's, which "
                         "is all tf_keras.applications builds", path=str(path))
    for variant, (w, d, _, _) in VARIANTS.items():
        if abs(w - width) < 1e-6 and abs(d - depth) < 1e-6:
            return variant.upper()
    raise UsageError(f"width_coefficient {width:g} / depth_coefficient {depth:g} is no EfficientNetB0..B7 "
                     "that tf_keras.applications builds", path=str(path))


def load_keras_efficientnet(path: Path, config: dict) -> LoadedModel:
    """tf_keras.applications.EfficientNetB{n}(weights=None) of the config's variant, input size
    and head (include_top for EfficientNetForImageClassification, with logits), then
    load_weights(model.h5), which matches layers by order as for any Keras h5 weights file.

    Inputs are HF's `pixel_values` (NCHW, the image processor's output). Keras takes NHWC
    pixels in 0..255 and rescales (1/255) and normalizes (its Normalization layer's mean and
    variance) in-graph, so it is fed that preprocessing inverted, 255 * (pixel_values * std +
    mean): both models' stems see the same tensor. A file converted from PyTorch holds mean 0 /
    variance 1 there (the identity, so Keras gets pixel_values * 255); a Keras-born file may hold
    real statistics, which HF keeps in its image processor instead: the weights are still
    compared like for like, and a note says the preprocessing itself is not.

    Outputs are named as HF's: last_hidden_state (NHWC top_activation, as NCHW) and
    pooler_output (B, C) of EfficientNetModel, or logits of ...ForImageClassification."""
    import tensorflow as tf
    keras = _keras()
    variant = _keras_efficientnet_variant(config, path)
    arch = _architecture(config, path)
    if arch not in ("EfficientNetModel", "EfficientNetForImageClassification"):
        raise UsageError(f"architectures[0] is {arch!r}: a tf_keras EfficientNet is EfficientNetModel "
                         "(include_top=False) or EfficientNetForImageClassification (include_top=True)",
                         path=str(path))
    top = arch == "EfficientNetForImageClassification"
    try:
        size, channels = int(config["image_size"]), int(config.get("num_channels", 3))
        classes = len(config["id2label"]) if top else 1000
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"config.json needs image_size (and id2label for {arch}) to build "
                         f"EfficientNet{variant}", path=str(path)) from None
    build = getattr(keras.applications, f"EfficientNet{variant}")
    model = build(weights=None, include_top=top, classes=classes, classifier_activation=None,
                  pooling=None if top else "avg", input_shape=(size, size, channels))
    try:
        model.load_weights(str(path / "model.h5"))
    except (ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FormatError(f"tf_keras cannot load this into EfficientNet{variant} "
                          f"(include_top={top}, input {size}x{size}x{channels}): {first}",
                          path=str(path / "model.h5")) from None

    norm = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))   # always built
    mean = norm.adapt_mean.numpy().astype(np.float64)
    std = np.maximum(np.sqrt(norm.adapt_variance.numpy().astype(np.float64)), keras.backend.epsilon())   # as call()
    notes = []
    if np.any(mean != 0) or np.any(std != 1):
        notes.append(f"model.h5's Normalization layer holds mean {np.round(mean, 4).tolist()} / std "
                     f"{np.round(std, 4).tolist()}, which HF keeps in its image processor: Keras is fed "
                     "255 * (pixel_values * std + mean), so both models see the same normalized pixels "
                     "(the weights are compared; that preprocessing is not)")
    names = ["logits"] if top else ["last_hidden_state", "pooler_output"]
    if not top:
        model = keras.Model(model.inputs, [model.get_layer("top_activation").output, model.output])

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels = inputs["pixel_values"].astype(np.float64).transpose(0, 2, 3, 1)   # NCHW -> NHWC
        raw = (255.0 * (pixels * std + mean)).astype(np.float32)
        out = model(tf.constant(raw), training=False)
        out = [t.numpy().astype(np.float64) for t in (out if isinstance(out, (list, tuple)) else [out])]
        result = dict(zip(names, out))
        if "last_hidden_state" in result:
            result["last_hidden_state"] = result["last_hidden_state"].transpose(0, 3, 1, 2)
        return result

    return LoadedModel(f"keras EfficientNet{variant} (tf_keras.applications, include_top={top})", config,
                       frozenset({"pixel_values"}), run, notes=notes)


LOADERS.add("keras", Loader(
    "keras", "Keras EfficientNet directory: config.json (model_type efficientnet) + model.h5 "
    "(tf_keras.applications weights)",
    _is_keras_efficientnet, ("tensorflow", "tf_keras"), load_keras_efficientnet))


