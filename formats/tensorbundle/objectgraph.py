"""TF2 object-based checkpoints: the TrackableObjectGraph (`_CHECKPOINTABLE_OBJECT_GRAPH`)
and the variable names it gives the tensors, telling model weights from optimizer state."""
from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

from .protowire import _Msg, _WireError, _expect, _fields, _signed, _text

if TYPE_CHECKING:
    from .bundle import Bundle

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
ATTRIBUTES = "/.ATTRIBUTES/"
VARIABLE_VALUE = "VARIABLE_VALUE"
OPTIMIZER_SLOT = "/.OPTIMIZER_SLOT/"
# Objects below the root along the shortest path; real models nest a few dozen deep.
MAX_GRAPH_DEPTH = 256


# --------------------------------------------------------------------------- object graph

@dataclass
class ObjectReference:
    node_id: int
    local_name: str


@dataclass
class SerializedTensor:
    name: str                   # attribute name, "VARIABLE_VALUE" for variables
    full_name: str              # graph name of the variable, without ":0"
    checkpoint_key: str


@dataclass
class SlotVariableReference:
    original_variable_node_id: int
    slot_name: str
    slot_variable_node_id: int


@dataclass
class TrackableObject:
    children: list[ObjectReference] = field(default_factory=list)
    attributes: list[SerializedTensor] = field(default_factory=list)
    slot_variables: list[SlotVariableReference] = field(default_factory=list)
    registered_saver: tuple[str, str] | None = None     # (name, object_name)
    has_checkpoint_values: bool | None = None           # google.protobuf.BoolValue


def _submessage(value: bytes, what: str) -> tuple[Callable[[int], int], Callable[[int], str]]:
    """Accessors for the scalar fields of a small submessage (last occurrence wins)."""
    sub: dict[int, object] = {}
    for n, _, v in _fields(value):
        sub[n] = v

    def num(n: int) -> int:
        v = sub.get(n, 0)
        if not isinstance(v, int):
            raise _WireError(f"{what} field {n} is not an integer")
        return _signed(v)

    def text(n: int) -> str:
        v = sub.get(n, b"")
        if not isinstance(v, bytes):
            raise _WireError(f"{what} field {n} is not a string")
        return _text(v, f"{what} field {n}")

    return num, text


def _decode_node(buf: bytes) -> TrackableObject:
    node = TrackableObject()
    for number, wire, value in _fields(buf):
        if number not in (1, 2, 3, 4, 5):
            continue
        _expect(wire, 2, number, "TrackableObject")
        if number == 1:
            num, text = _submessage(value, "ObjectReference")
            node.children.append(ObjectReference(num(1), text(2)))
        elif number == 2:
            num, text = _submessage(value, "SerializedTensor")
            node.attributes.append(SerializedTensor(text(1), text(2), text(3)))
        elif number == 3:
            num, text = _submessage(value, "SlotVariableReference")
            node.slot_variables.append(SlotVariableReference(num(1), text(2), num(3)))
        elif number == 4:
            num, text = _submessage(value, "RegisteredSaver")
            node.registered_saver = (text(1), text(2))
        else:
            num, _ = _submessage(value, "BoolValue")
            node.has_checkpoint_values = bool(num(1))
    return node


def decode_object_graph(data: bytes) -> list[TrackableObject]:
    """Parse a serialized TrackableObjectGraph; node 0 is the root. Raises ValueError."""
    nodes = []
    for number, wire, value in _fields(data):
        if number == 1:
            _expect(wire, 2, 1, "TrackableObjectGraph")
            nodes.append(_decode_node(value))
    for i, node in enumerate(nodes):
        refs = [c.node_id for c in node.children] + [
            n for s in node.slot_variables for n in (s.original_variable_node_id, s.slot_variable_node_id)]
        bad = [r for r in refs if not 0 <= r < len(nodes)]
        if bad:
            raise _WireError(f"node {i} refers to node {bad[0]} of {len(nodes)}")
    deepest = max((d for d in _Paths(nodes).depth if d is not None), default=0)
    if deepest > MAX_GRAPH_DEPTH:
        raise _WireError(f"the object graph nests {deepest} objects deep (more than "
                         f"{MAX_GRAPH_DEPTH}; a Keras model nests a few dozen at most)")
    return nodes


def encode_object_graph(nodes: Sequence[TrackableObject]) -> bytes:
    """Serialize a TrackableObjectGraph (byte-identical to TF's for the fields it knows)."""
    graph = _Msg()
    for node in nodes:
        msg = _Msg()
        for c in node.children:
            msg.bytes(1, _Msg().varint(1, c.node_id).bytes(2, c.local_name).done(), always=True)
        for a in node.attributes:
            msg.bytes(2, _Msg().bytes(1, a.name).bytes(2, a.full_name)
                      .bytes(3, a.checkpoint_key).done(), always=True)
        for s in node.slot_variables:
            msg.bytes(3, _Msg().varint(1, s.original_variable_node_id).bytes(2, s.slot_name)
                      .varint(3, s.slot_variable_node_id).done(), always=True)
        if node.registered_saver is not None:
            name, object_name = node.registered_saver
            msg.bytes(4, _Msg().bytes(1, name).bytes(2, object_name).done(), always=True)
        if node.has_checkpoint_values is not None:
            msg.bytes(5, _Msg().varint(1, int(node.has_checkpoint_values)).done(), always=True)
        graph.bytes(1, msg.done(), always=True)
    return graph.done()


