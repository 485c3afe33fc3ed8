"""EfficientNet B0..B7 (HF EfficientNetModel / EfficientNetForImageClassification, and the
tf_keras.applications.EfficientNetB0..B7 weight names).

Keras names a block `block{stage}{letter}` (block2b = stage 2, second repeat) while HF numbers
blocks flatly (encoder.blocks.{n}), and which stage a flat index falls in depends on the
variant's depth (B0's block 3 is block3a, B7's is block2a). The first stage has no expansion
conv (expand_ratio 1), so whether a flat index has `expansion.*` depends on the variant too.
Engine templates repeat over one count per field and cannot say "keras name = f(stage,
letter), pt name = flat index"; so `block_table(config)` computes that table from the config
(per-stage repeats = ceil(depth_coefficient * num_block_repeats), as both Keras and HF do) and
the family's blocks are built per config from it: every row is still an ordinary engine
Block with declared axes. An engine feature that would make this declarative: a repeat over a
*derived* index sequence (a config -> [(index fields)] function, e.g. (n, stage, letter)),
with per-index param presence (a predicate on the indices, for `expansion`).
"""
from __future__ import annotations

import math
from string import ascii_lowercase

import numpy as np

from ..ir.errors import MappingError
from ..ir.layout import CONV2D_PT, CONV2D_TF, DEPTHWISE2D_PT, DEPTHWISE2D_TF
from .engine import INFERRED, Block, ConfigFamily, Family, param

# Conv kernels: PyTorch Conv2d (out, in, h, w), Keras Conv2D (h, w, in, out). Depthwise:
# PyTorch (in*mult, 1, h, w), Keras DepthwiseConv2D (h, w, in, mult); EfficientNet's
# multiplier is 1, which makes it a pure permutation with unit axes.
PT_CONV, KERAS_CONV = CONV2D_PT, CONV2D_TF
PT_DEPTHWISE, KERAS_DEPTHWISE = DEPTHWISE2D_PT, DEPTHWISE2D_TF

# The B0 baseline (tf_keras DEFAULT_BLOCKS_ARGS = HF EfficientNetConfig defaults) and the
# per-variant scaling: (width_coefficient, depth_coefficient, resolution, dropout_rate).
BASE = dict(kernel_sizes=[3, 3, 5, 3, 5, 5, 3], in_channels=[32, 16, 24, 40, 80, 112, 192],
            out_channels=[16, 24, 40, 80, 112, 192, 320], strides=[1, 2, 2, 2, 1, 2, 1],
            num_block_repeats=[1, 2, 2, 3, 3, 4, 1], expand_ratios=[1, 6, 6, 6, 6, 6, 6])
