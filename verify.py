"""`irconv verify SRC OUT`: run both checkpoints in their real frameworks and compare outputs.

The transformers conversion scripts' --compare_with_pt_model, for any pair of formats: each
side is loaded by the loader that recognises its directory, both get the same seeded random
inputs, and every output is compared by max absolute difference.

This is the one place outside the tests where torch, tensorflow and transformers are used,
and only inside the functions below, so that `import irconv.verify` (and `irconv.cli`) stays
framework-free. Adding a format is one loader function plus one `LOADERS.add` line; adding an
input kind (pixel_values, decoder_input_ids, ...) is one entry in INPUTS.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .importers.base import read_json
from .ir.errors import FormatError, IrconvError, MissingDependencyError, UsageError
from .registry import Registry

INSTALL_HINT = "pip install 'irconv[test]'"

# import name -> pip name, for the missing-dependency message
PIP_NAMES = {"torch": "torch", "tensorflow": "tensorflow-cpu", "tf_keras": "tf-keras",
             "transformers": "transformers"}


@dataclass
class LoadedModel:
    """One side, ready to run: what a loader returns."""

    label: str                                   # e.g. "pt BertForMaskedLM"
    config: dict                                 # the HF config.json contents
    accepts: frozenset[str]                      # argument names of forward / call
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    problems: list[str] = field(default_factory=list)   # missing / unexpected / re-initialised weights
    notes: list[str] = field(default_factory=list)      # printed, but no failure (e.g. how inputs were adapted)


@dataclass(frozen=True)
class Loader:
    name: str
    description: str
    detect: Callable[[Path], bool]
    needs: tuple[str, ...]                       # import names, checked before anything is loaded
    load: Callable[[Path, dict], LoadedModel]
    # The HF config of a directory: config.json, unless the format keeps its own.
    read_config: Callable[[Path], dict] = lambda path: read_json(path / "config.json")


LOADERS: Registry[Loader] = Registry("verify loader")


# ---------------------------------------------------------------- inputs

BATCH, SEQ = 2, 7


def _vocab_ids(config: dict, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, config["vocab_size"], size=(BATCH, SEQ), dtype=np.int64)


def _attention_mask(config: dict, rng: np.random.Generator) -> np.ndarray:
    mask = np.ones((BATCH, SEQ), dtype=np.int64)
    mask[1, -1] = 0                              # one padded position, so masking is exercised
    return mask


def _token_type_ids(config: dict, rng: np.random.Generator) -> np.ndarray:
    types = config.get("type_vocab_size", 1)
    if types > 1:
        return rng.integers(0, types, size=(BATCH, SEQ), dtype=np.int64)
    return np.zeros((BATCH, SEQ), dtype=np.int64)


def _pixel_values(config: dict, rng: np.random.Generator) -> np.ndarray:
    """NCHW images in [0, 1], as HF's models take them (after the image processor)."""
    size = config["image_size"]
    return rng.uniform(0, 1, (BATCH, config.get("num_channels", 3), size, size)).astype(np.float32)


# Forward-argument name -> generator(config, rng). An entry is used when both sides accept
# that argument; each gets its own rng stream so adding an entry changes no other input.
INPUTS: dict[str, Callable[[dict, np.random.Generator], np.ndarray]] = {
    "input_ids": _vocab_ids,
    "attention_mask": _attention_mask,
    "token_type_ids": _token_type_ids,
    "pixel_values": _pixel_values,
}


def make_inputs(config: dict, accepts: frozenset[str] | set[str], seed: int = 0) -> dict[str, np.ndarray]:
    inputs = {}
    for name, make in INPUTS.items():
        if name not in accepts:
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        try:
            inputs[name] = make(config, rng)
        except KeyError as exc:
            raise UsageError(f"config.json has no {exc.args[0]!r}, needed to make {name!r}") from None
    if not inputs:
        raise UsageError(f"the models accept none of the inputs verify can make ({', '.join(INPUTS)})")
    return inputs


# ---------------------------------------------------------------- comparison


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if not a.size:
        return 0.0
    # NaN or inf in the same place on both sides is agreement, not an infinite difference.
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return float(np.max(np.where(same, 0.0, np.abs(a - b))))


