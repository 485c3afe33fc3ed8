"""What every verify loader shares: the LoadedModel a loader returns, the Loader record and its
registry, importing the frameworks (or saying in one line what to install), and reading
transformers' loading report."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..importers.base import read_json
from ..ir.errors import MissingDependencyError, UsageError
from ..registry import Registry

INSTALL_HINT = "pip install 'irconv[test]'"

# import name -> pip name, for the missing-dependency message
PIP_NAMES = {"torch": "torch", "tensorflow": "tensorflow-cpu", "tf_keras": "tf-keras",
             "transformers": "transformers", "jax": "jax", "flax": "flax"}


@dataclass
class LoadedModel:
    """One side, ready to run: what a loader returns."""

    label: str                                   # e.g. "pt BertForMaskedLM"
    config: dict                                 # the HF config.json contents
    accepts: frozenset[str]                      # argument names of forward / call
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    problems: list[str] = field(default_factory=list)   # missing / unexpected / re-initialised weights
    notes: list[str] = field(default_factory=list)      # printed, but no failure (e.g. how inputs were adapted)
    # outputs this side does not give because its file has no weights for them (a pooler): one
    # the other side gives is then a failure, not a note
    lacks: frozenset[str] = frozenset()


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
    wanted = [m for m in ("torch", "tensorflow", "tf_keras", "jax", "flax", "transformers") if m in needs]
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
        import importlib.metadata     # here, not at start-up: it pulls in email, platform ...
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



def _hf_dir_with(*weight_files: str) -> Callable[[Path], bool]:
    def detect(path: Path) -> bool:
        return (path.is_dir() and (path / "config.json").is_file()
                and any((path / name).is_file() for name in weight_files))
    return detect

