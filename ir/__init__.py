"""The canonical IR. Imports nothing from the rest of irconv."""
from .checkpoint import Checkpoint
from .dtypes import DTYPES, DType
from .errors import (CheckError, DTypeError, FormatError, IrconvError, MappingError, MissingDependencyError,
                     OutputExistsError, StreamError, UnknownNameError, UnsafeFileError, UsageError)
from .tensor import Tensor, TensorSpec, from_array

__all__ = ["Checkpoint", "DTYPES", "DType", "Tensor", "TensorSpec", "from_array",
           "IrconvError", "UsageError", "UnknownNameError", "FormatError", "UnsafeFileError",
           "StreamError", "MappingError", "DTypeError", "MissingDependencyError",
           "OutputExistsError", "CheckError"]