@dataclass(frozen=True)
class Result:
    name: str
    shape: str
    diff: float | None                           # None: the shapes differ
    ok: bool


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], atol: float) -> list[Result]:
    """One Result per output named on both sides, in the order of `a`."""
    results = []
    for name in [n for n in a if n in b]:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            results.append(Result(name, f"{_shape(x)} vs {_shape(y)}", None, False))
            continue
        diff = max_abs_diff(x, y)
        results.append(Result(name, _shape(x), diff, diff <= atol))   # NaN is not ok
    return results


def _shape(x: np.ndarray) -> str:
    return "x".join(map(str, x.shape)) or "scalar"


def _flatten(output, is_tensor, to_numpy) -> dict[str, np.ndarray]:
    """Every tensor field of a ModelOutput by name; tuples (hidden_states) as name.0, name.1."""
    out = {}
    for key, value in output.items():
        if is_tensor(value):
            out[key] = to_numpy(value)
        elif isinstance(value, (tuple, list)):
            out.update({f"{key}.{i}": to_numpy(v) for i, v in enumerate(value) if is_tensor(v)})
    return out


# ---------------------------------------------------------------- frameworks


def _import_frameworks(needs: set[str], why: str) -> None:
    """Import what the loaders need, or say in one line what to install."""
    if "transformers" not in sys.modules:
        # transformers decides at import which backends exist; leaving the unneeded one out
        # saves seconds (and TF's C++ start-up noise on stderr) when both sides are PyTorch.
        if "tensorflow" not in needs:
            os.environ.setdefault("USE_TF", "0")
        if "torch" not in needs:
            os.environ.setdefault("USE_TORCH", "0")
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")    # transformers' TF classes are Keras 2
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-stable numbers run to run
    # Look before importing: importing tensorflow writes to stderr, which must not precede
    # a one-line error about torch.
    wanted = [m for m in ("torch", "tensorflow", "tf_keras", "transformers") if m in needs]
    if "tf_keras" in wanted and not _findable("tf_keras") and _keras_is_2():
        wanted.remove("tf_keras")
    missing = [m for m in wanted if not _findable(m)]
    if not missing:
        with _quiet_stderr():        # TensorFlow's C++ start-up lines are not the user's business
            for module in wanted:
                try:
                    importlib.import_module(module)
                except ImportError:
                    missing.append(module)
    if missing:
        names = [PIP_NAMES[m] for m in missing]
        raise MissingDependencyError(f"verify needs {', '.join(names)} to run {why}, and "
                                     f"{'it is' if len(names) == 1 else 'they are'} not installed; "
                                     f"install the pinned oracles with: {INSTALL_HINT}")
    if "transformers" in needs:              # a keras-only pair needs no transformers
        import transformers
        transformers.logging.set_verbosity_error()   # loading problems are reported by verify itself


class _quiet_stderr:
    """File descriptor 2 to /dev/null for a while (native libraries write there directly)."""

    def __enter__(self):
        try:
            sys.stderr.flush()
            self.saved = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except OSError:
            self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            os.dup2(self.saved, 2)
            os.close(self.saved)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):     # ValueError: in sys.modules without a spec
        return False


def _keras_is_2() -> bool:
    """A Keras 2 `keras` serves transformers' TF classes as well as tf_keras does. Asked of
    the package metadata: importing keras would start tensorflow."""
    try:
        return importlib.metadata.version("keras").split(".")[0] == "2"
    except importlib.metadata.PackageNotFoundError:
        return False


def _transformers_class(name: str, path: Path):
    import transformers
    try:
        return getattr(transformers, name)
    except (AttributeError, ImportError, RuntimeError):
        raise UsageError(f"transformers {transformers.__version__} has no class {name!r} "
                         "(named by config.json architectures[0])", path=str(path)) from None


def _architecture(config: dict, path: Path) -> str:
    archs = config.get("architectures")
    if not archs or not isinstance(archs[0], str):
        raise UsageError("config.json has no 'architectures' list naming the model class "
                         "(e.g. [\"BertForMaskedLM\"])", path=str(path))
    return archs[0]


def _weight_problems(info: dict, ignore: Callable[[str], bool] = lambda name: False) -> list[str]:
    problems = [f"weight missing from the file, newly initialised: {k}"
                for k in info.get("missing_keys", ()) if not ignore(k)]
    problems += [f"weight in the file not used by the model: {k}"
                 for k in info.get("unexpected_keys", ()) if not ignore(k)]
    for entry in info.get("mismatched_keys", ()):
        key, *shapes = entry if isinstance(entry, (tuple, list)) else (entry,)
        problems.append(f"weight of the wrong shape, newly initialised: {key}"
                        + (f" ({' vs '.join(map(str, shapes))})" if shapes else ""))
    problems += [f"load error: {msg}" for msg in info.get("error_msgs", ())]
    return problems


