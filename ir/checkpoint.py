"""Checkpoint: what every importer produces and every exporter consumes."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

from .errors import FormatError
from .tensor import Tensor


def check_names(names: Iterable[str], aliases: Mapping[str, str], *, where: str | None = None,
                error: type[FormatError] = FormatError) -> None:
    """Refuse a tensor table that names a tensor twice, a tied name that is also a tensor
    or ties to itself, or a tied name whose target is not a tensor: an exporter would write
    one tensor's bytes under the other's name, or leave a name out, with exit 0."""
    counts = Counter(list(names))   # (a Counter of a mapping would read its values as counts)
    dupes = sorted(n for n, c in counts.items() if c > 1)
    if dupes:
        raise error(f"tensor {dupes[0]!r} is named {counts[dupes[0]]} times in the tensor table"
                    + (f" (and {len(dupes) - 1} other name(s))" if len(dupes) > 1 else ""), path=where)
    for alias, target in aliases.items():
        if alias == target:
            raise error(f"tied name {alias!r} is tied to itself", path=where)
        if alias in counts:
            raise error(f"{alias!r} is both a tensor and a name tied to {target!r}", path=where)
        if target not in counts:
            raise error(f"tied name {alias!r} names tensor {target!r}, which is not in the "
                        "checkpoint", path=where)


def architectures_problem(config) -> str | None:
    """What is wrong with a config's `architectures` (every exporter reads its first class
    name), or None: absent, or a list of strings."""
    archs = config.get("architectures") if isinstance(config, dict) else None
    if archs is None or (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        return None
    return f"config architectures {str(archs)[:80]!r} is not a list of class names"


@dataclass
class Checkpoint:
    family: str                       # registry name of the model family ("bert")
    config: dict                      # canonical config: the HF config.json dict of the family
    tensors: dict[str, Tensor]        # canonical name -> tensor, in a stable order
    aliases: dict[str, str] = field(default_factory=dict)   # tied name -> canonical name it shares
    source: dict = field(default_factory=dict)  # format, view, files, skipped raw names ...
    # Raw tensors the import dropped as copies of another: raw name -> (copy, twin). Not part
    # of the model (never streamed); kept so a check can confirm they really were copies.
    dropped: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)
    # The tensors must be loaded in table order (an IR stream): exporters then load ahead
    # on one thread only (ir/pipeline.py).
    ordered: bool = False
    # Where an importer checked a given config against the tensors: that check, for a config
    # changed after the import (--set): the contradictions it finds, [] for none.
    config_check: Callable[[dict], list[str]] | None = field(default=None, repr=False)
    # (input directories, paths the caller named) of irconv.load(): the files the lazy tensors
    # read later must lie inside them (limits.inputs, which exporting and streaming enter).
    inputs: tuple[tuple[str, ...], tuple[str, ...]] = field(default=((), ()), repr=False)
    _closer: Callable[[], None] | None = field(default=None, repr=False)

    def __post_init__(self):
        # Every importer's checkpoint: a key is its tensor's name, tied names tie to tensors.
        # (Importers and the stream check this themselves first, naming their file.)
        wrong = [k for k, t in self.tensors.items() if t.name != k]
        if wrong:
            raise FormatError(f"tensor {self.tensors[wrong[0]].name!r} is stored under the name "
                              f"{wrong[0]!r}", path=self._where())
        check_names(self.tensors, self.aliases, where=self._where())
        problem = architectures_problem(self.config)
        if problem:
            raise FormatError(problem, path=self._where())

    def _where(self) -> str | None:
        files = self.source.get("files") if isinstance(self.source, dict) else None
        return ", ".join(map(str, files)) if isinstance(files, list) and files else None

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors.values())

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def close(self) -> None:
        """Finish reading the source; for a stream, verifies the trailer. Exporters call this
        before they commit their output, so a truncated input never yields a file."""
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self._closer = None
