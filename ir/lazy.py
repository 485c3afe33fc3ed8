"""Modules imported on first use, safely from any thread."""
import importlib.util
import sys
import threading
import types


def lazy_module(name: str):
    """`name`, imported on first attribute access: a codec's library (h5py) costs its import
    only to commands that read or write that format, not to --help.

    Not importlib's LazyLoader: on Python 3.11 a second thread touching the module while the
    first one runs its code sees it half made (AttributeError: module 'crc32c' has no attribute
    'crc32c', seen with the load-ahead threads); here the others wait for the import to end."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
        raise ImportError(f"no module named {name!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader_state = {"lock": threading.RLock(), "loading": False}
    module.__class__ = _LazyModule
    sys.modules[name] = module
    return module


def _load(module: "_LazyModule") -> None:
    """Run the module's code once, the other threads waiting; the importing thread itself
    sees the module as it is made (as any import does)."""
    spec = types.ModuleType.__getattribute__(module, "__spec__")
    state = spec.loader_state
    with state["lock"]:
        if types.ModuleType.__getattribute__(module, "__class__") is not _LazyModule or state["loading"]:
            return
        state["loading"] = True
        try:
            spec.loader.exec_module(module)
        except BaseException:
            state["loading"] = False
            raise
        module.__class__ = types.ModuleType


class _LazyModule(types.ModuleType):
    def __getattribute__(self, attr):
        _load(self)
        return types.ModuleType.__getattribute__(self, attr)

    def __setattr__(self, attr, value):
        _load(self)
        types.ModuleType.__setattr__(self, attr, value)

    def __delattr__(self, attr):
        _load(self)
        types.ModuleType.__delattr__(self, attr)
