"""Modules imported on first use."""
import importlib.util
import sys


def lazy_module(name: str):
    """`name`, imported on first attribute access (importlib's LazyLoader): a codec's library
    (h5py) costs its import only to commands that read or write that format, not to --help."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
