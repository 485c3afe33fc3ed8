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

Bounds (a hostile pickle must not exhaust memory, the C stack or time):
  - nesting: a tuple nested deeper than ir.limits.MAX_DEPTH is refused as it is built (hashing
    a 200000-deep tuple used as a dict key or set member recurses in C without a guard and
    segfaults the interpreter), MARKs open at once are bounded alike, and the finished object
    is walked once per object (iteratively) to bound the nesting that lists and dicts filled
    in later can reach;
  - sizes: every length the pickle declares (strings, bytes, frames) is checked against the
    bytes left in the file before it is read, so nothing is allocated for data that is not
    there; a line (protocol-0 opcodes) is at most MAX_LINE long;
  - counts: with this machine and these stand-ins every object costs at least one opcode byte
    (no allowed global builds more than its arguments hold), so the memo and every list, dict
    or set hold fewer entries than the pickle has bytes: they are bounded by the size limits
    the callers put on the pickle itself.
"""
from __future__ import annotations

import _compat_pickle
import copyreg
import io
import pickle
from typing import Any, Callable, Mapping

from ..ir.errors import FormatError, IrconvError, UnsafeFileError
from ..ir.limits import MAX_DEPTH

Allowlist = Mapping[tuple[str, str], Any]
PersistentLoad = Callable[[Any], Any]

MAX_LINE = 1 << 20      # a protocol-0 opcode argument (a global name, a decimal number)
MAX_TUPLE_ITEMS = 1 << 20   # a tuple's items through its nested tuples (shapes and args: a few)

_REFUSAL = ("not a tensor or container type irconv knows "
            "(the file may try to run code; nothing was executed)")


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickle `file` resolving globals only through `allow`; `path` names the file in errors."""

    # Copied, not shared: overriding an entry must not change the stdlib class.
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, path: str, allow: Allowlist,
                 persistent_load: PersistentLoad | None = None, encoding: str = "utf-8"):
        self.path = str(path)
        super().__init__(_BoundedReader(file, self.path), fix_imports=False, encoding=encoding)
        # id -> (the tuple, kept alive; its depth; its items counted through every nested tuple)
        self._tuple_depth: dict[int, tuple[tuple, int, int]] = {}
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
            raise FormatError(f"unexpected persistent id {brief(pid)}: this pickle should have none",
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

    def _load_mark(self):
        if len(self.metastack) >= MAX_DEPTH:
            raise FormatError(f"pickle opens more than {MAX_DEPTH} MARKs at once (nested deeper "
                              f"than any real checkpoint)", path=self.path)
        pickle._Unpickler.load_mark(self)

    dispatch[pickle.MARK[0]] = _load_mark

    def _tuple_built(self):
        """Depth and expanded size of the tuple just pushed, from its items' (tuples are
        immutable, so exact). Python walks a tuple's items through every nested tuple to hash
        it (a dict key, a set member) or to print it, and never caches the hash: a tuple of 8
        copies of a tuple of 8 copies ... is 300 bytes of pickle and 8**30 steps to hash."""
        top = self.stack[-1]
        depth, size = 1, len(top)
        for x in top:
            if type(x) is tuple:
                _, d, n = self._tuple_depth.get(id(x), (x, 1, len(x)))
                depth, size = max(depth, d + 1), size + n
        if depth > MAX_DEPTH:
            raise FormatError(f"pickle nests tuples deeper than {MAX_DEPTH} levels", path=self.path)
        if size > MAX_TUPLE_ITEMS:
            raise FormatError(f"pickle builds a tuple of over {MAX_TUPLE_ITEMS:,} items counted through the "
                              "tuples it shares (hashing or printing it would not end; no checkpoint "
                              "holds one)", path=self.path)
        if depth > 1:
            self._tuple_depth[id(top)] = (top, depth, size)

    def _tuple_op(load):
        def run(self):
            load(self)
            self._tuple_built()
        return run

    for _op in (pickle.TUPLE, pickle.TUPLE1, pickle.TUPLE2, pickle.TUPLE3):
        dispatch[_op[0]] = _tuple_op(pickle._Unpickler.dispatch[_op[0]])
    del _op, _tuple_op

    def load(self):
        """The unpickled object; any failure is an IrconvError naming the file."""
        try:
            obj = super().load()
            self._tuple_depth.clear()
            check_nesting(obj, path=self.path)
            return obj
        except IrconvError as e:
            if e.path is None:  # raised by a stand-in, which cannot know the file
                raise type(e)(str(e), path=self.path) from e
            raise
        except Exception as e:  # bytes from disk can break the machine anywhere: all are
            # format errors (re-raised with the cause, never swallowed)
            detail = str(e) or type(e).__name__
            raise FormatError(f"corrupt or truncated pickle ({type(e).__name__}: {detail})",
                              path=self.path) from e


def brief(value, depth: int = 0) -> str:
    """repr() for messages, safe for what a hostile pickle holds (ints of 10**5000 digits,
    which repr() refuses, long tuples, and tuples sharing tuples many levels deep, which a
    whole walk would take 8**30 steps over): a few items of a few levels."""
    if type(value) is int and value.bit_length() > 64:
        return f"<a {value.bit_length()}-bit integer>"
    if type(value) is tuple:
        if depth >= 3:
            return "(...)"
        items = ", ".join(brief(v, depth + 1) for v in value[:8])
        return f"({items}{', ...' if len(value) > 8 else ''}{',' if len(value) == 1 else ''})"
    text = repr(value) if type(value) in (int, str, float, bool, type(None)) else f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


class _BoundedReader:
    """The file as the unpickler reads it: a declared length beyond the bytes left is refused
    before anything is allocated (a plain file's read(n) allocates n bytes up front)."""

    def __init__(self, f, path: str):
        self._f, self._path = f, path
        here = f.tell()
        self._end = f.seek(0, io.SEEK_END)
        f.seek(here)

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._f.tell()
        if n is None or n < 0:
            n = left
        if n > left:
            raise FormatError(f"corrupt or truncated pickle: it declares {n:,} bytes of data where "
                              f"only {left:,} are left in the file", path=self._path)
        return self._f.read(n)

    def readline(self) -> bytes:
        line = self._f.readline(MAX_LINE)
        if len(line) == MAX_LINE and not line.endswith(b"\n"):
            raise FormatError(f"pickle has a text line longer than {MAX_LINE:,} bytes (corrupt)",
                              path=self._path)
        return line


def _children(obj) -> tuple | list | None:
    """The objects a container holds, or None for a leaf (what check_nesting descends into)."""
    kind = type(obj)
    if kind is tuple or kind is list:
        return obj
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if kind is set or kind is frozenset:
        return list(obj)
    if isinstance(obj, Stub):
        return [obj.stub_args, obj.stub_state, obj.__dict__]
    return None


def check_nesting(root, *, path: str, limit: int = MAX_DEPTH) -> None:
    """Refuse an unpickled object nested deeper than `limit`. Iterative, and each object is
    walked once (by id; a shared object costs nothing more, a reference back to an object
    being walked is a cycle, not depth), so neither depth nor sharing can make it slow."""
    height: dict[int, int] = {}           # finished object -> levels below and including it
    stack = [(root, iter(_children(root) or ()), [0])]
    active = {id(root)}
    while stack:
        obj, items, below = stack[-1]
        for child in items:
            cid = id(child)
            if cid in height:
                below[0] = max(below[0], height[cid])
            elif cid not in active and (grand := _children(child)) is not None:
                if len(stack) + 1 > limit:
                    raise FormatError(f"pickle nests containers deeper than {limit} levels", path=path)
                active.add(cid)
                stack.append((child, iter(grand), [0]))
                break
        else:
            stack.pop()
            active.discard(id(obj))
            height[id(obj)] = below[0] + 1
            if len(stack) + below[0] > limit:
                raise FormatError(f"pickle nests containers deeper than {limit} levels", path=path)
            if stack:
                stack[-1][2][0] = max(stack[-1][2][0], below[0] + 1)


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
        fields = ", ".join(f"{k}={brief(v)}" for k, v in vars(self).items())
        return f"Stub[{module}.{name}]({fields})"