# ---------------------------------------------------------------- loaders


def _hf_dir_with(*weight_files: str) -> Callable[[Path], bool]:
    def detect(path: Path) -> bool:
        return (path.is_dir() and (path / "config.json").is_file()
                and any((path / name).is_file() for name in weight_files))
    return detect


def load_hf_pt(path: Path, config: dict) -> LoadedModel:
    """transformers PyTorch class named by architectures[0], from_pretrained, eval mode."""
    import torch
    cls = _transformers_class(_architecture(config, path), path)
    model, info = cls.from_pretrained(str(path), output_loading_info=True, local_files_only=True)
    model.eval()

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, return_dict=True)
        return _flatten(out, torch.is_tensor, lambda t: t.detach().cpu().to(torch.float64).numpy())

    return LoadedModel(f"pt {cls.__name__}", config, frozenset(inspect.signature(model.forward).parameters),
                       run, _weight_problems(info))


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
    from . import load
    return load(path, "tf1").config


def load_tf1_bert(path: Path, config: dict) -> LoadedModel:
    """transformers' own TF1 BERT loader (load_tf_weights_in_bert) into the PyTorch class."""
    import torch
    import transformers
    from .formats.tensorbundle import resolve_prefix
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
    from .models.efficientnet import BASE, VARIANTS
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


def detect_loaders(path: Path) -> list[Loader]:
    if not path.exists():
        raise IrconvError("no such file or directory", path=str(path))
    found = [loader for loader in LOADERS if loader.detect(path)]
    if not found:
        raise UsageError("verify cannot load this: expected one of "
                         + "; ".join(loader.description for loader in LOADERS), path=str(path))
    return found


def pick_loaders(src: Path, out: Path) -> tuple[Loader, Loader]:
    """The loader of each side. verify is a cross-check, so when a directory holds several
    formats (a hub snapshot with model.safetensors and tf_model.h5) it is read in one the
    other side is not read in."""
    a, b = detect_loaders(src), detect_loaders(out)
    pairs = [(x, y) for x in a for y in b]
    return next(((x, y) for x, y in pairs if x.name != y.name), pairs[0])


# ---------------------------------------------------------------- the verb


def same_model(src: Path, config_a: dict, out: Path, config_b: dict) -> None:
    """Refuse, before any framework is imported, two configs of different models: the same
    random inputs would not even fit both (another vocabulary), and a difference in what they
    compute would show as a conversion error that is none."""
    from .importers.config import config_differences
    from .models import family_for_model_type
    types = [c.get("model_type") for c in (config_a, config_b)]
    if types[0] != types[1]:
        raise UsageError(f"{src} and {out} are different models: model_type {types[0]!r} vs {types[1]!r}")
    family = family_for_model_type(types[0]) if isinstance(types[0], str) else None
    if family is not None:
        computing, _ = config_differences(family.name, config_a, config_b)
        if computing:
            raise UsageError(f"{src} and {out} describe different models: config {computing[0]}"
                             + (f" (and {len(computing) - 1} more)" if len(computing) > 1 else ""))


def _config_of(loader: "Loader", path: Path, given: dict | None) -> dict:
    """A side's own config; `given` (--config) for a side that has none."""
    try:
        return loader.read_config(path)
    except IrconvError:
        if given is None:
            raise
        return dict(given)


def _text_inputs(texts: list[str], src: Path, out: Path, accepts) -> dict[str, np.ndarray]:
    """--text: the sentences through the model's own tokenizer (SRC's, else OUT's)."""
    import transformers
    for where in (src, out):
        if where.is_dir() and any((where / n).is_file() for n in ("tokenizer.json", "vocab.txt",
                                                                    "tokenizer_config.json")):
            try:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(where))
            except Exception as exc:       # a tokenizer transformers cannot build: say which
                raise UsageError(f"--text: cannot load the tokenizer: {type(exc).__name__}: {exc}",
                                 path=str(where)) from None
            encoded = tokenizer(list(texts), padding=True, return_tensors="np")
            return {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in accepts}
    raise UsageError(f"--text needs a tokenizer (tokenizer.json or vocab.txt) in {src} or {out}")


