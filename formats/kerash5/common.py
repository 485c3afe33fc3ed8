"""Constants and small helpers the HDF5 reader and writers share."""
from __future__ import annotations

from ...ir.dtypes import DTYPES, DType
from .. import lazy_module

h5py = lazy_module("h5py")

# tf_keras/src/saving/legacy/hdf5_format.py: name lists longer than this (as a numpy |S
# array) are split over attributes <name>0, <name>1, ... because of HDF5's object header limit.
HDF5_OBJECT_HEADER_LIMIT = 64512
TOP_LEVEL_GROUP = "top_level_model_weights"   # weights owned by the Model itself; not a layer
MODEL_WEIGHTS_GROUP = "model_weights"         # where model.save("x.h5") puts the weights file
TF2_WEIGHTS_NAME = "tf_model.h5"              # transformers.utils constants
TF2_WEIGHTS_STEM = "tf_model"
TF2_WEIGHTS_INDEX_NAME = "tf_model.h5.index.json"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_DTYPE_ATTR = "dtype"


def _is_ml_dtype(dtype: DType) -> bool:
    # From the table, not the dtype kind: ml_dtypes reports bfloat16 as 'V' but float8_e5m2 as 'f'.
    return dtype.numpy_name.startswith("ml_dtypes.")


# The dtypes numpy knows only through ml_dtypes: stored opaque, named by attribute.
_OPAQUE: dict[str, DType] = {d.numpy_name.split(".", 1)[1]: d for d in DTYPES.values() if _is_ml_dtype(d)}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def strip_model_name(name: str) -> str:
    """transformers' strip_model_name_and_prefix without a prefix: drop the Keras model name
    ('tf_bert_for_masked_lm/bert/x:0' -> 'bert/x:0') unless 'model.' is in the name or it
    has a single component."""
    parts = name.split("/")
    if "model." not in name and len(parts) > 1:
        return "/".join(parts[1:])
    return name
