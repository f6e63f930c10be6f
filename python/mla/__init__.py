"""mla — the native binding of mla.c (Multi-head Latent Attention kernels).

Pure Python over the C ABI of include/mla.h (ctypes): no compilation at import, no torch C++
extension, so one wheel serves every Python 3 and PyTorch version. Neither numpy nor torch
is imported by ``import mla``; they are used when you pass their arrays.

    import mla
    out, lse = mla.decode(q, k_cache, block_table, cache_seqlens, causal=True)

libmla is found via $MLA_LIBRARY, else libmla.so in this package directory, else
<repo>/build/libmla.so; it is loaded on first use (LibraryNotFoundError names the paths tried).
Errors are exceptions carrying the C message of mla_last_error(): InvalidArgumentError
(also a ValueError), UnsupportedError (NotImplementedError), WorkspaceTooSmallError,
CudaError (RuntimeError), InternalError, OutOfMemoryError, all subclasses of MlaError."""

from ._version import __version__
from ._errors import (
    MlaError, InvalidArgumentError, UnsupportedError, WorkspaceTooSmallError, CudaError,
    InternalError, OutOfMemoryError, LibraryNotFoundError, SchedMetaMismatchError,
    MLA_OK, MLA_ERR_INVALID_ARGUMENT, MLA_ERR_UNSUPPORTED, MLA_ERR_WORKSPACE_TOO_SMALL,
    MLA_ERR_CUDA, MLA_ERR_INTERNAL, MLA_ERR_OUT_OF_MEMORY, status_name, error_class,
)
from ._lib import (
    MLA_DTYPE_INVALID, MLA_DTYPE_BF16, MLA_DTYPE_FP16, MLA_DTYPE_FP32, MLA_DTYPE_INT32,
    MLA_DTYPE_FP8_E4M3, MLA_DTYPE_UINT8, MLA_DEVICE_CPU, MLA_DECODE_REUSE_SCHEDULE,
    DecodeShape, DecodeArgs, candidate_paths, library_path,
)
from ._decode import Plan, cached_plan, clear_plan_cache, decode
from . import _lib


def version():
    """MLA_VERSION_CODE of the loaded library (major*10000 + minor*100 + patch)."""
    return int(_lib.lib().mla_version())


def version_string():
    """The loaded library's version as "major.minor.patch"."""
    c = version()
    return "%d.%d.%d" % (c // 10000, c // 100 % 100, c % 100)


def has_cuda():
    """True if the loaded library has CUDA kernels and a CUDA GPU is visible."""
    return bool(_lib.lib().mla_has_cuda())


def status_string(status):
    """mla_status_string() of the library ("MLA_ERR_INVALID_ARGUMENT", ...)."""
    s = _lib.lib().mla_status_string(int(status))
    return s.decode() if s else ""


def last_error():
    """mla_last_error() of this thread ("" if none)."""
    return _lib.last_error()


def dtype_size(dtype):
    """mla_dtype_size(): bytes of one element of an MLA_DTYPE_* (0 if unknown)."""
    return int(_lib.lib().mla_dtype_size(int(dtype)))


def is_available():
    """True if libmla can be loaded (never raises)."""
    try:
        _lib.lib()
        return True
    except MlaError:
        return False


__all__ = [
    "__version__", "version", "version_string", "has_cuda", "status_string", "status_name",
    "last_error", "dtype_size", "is_available", "library_path", "candidate_paths",
    "Plan", "cached_plan", "clear_plan_cache", "decode",
    "MlaError", "InvalidArgumentError", "UnsupportedError", "WorkspaceTooSmallError", "CudaError",
    "InternalError", "OutOfMemoryError", "LibraryNotFoundError", "SchedMetaMismatchError", "error_class",
    "MLA_OK", "MLA_ERR_INVALID_ARGUMENT", "MLA_ERR_UNSUPPORTED", "MLA_ERR_WORKSPACE_TOO_SMALL",
    "MLA_ERR_CUDA", "MLA_ERR_INTERNAL", "MLA_ERR_OUT_OF_MEMORY",
    "MLA_DTYPE_INVALID", "MLA_DTYPE_BF16", "MLA_DTYPE_FP16", "MLA_DTYPE_FP32", "MLA_DTYPE_INT32",
    "MLA_DTYPE_FP8_E4M3", "MLA_DTYPE_UINT8", "MLA_DEVICE_CPU", "MLA_DECODE_REUSE_SCHEDULE",
    "DecodeShape", "DecodeArgs",
]
