"""ctypes mirror of include/mla.h and the lazy loader of libmla.

Nothing here runs at import time except class definitions: the shared library is
located and loaded on first use, so ``import mla`` works on a machine without it and the
first call raises LibraryNotFoundError naming every path tried."""

import ctypes
import os
import threading

from . import _errors
from ._version import __version__

# ---- enums and macros (mla.h) -----------------------------------------------------------
MLA_DTYPE_INVALID = 0
MLA_DTYPE_BF16 = 1
MLA_DTYPE_FP16 = 2
MLA_DTYPE_FP32 = 3
MLA_DTYPE_INT32 = 4
MLA_DTYPE_FP8_E4M3 = 5
MLA_DTYPE_UINT8 = 6

MLA_DEVICE_CPU = -1
MLA_DECODE_REUSE_SCHEDULE = 1

DTYPE_NAMES = {
    MLA_DTYPE_BF16: "bf16", MLA_DTYPE_FP16: "fp16", MLA_DTYPE_FP32: "fp32",
    MLA_DTYPE_INT32: "int32", MLA_DTYPE_FP8_E4M3: "fp8_e4m3", MLA_DTYPE_UINT8: "uint8",
}

_c_status = ctypes.c_int   # enum mla_status
_c_dtype = ctypes.c_int    # enum mla_dtype
_c_int64_3 = ctypes.c_int64 * 3


class DecodeShape(ctypes.Structure):
    """mla_decode_shape."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("b", ctypes.c_int64),
        ("s_q", ctypes.c_int64),
        ("h_q", ctypes.c_int64),
        ("h_kv", ctypes.c_int64),
        ("d_qk", ctypes.c_int64),
        ("d_v", ctypes.c_int64),
        ("page_size", ctypes.c_int64),
        ("dtype", _c_dtype),
        ("causal", ctypes.c_int),
        ("cpu_threads", ctypes.c_int),
        ("kv_dtype", _c_dtype),                  # 0 = dtype; MLA_DTYPE_FP8_E4M3: dense FP8 cache
        ("q_dtype", _c_dtype),                   # 0 = dtype; MLA_DTYPE_FP8_E4M3 (FP8 cache only)
    ]


class DecodeArgs(ctypes.Structure):
    """mla_decode_args."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("q", ctypes.c_void_p),
        ("q_stride", _c_int64_3),
        ("k_cache", ctypes.c_void_p),
        ("num_pages", ctypes.c_int64),
        ("k_stride", _c_int64_3),
        ("block_table", ctypes.c_void_p),        # const int32_t *
        ("max_pages", ctypes.c_int64),
        ("block_table_stride", ctypes.c_int64),
        ("cache_seqlens", ctypes.c_void_p),      # const int32_t *
        ("cu_seqlens_q", ctypes.c_void_p),       # const int32_t *, optional
        ("out", ctypes.c_void_p),
        ("out_stride", _c_int64_3),
        ("lse", ctypes.c_void_p),                # float *
        ("lse_stride", _c_int64_3),
        ("softmax_scale", ctypes.c_float),
        ("flags", ctypes.c_uint32),
        ("descale_q", ctypes.c_void_p),          # const float *, [1]; FP8 q
        ("descale_k", ctypes.c_void_p),          # const float *, [1]; FP8 cache
    ]


_PROTOTYPES = {
    "mla_status_string": (ctypes.c_char_p, [_c_status]),
    "mla_last_error": (ctypes.c_char_p, []),
    "mla_version": (ctypes.c_int, []),
    "mla_has_cuda": (ctypes.c_int, []),
    "mla_dtype_size": (ctypes.c_size_t, [_c_dtype]),
    "mla_decode_shape_default": (DecodeShape, []),
    "mla_decode_args_default": (DecodeArgs, []),
    "mla_decode_plan_create": (_c_status, [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(DecodeShape), ctypes.c_int]),
    "mla_decode_plan_destroy": (_c_status, [ctypes.c_void_p]),
    "mla_decode_workspace_size": (_c_status, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]),
    "mla_decode_plan_info": (_c_status, [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]),
    "mla_decode_schedule": (_c_status, [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
    "mla_decode": (_c_status, [ctypes.c_void_p, ctypes.POINTER(DecodeArgs), ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]),
}

_lock = threading.Lock()
_lib = None
_lib_path = None


def package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def candidate_paths():
    """Where libmla is looked for, in order: $MLA_LIBRARY (only it, when set), then
    libmla.so in the mla package directory, then <repo>/build/libmla.so."""
    env = os.environ.get("MLA_LIBRARY")
    if env:
        return [env]
    here = package_dir()
    repo = os.path.dirname(os.path.dirname(here))   # <repo>/python/mla -> <repo>
    return [os.path.join(here, "libmla.so"), os.path.join(repo, "build", "libmla.so")]


def _major(version_str):
    return int(str(version_str).split(".")[0])


def _load():
    tried = []
    for path in candidate_paths():
        if not os.path.exists(path):
            tried.append("%s (not found)" % path)
            continue
        try:
            lib = ctypes.CDLL(os.path.abspath(path))
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
            continue
        missing = [name for name in _PROTOTYPES if not hasattr(lib, name)]
        if missing:
            tried.append("%s (lacks %s)" % (path, ", ".join(missing)))
            continue
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        code = int(lib.mla_version())
        if code // 10000 != _major(__version__):
            raise _errors.LibraryNotFoundError(
                "%s is libmla version %d.%d.%d but the mla Python package is %s: the major "
                "versions must match (rebuild the library or set MLA_LIBRARY)"
                % (path, code // 10000, code // 100 % 100, code % 100, __version__))
        # ABI check: the library's own struct sizes (its *_default() fill struct_size) must not
        # be smaller than ours, or it would reject every struct we pass.
        for fn_name, cls in (("mla_decode_shape_default", DecodeShape), ("mla_decode_args_default", DecodeArgs)):
            lib_size = int(getattr(lib, fn_name)().struct_size)
            if lib_size < ctypes.sizeof(cls):
                raise _errors.LibraryNotFoundError(
                    "%s: %s reports struct_size %d but this Python package's mirror is %d bytes "
                    "(library older than the package; rebuild it)"
                    % (path, fn_name, lib_size, ctypes.sizeof(cls)))
        return lib, os.path.abspath(path)
    raise _errors.LibraryNotFoundError(
        "libmla could not be loaded; tried: " + "; ".join(tried) +
        ". Build it with `make lib` in the mla.c repository, install the package with "
        "`pip install .`, or set MLA_LIBRARY to the path of libmla.so.")


def lib():
    """The loaded ctypes.CDLL (loads it on first use; raises LibraryNotFoundError)."""
    global _lib, _lib_path
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib, _lib_path = _load()
    return _lib


def library_path():
    """Absolute path of the loaded libmla (loads it if needed)."""
    lib()
    return _lib_path


def last_error():
    msg = lib().mla_last_error()
    return msg.decode("utf-8", "replace") if msg else ""


def check(status, function):
    """Raises the exception class of `status` with the C message; returns None on MLA_OK."""
    status = int(status)
    if status == _errors.MLA_OK:
        return
    msg = last_error() or "(no message)"
    raise _errors.error_class(status)(msg, status=status, function=function)


def new_shape():
    s = lib().mla_decode_shape_default()
    s.struct_size = ctypes.sizeof(DecodeShape)
    return s


def new_args():
    a = lib().mla_decode_args_default()
    a.struct_size = ctypes.sizeof(DecodeArgs)
    return a