# --------------------------------------------------------------------------- variable names

class _Paths:
    """Breadth-first edge-name path of every node from the root; the first path wins, as in
    TF's graph view (so `layer_with_weights-0` beats `layer-1`). Kept as parent links and
    spelled out only when asked, so a long chain of nodes costs its length, not its square."""

    def __init__(self, objects: list[TrackableObject]):
        n = len(objects)
        self.parent: list[int | None] = [None] * n
        self.edge: list[str | None] = [None] * n     # name of the edge from the parent
        self.depth: list[int | None] = [None] * n
        if not n:
            return
        self.depth[0] = 0
        queue = deque([0])
        while queue:
            node = queue.popleft()
            for child in objects[node].children:
                c = child.node_id
                if self.depth[c] is None:
                    self.parent[c], self.edge[c] = node, child.local_name
                    self.depth[c] = self.depth[node] + 1
                    queue.append(c)

    def __getitem__(self, node: int) -> tuple[str, ...] | None:
        if self.depth[node] is None:
            return None
        names = []
        while node:
            names.append(self.edge[node])
            node = self.parent[node]
        return tuple(reversed(names))

    def last_edge(self, node: int) -> str | None:
        return self.edge[node]


# A node is an optimizer if it owns slot variables (legacy Keras / v1 optimizers) or holds
# an iteration counter (`iter` legacy, `_iterations` new Keras optimizer), or sits under an
# edge called "optimizer" (how Keras models and most tf.train.Checkpoint calls name it).
_OPTIMIZER_EDGES = frozenset(("optimizer",))
_ITERATION_EDGES = frozenset(("iter", "_iterations"))
# TF1 Saver: optimizer bookkeeping scalars; slots are `<var>/<slot>` of the same shape.
_TF1_NON_MODEL = re.compile(r"^(global_step|beta[12]_power(_\d+)?)$")


def _non_model_nodes(objects: list[TrackableObject], paths: _Paths) -> set[int]:
    optimizers = {i for i, node in enumerate(objects)
                  if node.slot_variables or any(c.local_name in _ITERATION_EDGES for c in node.children)}
    optimizers |= {i for i in range(len(objects)) if paths.last_edge(i) in _OPTIMIZER_EDGES}
    marked = {s.slot_variable_node_id for node in objects for s in node.slot_variables}
    # Everything reachable from an optimizer that the model does not also reach.
    model_reach: set[int] = set()
    queue = deque([0])
    while queue:
        node = queue.popleft()
        if node in model_reach or node in optimizers:
            continue
        model_reach.add(node)
        queue.extend(c.node_id for c in objects[node].children)
    queue = deque(optimizers)
    while queue:
        node = queue.popleft()
        if node in marked:
            continue
        marked.add(node)
        queue.extend(c.node_id for c in objects[node].children if c.node_id not in model_reach)
    return marked


def variable_names(bundle: Bundle) -> dict[str, str | None]:
    """Tensor key -> variable name (graph name, no ':0') for every numeric tensor; None marks
    a non-model entry (optimizer slots and iterations, save_counter, TF1 global_step...)."""
    keys = [t.name for t in bundle.tensors]
    if bundle.objects is None:     # TF1 name-based: the key is the variable name
        shapes = {t.name: t.shape for t in bundle.tensors}
        out: dict[str, str | None] = {}
        for key in keys:
            parent = key.rpartition("/")[0]
            slot = parent in shapes and shapes[parent] == shapes[key]
            out[key] = None if slot or _TF1_NON_MODEL.match(key) else key
        return out

    objects = bundle.objects
    paths = _Paths(objects)
    non_model = _non_model_nodes(objects, paths)
    by_key: dict[str, tuple[int, SerializedTensor]] = {
        a.checkpoint_key: (i, a) for i, node in enumerate(objects) for a in node.attributes}
    out = {}
    for key in keys:
        if key not in by_key:
            out[key] = None if key.startswith("save_counter" + ATTRIBUTES) else key
            continue
        node, attr = by_key[key]
        if (node in non_model or OPTIMIZER_SLOT in key
                or (node != 0 and paths[node] == ("save_counter",))):
            out[key] = None
        elif attr.full_name:
            out[key] = attr.full_name
        elif paths[node] is not None:
            name = "/".join(paths[node])
            out[key] = name if attr.name == VARIABLE_VALUE else f"{name}/{attr.name}"
        else:
            out[key] = key
    return out