def verify(src, out, *, atol: float = 1e-4, seed: int = 0, echo=print, config: dict | None = None,
           texts: list[str] | None = None) -> bool:
    """Load both sides, run the same inputs, print the comparison; True when all are within atol.
    `config`: the config of a side that has none; `texts`: real sentences, tokenized by the
    model's own tokenizer, instead of random ids."""
    src, out = Path(src), Path(out)
    loader_a, loader_b = pick_loaders(src, out)
    config_a, config_b = _config_of(loader_a, src, config), _config_of(loader_b, out, config)
    same_model(src, config_a, out, config_b)
    _import_frameworks(set(loader_a.needs) | set(loader_b.needs),
                       f"{loader_a.name} and {loader_b.name} models" if loader_a is not loader_b
                       else f"{loader_a.name} models")
    side_a, side_b = loader_a.load(src, config_a), loader_b.load(out, config_b)
    inputs = make_inputs(config_a, side_a.accepts & side_b.accepts, seed)
    if texts:
        inputs.update(_text_inputs(texts, src, out, side_a.accepts & side_b.accepts))
        batch = len(texts)
        inputs = {k: v for k, v in inputs.items() if v.shape[:1] == (batch,)}
    echo(f"# {src} ({side_a.label})  vs  {out} ({side_b.label})")
    echo(f"# inputs (seed {seed}): " + ", ".join(f"{k} {_shape(v)}" for k, v in inputs.items()))

    problems = [(src, p) for p in side_a.problems] + [(out, p) for p in side_b.problems]
    for where, problem in problems:
        echo(f"{where}: {problem}")
    for where, note in [(src, n) for n in side_a.notes] + [(out, n) for n in side_b.notes]:
        echo(f"# {where}: note: {note}")

    res_a, res_b = side_a.run(inputs), side_b.run(inputs)
    for name in [n for n in res_a if n not in res_b]:
        echo(f"# only in {src}: {name}")
    for name in [n for n in res_b if n not in res_a]:
        echo(f"# only in {out}: {name}")
    results = compare(res_a, res_b, atol)
    if not results:
        echo(f"FAILED: no output is named the same on both sides ({', '.join(res_a) or 'none'} vs "
             f"{', '.join(res_b) or 'none'})")
        return False
    rows = [(r.name, r.shape, "-" if r.diff is None else f"{r.diff:.3g}", "ok" if r.ok else "FAIL")
            for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[3])
    worst = max((r.diff for r in results if r.diff is not None), default=float("nan"))
    failures = sum(not r.ok for r in results)
    if failures or problems:
        why = [f"{failures} of {len(results)} output(s) differ beyond atol {atol:g}"] if failures else []
        why += [f"{len(problems)} weight loading problem(s)"] if problems else []
        echo(f"FAILED: {'; '.join(why)} (max abs diff {worst:.3g})")
        return False
    echo(f"verified: {len(results)} output(s) within atol {atol:g} (max abs diff {worst:.3g})")
    return True


def cmd_verify(args) -> None:
    config = read_json(Path(args.config)) if args.config else None
    if not verify(args.src, args.out, atol=args.atol, seed=args.seed, config=config, texts=args.text):
        raise SystemExit(1)


def add_parser(sub, parents) -> None:
    s = sub.add_parser("verify", parents=parents,
                       help="run SRC and OUT in their frameworks (torch, tensorflow, transformers) on the "
                       "same random inputs and compare outputs (exit 1 above --atol)",
                       description="Load SRC and OUT with the frameworks' own classes (transformers' PyTorch "
                       "and TF classes, tf_keras) and run both on the same seeded random inputs, printing "
                       "the largest difference per output. Needs the test extras: pip install 'irconv[test]' "
                       "(torch, tensorflow, transformers; several GB). Exit 1 when an output differs "
                       "beyond --atol, 2 when either side cannot be loaded.")
    s.add_argument("src", help="one model directory (HF PyTorch, HF TF2, TF1 BERT, Keras EfficientNet)")
    s.add_argument("out", help="the other, usually irconv's conversion of SRC")
    s.add_argument("--atol", type=float, default=1e-4, help="largest max-abs-difference accepted (1e-4)")
    s.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    s.add_argument("--config", help="HF config.json for a side that has none (a TF1 checkpoint without "
                   "bert_config.json)")
    s.add_argument("--text", action="append", metavar="SENTENCE", help="run this sentence (repeatable) "
                   "through the model's own tokenizer instead of random token ids")
    s.set_defaults(func=cmd_verify)
