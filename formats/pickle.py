"""A restricted unpickler: only globals on an allowlist, each replaced by an irconv stand-in.

Pickle is a small stack machine whose only dangerous power is calling whatever its globals
resolve to. So the contract is: every global (GLOBAL, STACK_GLOBAL, INST, EXT1/2/4 via
copyreg; OBJ and NEWOBJ only use classes a global already produced) goes through
`find_class`, which returns the caller's stand-in for an allowlisted (module, name) and
refuses everything else before anything runs. Stand-ins must be harmless for any arguments.

The allowlist is a plain mapping the caller composes (`{**torchzip.ALLOW, key: stand_in}`),
so fairseq or whole-module importers extend the torch one instead of copying it.

Built on the pure-Python `pickle._Unpickler`, not the C one, because two holes cannot be
closed from a subclass of the C class: its EXT opcodes consult the process-wide
copyreg._extension_cache before find_class, and its BUILD cannot be intercepted, so a file
could set attributes on the shared stand-ins themselves (e.g. `__defaults__` of a function).
Data pickles of checkpoints are small; the pure-Python loop reads ~50k tensors a second.
"""
from __future__ import annotations

import _compat_pickle
import copyreg
import io
import pickle
from typing import Any, Callable, Mapping

from ..ir.errors import FormatError, IrconvError, UnsafeFileError

Allowlist = Mapping[tuple[str, str], Any]
PersistentLoad = Callable[[Any], Any]

_REFUSAL = ("not a tensor or container type irconv knows "
            "(the file may try to run code; nothing was executed)")


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickle `file` resolving globals only through `allow`; `path` names the file in errors."""

    # Copied, not shared: overriding an entry must not change the stdlib class.
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, path: str, allow: Allowlist,
                 persistent_load: PersistentLoad | None = None, encoding: str = "utf-8"):
        super().__init__(file, fix_imports=False, encoding=encoding)
        self.path = str(path)
        self._allow = allow
        self._persistent = persistent_load
        # ids of every stand-in: BUILD on one of them would mutate it for the whole process.
        self._stand_in_ids = {id(v) for v in allow.values()}

    def find_class(self, module: str, name: str):
        if self.proto < 3:
            # Protocol 0-2 pickles name Python 2 modules (`__builtin__.set`); judge and report
            # the Python 3 global, as the stdlib's own find_class would import it.
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return self._allow[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeFileError(f"refusing to load global {f'{module}.{name}'!r}: {_REFUSAL}",
                                  path=self.path) from None

    def persistent_load(self, pid):
        if self._persistent is None:
            raise FormatError(f"unexpected persistent id {pid!r}: this pickle should have none",
                              path=self.path)
        return self._persistent(pid)

    def get_extension(self, code: int):
        # Same lookup as pickle.py but never through (or into) the shared _extension_cache,
        # so a registered extension code is just another name for find_class to judge.
        key = copyreg._inverted_registry.get(code)
        if key is None:
            raise UnsafeFileError(f"refusing extension code {code!r}: it names no registered "
                                  f"global (nothing was executed)", path=self.path)
        self.append(self.find_class(*key))

    def _load_build(self):
        target = self.stack[-2] if len(self.stack) >= 2 else None
        if id(target) in self._stand_in_ids:
            raise UnsafeFileError(f"refusing to set state on the global {target!r}: a data file "
                                  f"never does that (nothing was executed)", path=self.path)
        if isinstance(target, Sealed):
            raise FormatError(f"refusing to set state on {type(target).__name__}: a stand-in "
                              f"result is final once checked", path=self.path)
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = _load_build

    def load(self):
        """The unpickled object; any failure is an IrconvError naming the file."""
        try:
            return super().load()
        except IrconvError as e:
            if e.path is None:  # raised by a stand-in, which cannot know the file
                raise type(e)(str(e), path=self.path) from e
            raise
        except Exception as e:  # bytes from disk can break the machine anywhere: all are
            # format errors (re-raised with the cause, never swallowed)
            detail = str(e) or type(e).__name__
            raise FormatError(f"corrupt or truncated pickle ({type(e).__name__}: {detail})",
                              path=self.path) from e


def loads(data: bytes, *, path: str, allow: Allowlist,
          persistent_load: PersistentLoad | None = None) -> Any:
    """Unpickle `data` with `RestrictedUnpickler`; `path` is the file named in errors."""
    return RestrictedUnpickler(io.BytesIO(data), path=path, allow=allow,
                               persistent_load=persistent_load).load()


class Sealed:
    """Base for what stand-ins return after checking their arguments (a tensor reference):
    BUILD on an instance is refused, so the file cannot rewrite checked fields afterwards
    (a frozen slots dataclass would otherwise accept it through its own __setstate__)."""
    __slots__ = ()


class Stub:
    """Plain attribute data standing in for an instance of a class irconv will not import.

    NEWOBJ/REDUCE arguments land in `stub_args`, a dict BUILD state becomes attributes
    (so `vars(stub)` is the object's `__dict__`), any other state is kept in `stub_state`.
    Make one class per global with `Stub.subclass(module, name)`; `stub_global` says which.
    """

    # Slots, so BUILD state (which goes to __dict__) can never overwrite them.
    __slots__ = ("stub_args", "stub_state", "__dict__")
    stub_global: tuple[str, str] = ("", "")

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self.stub_args = args + ((kwargs,) if kwargs else ())
        self.stub_state = None
        return self

    def __init__(self, *args, **kwargs):
        pass  # __new__ kept the arguments; NEWOBJ never calls __init__ anyway

    def __setstate__(self, state):
        # (dict, slotstate) is what objects with __slots__ pickle as.
        if isinstance(state, tuple) and len(state) == 2 and \
                all(s is None or isinstance(s, dict) for s in state):
            for part in state:
                self.__dict__.update(part or {})
        elif isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.stub_state = state

    @classmethod
    def subclass(cls, module: str, name: str) -> type:
        """A Stub class standing for the global `module.name` (one per allowlist entry)."""
        return type(name, (cls,), {"stub_global": (module, name), "__module__": __name__,
                                   "__qualname__": f"Stub[{module}.{name}]"})

    def __repr__(self) -> str:
        module, name = self.stub_global
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"Stub[{module}.{name}]({fields})"
