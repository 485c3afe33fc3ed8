"""Keras 2 / tf-keras HDF5 weights and HF transformers TF2 `.h5` checkpoints, in h5py + numpy
(FORMATS.md §1).

Three layouts share one reader:

* a Keras weights file (`save_weights("x.h5")`, HF's unsharded `tf_model.h5`): root attribute
  `layer_names`, one group per layer whose `weight_names` attribute lists full variable names,
  each a dataset at `/<layer>/<weight name>`;
* a full-model file (`model.save("x.h5")`): the same under `/model_weights`;
* an HF TF shard (`tf_model-0000k-of-0000N.h5`): root `layer_names` lists *stripped* weight
  names, each a dataset at `/<stripped name>`; its index keeps the unstripped names.

Writers lay out every group, attribute and dataset up front, so tensors may be written in
any order, one array in memory at a time, into a `.partial` file that only a successful
`close()` renames into place.

Reading trusts nothing the file declares: every object is reached through hard links only
(soft, external and user-defined links are refused by name, never followed); external raw
storage and virtual datasets are refused by name; a dataset's declared bytes must fit what it
stores in the file (contiguous), or what its allocated chunks can inflate to (chunked); the
weights' storage together must fit the file; attributes' declared sizes are checked before
they are read. All of it before a byte of tensor data is read. Writers write through a guard
that keeps libhdf5 from ever seeing a failed write (a full disk), then fail cleanly themselves.

h5py has no bfloat16 or fp8, so those are stored the Keras 3 way: an opaque dataset of the
same item size with the attribute `dtype` naming the ml_dtypes type. transformers' TF loader
(`np.asarray(dataset)` then `K.batch_set_value`) cannot load such tensors; convert them to
float32 first when the file is meant for `TF*.from_pretrained`.

Modules: common (constants, the opaque dtypes), guard (what a file may point at: links,
filters, storage against the file), attrs (string attributes and Keras' split name lists),
reading (files into lazy tensors), writing (the placed-dataset writers).
"""
from __future__ import annotations

from .attrs import load_name_list, save_name_list
from .common import (HDF5_OBJECT_HEADER_LIMIT, MODEL_WEIGHTS_GROUP, TF2_WEIGHTS_INDEX_NAME, TF2_WEIGHTS_NAME,
                     TF2_WEIGHTS_STEM, TOP_LEVEL_GROUP, h5py, strip_model_name)
from .reading import H5Contents, H5Weight, looks_like, open_h5, read, read_hf_sharded, shard_files
from .writing import HFShardedH5Writer, KerasH5Writer, write, write_hf_sharded

__all__ = ["H5Weight", "H5Contents", "read", "read_hf_sharded", "shard_files", "looks_like", "open_h5",
           "strip_model_name", "KerasH5Writer", "HFShardedH5Writer", "write", "write_hf_sharded",
           "load_name_list", "save_name_list", "HDF5_OBJECT_HEADER_LIMIT", "TF2_WEIGHTS_NAME",
           "TF2_WEIGHTS_STEM", "TF2_WEIGHTS_INDEX_NAME", "MODEL_WEIGHTS_GROUP", "TOP_LEVEL_GROUP", "h5py"]
