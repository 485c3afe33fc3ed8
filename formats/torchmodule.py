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
    under '<child name>.'.

    Each module is walked once: a module that is the child of several (a shared submodule)
    is named where it first appears, as torch's named_modules() and named_parameters() do;
    walking it again under every path would make a file of shared children 40 deep (4.7 KB)
    cost 2**40 visits. A module inside its own subtree (a cycle) is refused, and so is a tree
    deeper than MAX_DEPTH."""
    out: list[Tensor] = []
    seen: set[int] = set()
    _collect(root, "", out, [], seen, archive)
    return out


def _collect(module: Stub, prefix: str, out: list[Tensor], path: list[int], seen: set[int],
             archive: TorchZipArchive) -> None:
    where = prefix.rstrip(".") or "the top-level module"
    if id(module) in path:
        raise FormatError(f"module tree at {where!r} is cyclic (a module inside itself)", path=archive.path)
    if len(path) >= MAX_DEPTH:
        raise FormatError(f"module tree at {where!r} is nested over {MAX_DEPTH} deep", path=archive.path)
    seen.add(id(module))
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
        if id(child) in seen and id(child) not in path and id(child) != id(module):
            continue        # shared: already named where it first appeared
        _collect(child, f"{prefix}{name}.", out, path + [id(module)], seen, archive)


def _entries(state: dict, attr: str, where: str, archive: TorchZipArchive) -> dict:
    entries = state.get(attr, {})
    if not isinstance(entries, dict) or not all(isinstance(k, str) for k in entries):
        raise FormatError(f"{where}: {attr} is not a dict of names", path=archive.path)
    return entries
