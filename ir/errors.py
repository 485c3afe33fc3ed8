"""The exception tree.

Every error irconv raises on purpose is an IrconvError. The CLI prints str(error) on one
line and exits 2; messages therefore carry where (file, tensor), what was found, what was
expected and, where there is one, the fix.
"""
from __future__ import annotations


class IrconvError(Exception):
    """Base of every error irconv raises deliberately."""

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class UsageError(IrconvError):
    """The request itself is wrong: bad option, unknown format or family name."""


class UnknownNameError(UsageError):
    """A registry lookup failed; the message lists the known names."""


class FormatError(IrconvError):
    """A file is not what its format promises: corrupt, truncated, inconsistent."""


class UnsafeFileError(FormatError):
    """A pickle references a global irconv will not reconstruct: nothing was executed."""


class StreamError(FormatError):
    """The IR stream between `import` and `export` is corrupt, truncated or of another version."""


class MappingError(IrconvError):
    """Raw tensor names do not fit the model family: lists every unplaced and missing name."""


class DTypeError(IrconvError):
    """A dtype the source or target cannot represent (never changed silently)."""


class MissingDependencyError(IrconvError):
    """An optional extra (torch, tensorflow, transformers) is needed for this command only."""


class OutputExistsError(UsageError):
    """The output path exists and --force was not given."""


class CheckError(IrconvError):
    """A check the user asked of a conversion (--check-sum) failed; nothing was written."""
