"""TensorFlow TensorBundle (V2) checkpoints, in numpy + crc32c only (FORMATS.md §3).

A checkpoint with prefix P is `P.index`, a LevelDB-format table mapping "" to a
BundleHeaderProto and every tensor key to a BundleEntryProto, plus data files
`P.data-0000k-of-0000N` holding the raw little-endian bytes each entry points at. Both the
table blocks and every tensor carry a masked CRC-32C, and the reader checks all of them,
as TF's BundleReader does. The few protobuf messages needed are coded by hand (protowire), so
neither tensorflow nor protobuf is imported.

The writer fixes which shard each tensor goes to from the specs given up front; `write`
then appends one array at a time in any order (a data file is in write order, like TF's
`Add` order), and `close()` writes the sorted table. Every file goes to a `.partial` name
first and is renamed only once all of them are complete.

TF2 object-based checkpoints name tensors by object path (`layer_with_weights-0/kernel/
.ATTRIBUTES/VARIABLE_VALUE`); `variable_names` recovers the variables' graph names from the
`_CHECKPOINTABLE_OBJECT_GRAPH` string tensor and tells model weights from optimizer state.

Modules: protowire (protobuf wire format), snappy, sstable (the LevelDB table of the
`.index`), objectgraph (TF2 object graph and variable names), state (the `checkpoint` file),
bundle (entries, data shards, read and write).
"""
from __future__ import annotations

from .bundle import (BUNDLE_VERSION, DT_STRING, INDEX_SUFFIX, Bundle, BundleHeader, BundleWriter,
                     data_path, looks_like, read, resolve_prefix, tf_dtype_name, write)
from .objectgraph import (ATTRIBUTES, OBJECT_GRAPH_KEY, OPTIMIZER_SLOT, VARIABLE_VALUE, ObjectReference,
                          SerializedTensor, SlotVariableReference, TrackableObject, decode_object_graph,
                          encode_object_graph, variable_names)
from .sstable import BLOCK_SIZE, FOOTER_SIZE, TABLE_MAGIC, mask, read_table, unmask
from .state import STATE_FILE, read_state, write_state

__all__ = ["read", "write", "BundleWriter", "Bundle", "BundleHeader", "variable_names",
           "resolve_prefix", "looks_like", "read_state", "write_state", "read_table",
           "decode_object_graph", "encode_object_graph", "TrackableObject", "ObjectReference",
           "SerializedTensor", "SlotVariableReference", "data_path", "mask", "unmask",
           "OBJECT_GRAPH_KEY", "BLOCK_SIZE", "INDEX_SUFFIX", "STATE_FILE", "ATTRIBUTES",
           "VARIABLE_VALUE", "OPTIMIZER_SLOT", "BUNDLE_VERSION", "DT_STRING", "FOOTER_SIZE",
           "TABLE_MAGIC", "tf_dtype_name"]
