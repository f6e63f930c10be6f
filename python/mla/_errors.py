"""Exceptions of the mla binding: one class per mla_status, each carrying the C message."""

MLA_OK = 0
MLA_ERR_INVALID_ARGUMENT = 1
MLA_ERR_UNSUPPORTED = 2
MLA_ERR_WORKSPACE_TOO_SMALL = 3
MLA_ERR_CUDA = 4
MLA_ERR_INTERNAL = 5
MLA_ERR_OUT_OF_MEMORY = 6

_STATUS_NAMES = {
    MLA_OK: "MLA_OK",
    MLA_ERR_INVALID_ARGUMENT: "MLA_ERR_INVALID_ARGUMENT",
    MLA_ERR_UNSUPPORTED: "MLA_ERR_UNSUPPORTED",
    MLA_ERR_WORKSPACE_TOO_SMALL: "MLA_ERR_WORKSPACE_TOO_SMALL",
    MLA_ERR_CUDA: "MLA_ERR_CUDA",
    MLA_ERR_INTERNAL: "MLA_ERR_INTERNAL",
    MLA_ERR_OUT_OF_MEMORY: "MLA_ERR_OUT_OF_MEMORY",
}


class MlaError(Exception):
    """Base class of every error raised by mla / flash_mla.

    Attributes: ``status`` (the mla_status code, or None for errors found in Python),
    ``status_name`` ("MLA_ERR_..."), ``message`` (the C message from mla_last_error(), or
    the Python-side message), ``function`` (the C entry point that failed, if any)."""

    default_status = None

    def __init__(self, message, status=None, function=None):
        if status is None:
            status = self.default_status
        self.message = message
        self.status = status
        self.status_name = _STATUS_NAMES.get(status, "MLA_STATUS_%s" % status) if status is not None else None
        self.function = function
        super().__init__(message)

    def __str__(self):
        if self.function and self.status_name:
            return "%s (%s from %s)" % (self.message, self.status_name, self.function)
        return str(self.message)


class InvalidArgumentError(MlaError, ValueError):
    """MLA_ERR_INVALID_ARGUMENT: a shape, dtype, stride, pointer or value is wrong."""
    default_status = MLA_ERR_INVALID_ARGUMENT


class UnsupportedError(MlaError, NotImplementedError):
    """MLA_ERR_UNSUPPORTED: valid, but not built in / not available on this device."""
    default_status = MLA_ERR_UNSUPPORTED


class WorkspaceTooSmallError(MlaError, ValueError):
    """MLA_ERR_WORKSPACE_TOO_SMALL: the workspace is smaller than the plan needs."""
    default_status = MLA_ERR_WORKSPACE_TOO_SMALL


class CudaError(MlaError, RuntimeError):
    """MLA_ERR_CUDA: the CUDA runtime reported an error."""
    default_status = MLA_ERR_CUDA


class InternalError(MlaError, RuntimeError):
    """MLA_ERR_INTERNAL: a bug in mla.c."""
    default_status = MLA_ERR_INTERNAL


class OutOfMemoryError(MlaError, MemoryError):
    """MLA_ERR_OUT_OF_MEMORY: a host allocation failed (plan creation)."""
    default_status = MLA_ERR_OUT_OF_MEMORY


class LibraryNotFoundError(MlaError, OSError):
    """libmla could not be found or loaded, or it does not match this Python package."""


class SchedMetaMismatchError(InvalidArgumentError, AssertionError):
    """flash_mla: the arguments of a call disagree with the FlashMLASchedMeta they reuse.
    Also an AssertionError, which is what DeepSeek's flash_mla raises in this case."""


_STATUS_CLASSES = {
    MLA_ERR_INVALID_ARGUMENT: InvalidArgumentError,
    MLA_ERR_UNSUPPORTED: UnsupportedError,
    MLA_ERR_WORKSPACE_TOO_SMALL: WorkspaceTooSmallError,
    MLA_ERR_CUDA: CudaError,
    MLA_ERR_INTERNAL: InternalError,
    MLA_ERR_OUT_OF_MEMORY: OutOfMemoryError,
}


def status_name(status):
    """The MLA_* name of a status code (pure Python; see also mla.status_string())."""
    return _STATUS_NAMES.get(int(status), "MLA_STATUS_%d" % int(status))


def error_class(status):
    """The exception class raised for a non-OK status."""
    return _STATUS_CLASSES.get(int(status), MlaError)
