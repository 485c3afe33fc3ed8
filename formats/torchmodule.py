"""Whole pickled nn.Modules (`torch.save(model)`, not `torch.save(model.state_dict())`), read
without importing the module's code and without running the pickle.

DALL-E's released encoder.pkl is such a file: its pickle names dall_e.encoder.Encoder,
dall_e.utils.Conv2d and torch.nn containers, and holds each module's `__dict__`. Each allowed
module class becomes an inert `Stub` (formats.pickle) whose attributes are that `__dict__`,
so the file reads as a tree of plain attribute data; the tensors are collected from each
module's `_parameters` and `_buffers` as `state_dict()` would name them ('blocks.input.w').
Only the classes listed here are allowed; any other global is refused before anything runs.
"""
from __future__ import annotations

from typing import Any

from ..ir.errors import FormatError
from ..ir.tensor import Tensor
from .pickle import Stub
from .torchzip import TensorRef, TorchZipArchive, load_pickle, state_dict_tensors

# The module classes of DALL-E's encoder and the torch.nn modules it is built from, plus the
# containers any module tree uses. Each is a Stub: constructing or BUILDing it stores data.
MODULE_CLASSES = [
    ("dall_e.encoder", "Encoder"), ("dall_e.encoder", "EncoderBlock"), ("dall_e.utils", "Conv2d"),
    ("torch.nn.modules.container", "Sequential"), ("torch.nn.modules.container", "ModuleList"),
    ("torch.nn.modules.container", "ModuleDict"), ("torch.nn.modules.activation", "ReLU"),
    ("torch.nn.modules.linear", "Identity"), ("torch.nn.modules.pooling", "MaxPool2d"),
]
# Non-module data a module's __dict__ holds (dall_e's modules keep their torch.device).
DATA_CLASSES = [("torch", "device")]
ALLOW = {key: Stub.subclass(*key) for key in MODULE_CLASSES + DATA_CLASSES}
_MODULES = {ALLOW[key] for key in MODULE_CLASSES}

MAX_DEPTH = 64          # module nesting; deeper is a malformed (or hostile) file


def is_module(obj: Any) -> bool:
    return type(obj) in _MODULES


def read(path) -> list[Tensor]:
    """The tensors of a torch.save file holding a state dict or a whole allowed module."""
    obj, archive = load_pickle(path, allow=ALLOW)
    if is_module(obj):
        return module_tensors(obj, archive)
    return state_dict_tensors(obj, archive)


def module_tensors(root: Stub, archive: TorchZipArchive) -> list[Tensor]:
    """Every parameter and persistent buffer of the module tree, named and ordered as
    `state_dict()` names them: a module's own parameters, then its buffers, then each child's
    under '<child name>.'."""
    out: list[Tensor] = []
    _collect(root, "", out, [], archive)
    return out


def _collect(module: Stub, prefix: str, out: list[Tensor], path: list[int], archive: TorchZipArchive) -> None:
    where = prefix.rstrip(".") or "the top-level module"
    if id(module) in path or len(path) >= MAX_DEPTH:
        raise FormatError(f"module tree at {where!r} is cyclic or nested over {MAX_DEPTH} deep", path=archive.path)
    state = vars(module)
    transient = state.get("_non_persistent_buffers_set") or set()
    for attr in ("_parameters", "_buffers"):
        for name, value in _entries(state, attr, where, archive).items():
            if value is None or (attr == "_buffers" and name in transient):
                continue
            if not isinstance(value, TensorRef):
                raise FormatError(f"{attr} entry {prefix + name!r} is a {type(value).__name__}, not a tensor",
                                  path=archive.path)
            out.append(archive.tensor(prefix + name, value))
    for name, child in _entries(state, "_modules", where, archive).items():
        if child is None:
            continue
        if not is_module(child):
            raise FormatError(f"submodule {prefix + name!r} is a {type(child).__name__}, not a module",
                              path=archive.path)
        _collect(child, f"{prefix}{name}.", out, path + [id(module)], archive)


def _entries(state: dict, attr: str, where: str, archive: TorchZipArchive) -> dict:
    entries = state.get(attr, {})
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise FormatError(f"{where}: {attr} is not a dict of names", path=archive.path)
    return entries