VARIANTS = {"b0": (1.0, 1.0, 224, 0.2), "b1": (1.0, 1.1, 240, 0.2), "b2": (1.1, 1.2, 260, 0.3),
            "b3": (1.2, 1.4, 300, 0.3), "b4": (1.4, 1.8, 380, 0.4), "b5": (1.6, 2.2, 456, 0.4),
            "b6": (1.8, 2.6, 528, 0.5), "b7": (2.0, 3.1, 600, 0.5)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Keras' and HF's round_filters: scale by width, round to the divisor, never drop >10%."""
    channels *= width
    new = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return int(new + divisor) if new < 0.9 * channels else int(new)


def stage_repeats(config: dict) -> list[int]:
    return [int(math.ceil(config["depth_coefficient"] * n)) for n in config["num_block_repeats"]]


def block_table(config: dict) -> list[tuple[int, str, bool]]:
    """(flat HF index, Keras block name, has an expansion conv) for every block, in order."""
    rows = []
    for stage, repeats in enumerate(stage_repeats(config)):
        for j in range(repeats):
            rows.append((len(rows), f"block{stage + 1}{ascii_lowercase[j]}", config["expand_ratios"][stage] != 1))
    return rows


def depthwise_padding(config: dict, image_size: int) -> list[int]:
    """Blocks whose stride-2 depthwise conv sees an odd input size: Keras' correct_pad pads those
    symmetrically, HF pads them so only when listed here (its default pads (k//2-1, k//2))."""
    size, out = math.ceil(image_size / 2), []          # after the stride-2 stem
    n = 0
    for stage, repeats in enumerate(stage_repeats(config)):
        for j in range(repeats):
            if j == 0 and config["strides"][stage] == 2:
                if size % 2:
                    out.append(n)
                size = math.ceil(size / 2)
            n += 1
    return out


def with_padding(config: dict) -> dict:
    """`config` with depthwise_padding recomputed from its image_size (after --set image_size)."""
    if not isinstance(config.get("image_size"), int) or isinstance(config.get("image_size"), bool):
        return config
    return dict(config, depthwise_padding=depthwise_padding(dict(BASE, **config), config["image_size"]))


def variant_config(variant: str, image_size: int | None = None) -> dict:
    """HF EfficientNetConfig fields of a Keras EfficientNetB{0..7}."""
    width, depth, resolution, dropout = VARIANTS[variant]
    config = dict(BASE, model_type="efficientnet", width_coefficient=width, depth_coefficient=depth,
                  image_size=image_size or resolution, dropout_rate=dropout, depth_divisor=8,
                  hidden_dim=round_filters(1280, width), num_hidden_layers=sum(BASE["num_block_repeats"]) * 4)
    config["depthwise_padding"] = depthwise_padding(config, config["image_size"])
    return config


def conv(name: str, pt: str, keras: str, bias: bool = False) -> list:
    out = param(f"{name}.weight", PT_CONV, pt=f"{pt}.weight", keras=(f"{keras}/kernel", KERAS_CONV))
    if bias:
        out += param(f"{name}.bias", ("out",), pt=f"{pt}.bias", keras=f"{keras}/bias")
    return out


def depthwise(name: str, pt: str, keras: str) -> list:
    return param(f"{name}.weight", PT_DEPTHWISE, pt=f"{pt}.weight", keras=(f"{keras}/depthwise_kernel", KERAS_DEPTHWISE))


def batchnorm(name: str, pt: str, keras: str) -> list:
    """BatchNorm: PyTorch weight/bias/running_mean/running_var, Keras gamma/beta/moving_*.
    PyTorch also stores a num_batches_tracked step counter that Keras has no variable for: a
    derived buffer (0, as a fresh module has; only momentum=None training reads it), dropped
    on export to Keras and written for PyTorch, whose loader reports it missing otherwise."""
    leaves = [("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
              ("running_var", "moving_variance")]
    return [p for pt_leaf, k_leaf in leaves
            for p in param(f"{name}.{pt_leaf}", ("hidden",), pt=f"{pt}.{pt_leaf}", keras=f"{keras}/{k_leaf}")
            ] + param(f"{name}.num_batches_tracked", (), pt=f"{pt}.num_batches_tracked",
                      derive=lambda config: np.zeros((), np.int64))


def mbconv(n: int, kname: str, expands: bool) -> list[Block]:
    """One MBConv block (the same params in both views; Keras names carry the block name)."""
    params = [depthwise("dw", "depthwise_conv.depthwise_conv", f"{kname}_dwconv"),
              batchnorm("dw_bn", "depthwise_conv.depthwise_norm", f"{kname}_bn"),
              conv("se_reduce", "squeeze_excite.reduce", f"{kname}_se_reduce", bias=True),
              conv("se_expand", "squeeze_excite.expand", f"{kname}_se_expand", bias=True),
              conv("project", "projection.project_conv", f"{kname}_project_conv"),
              batchnorm("project_bn", "projection.project_bn", f"{kname}_project_bn")]
    if expands:
        params = [conv("expand", "expansion.expand_conv", f"{kname}_expand_conv"),
                  batchnorm("expand_bn", "expansion.expand_bn", f"{kname}_expand_bn")] + params
    return [Block.of(f"encoder.blocks.{n}", params, pt=f"encoder.blocks.{n}", keras="")]


def _channels(config: dict) -> int:
    return config.get("num_channels", 3)


# Keras' in-graph Normalization layer (the model's first layer with weights): per-channel
# mean/variance statistics and the count of samples adapt() saw. HF normalizes in its image
# processor, so PyTorch has no place for them: a pt import derives a fresh layer's values,
# a Keras file keeps its own (ALIGN and imagenet files hold real statistics there), a pt
# export drops them. tf_keras loads an h5 by layer order, so a Keras export needs this layer.
NORMALIZATION = Block.of("normalization", [
    param("mean", ("channels",), keras="normalization/mean",
          derive=lambda config: np.zeros(_channels(config), np.float32)),
    param("variance", ("channels",), keras="normalization/variance",
          derive=lambda config: np.ones(_channels(config), np.float32)),
    param("count", (), keras="normalization/count", derive=lambda config: np.zeros((), np.int64)),
], pt="", keras="")
STEM = Block.of("embeddings", [conv("conv", "convolution", "stem_conv"),
                               batchnorm("bn", "batchnorm", "stem_bn")], pt="embeddings", keras="")
TOP = Block.of("encoder", [conv("top_conv", "top_conv", "top_conv"),
                           batchnorm("top_bn", "top_bn", "top_bn")], pt="encoder", keras="")
CLASSIFIER = Block.of("classifier", [
    param("weight", ("out", "in"), pt="weight", keras=("predictions/kernel", ("in", "out"))),
    param("bias", ("out",), pt="bias", keras="predictions/bias"),
], role="classifier", base=False, pt="classifier", keras="")

IGNORE = {
          # Keras' in-graph preprocessing that is not the model's own NORMALIZATION layer
          # (which the keras view places first, so this never skips it): a uniquified
          # `normalization_N` of a re-built model and the weightless Rescaling layers.
          "keras": (r"^normalization(_\d+)?/", r"^rescaling(_\d+)?/")}


def _with_labels(config: dict, specs) -> dict:
    """The variant's config, plus the label count a classifier's shape gives (HF sizes its
    classifier from id2label)."""
    config = dict(config)
    if "classifier.weight" in specs:
        n = specs["classifier.weight"].shape[0]
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(n)}
    return config


def _check_config(config: dict) -> None:
    """The fields the block table is built from, checked before it is: a config cannot make
    irconv lay out more blocks than Keras can name (26 a stage) or read fields of the wrong type."""
    lists = ("kernel_sizes", "in_channels", "out_channels", "strides", "num_block_repeats", "expand_ratios")
    for key in lists:
        value = config[key]
        if not (isinstance(value, list) and len(value) == len(BASE[key])
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
            raise MappingError(f"config.json {key}={value!r} is not a list of {len(BASE[key])} non-negative integers")
    depth = config.get("depth_coefficient")
    if isinstance(depth, bool) or not isinstance(depth, (int, float)) or not 0 < depth <= 16:
        raise MappingError(f"config.json depth_coefficient={depth!r} is not a positive number (B7's is 3.1)")
    deepest = max(stage_repeats(config))
    if deepest > len(ascii_lowercase):
        raise MappingError(f"config.json gives a stage {deepest} blocks; Keras names at most "
                           f"{len(ascii_lowercase)} (block1a..block1z)")


def _concrete(config: dict) -> Family:
    blocks = [NORMALIZATION, STEM] + [b for row in block_table(config) for b in mbconv(*row)] + [TOP, CLASSIFIER]
    return Family("efficientnet", ("efficientnet",), ("pt", "keras"), tuple(blocks),
                  base_prefix={"pt": "efficientnet."},
                  architectures={"EfficientNetModel": frozenset(),
                                 "EfficientNetForImageClassification": frozenset({"classifier"})},
                  infer_config=lambda specs, counts: (_with_labels(config, specs), []),
                  ignore=IGNORE, arch_prefixes={"pt": {"EfficientNetModel": ""}})


class EfficientNetFamily(ConfigFamily):
    """The registered family: its static blocks are B0's (for listings); views are per config."""

    def build(self, config: dict) -> Family:
        config = dict(BASE, **config)
        _check_config(config)
        return _concrete(config)

    def candidates(self):
        return [(f"EfficientNet-{v.upper()}", variant_config(v)) for v in VARIANTS]

    def check(self, ckpt, config):
        top = ckpt.tensors.get("encoder.top_conv.weight")
        if top is None or top.shape[0] != config["hidden_dim"]:
            return (f"top_conv has {top.shape[0] if top is not None else '?'} channels, "
                    f"expected {config['hidden_dim']}")
        return None

    def inferred_note(self, label, config):
        return (f"no config: {label} from block counts and widths, image_size {config['image_size']} "
                "(pass --config to set it; it decides depthwise_padding)")


_B0 = _concrete(variant_config("b0"))
FAMILIES = [EfficientNetFamily(_B0.name, _B0.model_types, _B0.declared_views, _B0.blocks, _B0.base_prefix,
                               _B0.architectures, _B0.infer_config, _B0.ignore, _B0.arch_prefixes,
                               description="EfficientNet B0-B7 (HF EfficientNet, tf_keras.applications)",
                               # The image size decides the depthwise padding; no tensor holds it.
                               defaults={"image_size": INFERRED, "hidden_act": "swish", "batch_norm_eps": 1e-3},
                               complete=with_padding)]
