"""Checkpoint: what every importer produces and every exporter consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

from .tensor import Tensor


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
    _closer: Callable[[], None] | None = field(default=None, repr=False)

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
