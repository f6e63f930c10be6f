"""DeepSeek Sparse Attention over mla.c's C ABI: the FP8 KV-cache formats (quantise /
dequantise), sparse decode on an FP8 cache and sparse prefill (include/mla.h, "FP8 KV-cache
formats", "Sparse MLA decode", "Sparse MLA prefill").

    import mla.sparse as sp
    k_fp8 = sp.quantize_k_cache(k_bf16, "V32")                  # [pages, page, 1, 656]
    out, lse = sp.sparse_decode(q, k_fp8, indices, attn_sink=sink)
    out, max_logits, lse = sp.sparse_prefill(q, kv, indices, sm_scale)

CPU tensors (torch, or numpy with bf16 as uint16 / ml_dtypes) run the CPU reference of
libmla; CUDA torch tensors run the sparse GPU kernels (compute capability 9.0; other GPUs get
mla.UnsupportedError) on the tensors' device and torch's current stream, with a workspace
cached per plan and stream. Semantics: spec §3 and mla.h."""

import collections
import ctypes
import sys
import threading

from . import _lib
from ._errors import InvalidArgumentError, LibraryNotFoundError
from ._tensor import wrap

FORMAT_V32 = 1
FORMAT_MODEL1 = 2
SPARSE_DECODE_REUSE_SCHEDULE = 1

# format -> (d_qk, d_nope, tile, bytes_per_token)
FORMATS = {FORMAT_V32: (576, 512, 128, 656), FORMAT_MODEL1: (512, 448, 64, 584)}
_FORMAT_NAMES = {"V32": FORMAT_V32, "V32_FP8SPARSE": FORMAT_V32, "MODEL1": FORMAT_MODEL1,
                 "MODEL1_FP8SPARSE": FORMAT_MODEL1}

_i64_2 = ctypes.c_int64 * 2
_i64_3 = ctypes.c_int64 * 3


class SparseDecodeShape(ctypes.Structure):
    """mla_sparse_decode_shape."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("b", ctypes.c_int64), ("s_q", ctypes.c_int64), ("h_q", ctypes.c_int64),
        ("h_kv", ctypes.c_int64), ("d_qk", ctypes.c_int64), ("d_v", ctypes.c_int64),
        ("topk", ctypes.c_int64), ("page_size", ctypes.c_int64),
        ("format", ctypes.c_int), ("cpu_threads", ctypes.c_int),
        ("extra_topk", ctypes.c_int64), ("extra_page_size", ctypes.c_int64),
    ]


class SparseDecodeArgs(ctypes.Structure):
    """mla_sparse_decode_args."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("q", ctypes.c_void_p), ("q_stride", _i64_3),
        ("k_cache", ctypes.c_void_p), ("num_pages", ctypes.c_int64),
        ("k_page_stride_bytes", ctypes.c_int64),
        ("indices", ctypes.c_void_p), ("indices_stride", _i64_2),
        ("topk_length", ctypes.c_void_p), ("attn_sink", ctypes.c_void_p),
        ("extra_k_cache", ctypes.c_void_p), ("extra_num_pages", ctypes.c_int64),
        ("extra_k_page_stride_bytes", ctypes.c_int64),
        ("extra_indices", ctypes.c_void_p), ("extra_indices_stride", _i64_2),
        ("extra_topk_length", ctypes.c_void_p),
        ("out", ctypes.c_void_p), ("out_stride", _i64_3),
        ("lse", ctypes.c_void_p), ("lse_stride", _i64_3),
        ("softmax_scale", ctypes.c_float), ("flags", ctypes.c_uint32),
    ]


class SparsePrefillArgs(ctypes.Structure):
    """mla_sparse_prefill_args."""
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("s_q", ctypes.c_int64), ("s_kv", ctypes.c_int64), ("h_q", ctypes.c_int64),
        ("h_kv", ctypes.c_int64), ("d_qk", ctypes.c_int64), ("d_v", ctypes.c_int64),
        ("topk", ctypes.c_int64),
        ("q", ctypes.c_void_p), ("q_stride", _i64_2),
        ("kv", ctypes.c_void_p), ("kv_stride", _i64_2),
        ("indices", ctypes.c_void_p), ("indices_stride", _i64_2),
        ("topk_length", ctypes.c_void_p), ("attn_sink", ctypes.c_void_p),
        ("out", ctypes.c_void_p), ("out_stride", _i64_2),
        ("max_logits", ctypes.c_void_p), ("max_logits_stride", _i64_2),
        ("lse", ctypes.c_void_p), ("lse_stride", _i64_2),
        ("softmax_scale", ctypes.c_float), ("cpu_threads", ctypes.c_int),
    ]


_vp, _i64, _int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_PROTOTYPES = {
    "mla_fp8_format_info": (_int, [_int, _vp, _vp, _vp, _vp]),
    "mla_fp8_quantize_cache": (_int, [_int, _i64, _i64, _vp, _i64, _i64, _vp, _i64, _int, _vp]),
    "mla_fp8_dequantize_cache": (_int, [_int, _i64, _i64, _vp, _i64, _vp, _i64, _i64, _int, _vp]),
    "mla_sparse_decode_shape_default": (SparseDecodeShape, []),
    "mla_sparse_decode_args_default": (SparseDecodeArgs, []),
    "mla_sparse_decode_plan_create": (_int, [ctypes.POINTER(_vp), ctypes.POINTER(SparseDecodeShape), _int]),
    "mla_sparse_decode_plan_destroy": (_int, [_vp]),
    "mla_sparse_decode_workspace_size": (_int, [_vp, ctypes.POINTER(ctypes.c_size_t)]),
    "mla_sparse_decode": (_int, [_vp, ctypes.POINTER(SparseDecodeArgs), _vp, ctypes.c_size_t, _vp]),
    "mla_sparse_prefill_args_default": (SparsePrefillArgs, []),
    "mla_sparse_prefill": (_int, [ctypes.POINTER(SparsePrefillArgs), _int, _vp, ctypes.c_size_t, _vp]),
}

_bind_lock = threading.Lock()
_bound = None


def _clib():
    """libmla with the sparse prototypes bound (LibraryNotFoundError for an older library)."""
    global _bound
    if _bound is None:
        with _bind_lock:
            if _bound is None:
                lib = _lib.lib()
                missing = [n for n in _PROTOTYPES if not hasattr(lib, n)]
                if missing:
                    raise LibraryNotFoundError(
                        "%s lacks the sparse attention entry points (%s): rebuild libmla"
                        % (_lib.library_path(), ", ".join(missing)))
                for name, (restype, argtypes) in _PROTOTYPES.items():
                    fn = getattr(lib, name)
                    fn.restype = restype
                    fn.argtypes = argtypes
                for fn_name, cls in (("mla_sparse_decode_shape_default", SparseDecodeShape),
                                     ("mla_sparse_decode_args_default", SparseDecodeArgs),
                                     ("mla_sparse_prefill_args_default", SparsePrefillArgs)):
                    size = int(getattr(lib, fn_name)().struct_size)
                    if size < ctypes.sizeof(cls):
                        raise LibraryNotFoundError(
                            "%s: %s reports struct_size %d but this package's mirror is %d bytes "
                            "(library older than the package; rebuild it)"
                            % (_lib.library_path(), fn_name, size, ctypes.sizeof(cls)))
                _bound = lib
    return _bound


def format_code(fmt):
    """MLA_FP8_FORMAT_* of an int, a name ("V32", "MODEL1", case-insensitive) or an enum whose
    name is one of those (FlashMLA's FP8KVCacheLayout.V32_FP8Sparse / MODEL1_FP8Sparse)."""
    if isinstance(fmt, bool):
        raise InvalidArgumentError("unknown FP8 cache format %r (use 'V32' or 'MODEL1')" % (fmt,))
    if isinstance(fmt, int):
        if fmt in FORMATS:
            return fmt
        raise InvalidArgumentError("unknown FP8 cache format %d (use 1 = V32 or 2 = MODEL1)" % fmt)
    name = getattr(fmt, "name", fmt)
    if isinstance(name, str) and name.upper() in _FORMAT_NAMES:
        return _FORMAT_NAMES[name.upper()]
    raise InvalidArgumentError("unknown FP8 cache format %r (use 'V32' or 'MODEL1')" % (fmt,))


def format_info(fmt):
    """(d_qk, d_nope, tile, bytes_per_token) of a format, from the C library."""
    code = format_code(fmt)
    vals = [ctypes.c_int64() for _ in range(4)]
    _lib.check(_clib().mla_fp8_format_info(code, *[ctypes.byref(v) for v in vals]), "mla_fp8_format_info")
    return tuple(int(v.value) for v in vals)


def _format_of_bytes(nbytes):
    for code, info in FORMATS.items():
        if info[3] == nbytes:
            return code
    raise InvalidArgumentError("the last dim of an FP8 cache must be 656 (V32) or 584 (MODEL1) bytes (got %d)" % nbytes)


# ---- helpers ---------------------------------------------------------------------------------

_BYTE_DTYPES = ("uint8", "int8", "float8_e4m3fn")


def _need(a, ndim, what):
    if a.ndim != ndim:
        raise InvalidArgumentError("%s must have %d dimensions %s (got shape %s)" % (a.name, ndim, what, list(a.shape)))


def _need_dtype(a, names, what):
    if a.dtype_str not in names:
        raise InvalidArgumentError("%s must be %s (got %s)" % (a.name, what, a.dtype_str))


def _need_last_contiguous(a):
    if a.shape[-1] > 1 and a.strides[-1] != 1:
        raise InvalidArgumentError("%s must be contiguous in its last dimension (stride %d)" % (a.name, a.strides[-1]))


def _need_contiguous_1d(a, n, what):
    _need(a, 1, what)
    if a.shape[0] != n:
        raise InvalidArgumentError("%s must have %d entries %s (got %d)" % (a.name, n, what, a.shape[0]))
    if n > 1 and a.strides[0] != 1:
        raise InvalidArgumentError("%s must be contiguous (stride %d)" % (a.name, a.strides[0]))


def _same_device(ref, *arrs):
    for a in arrs:
        if a is not None and a.device != ref.device:
            raise InvalidArgumentError("%s is on %s but %s is on %s"
                                       % (a.name, a.describe_device(), ref.name, ref.describe_device()))


def _bf16(a):
    if a.dtype != _lib.MLA_DTYPE_BF16:
        hint = " (numpy: pass uint16 arrays holding bfloat16, or ml_dtypes.bfloat16)" if a.kind == "numpy" else ""
        raise InvalidArgumentError("%s must be bfloat16 (got %s)%s" % (a.name, a.dtype_str, hint))


def _wrap_opt(x, name, bf16=False):
    return None if x is None else wrap(x, name, bf16)


def _empty(like, shape, kind, zero=False):
    """A new tensor/array on like's device: kind 'bf16' (like's bf16 representation), 'f32',
    'u8' (raw bytes; torch: float8_e4m3fn when `kind == 'fp8'`)."""
    if like.kind == "torch":
        import torch
        dt = {"bf16": torch.bfloat16, "f32": torch.float32, "u8": torch.uint8,
              "fp8": getattr(torch, "float8_e4m3fn", torch.uint8)}[kind]
        return (torch.zeros if zero else torch.empty)(shape, dtype=dt, device=like.obj.device)
    import numpy as np
    dt = {"bf16": like.obj.dtype, "f32": np.float32, "u8": np.uint8, "fp8": np.uint8}[kind]
    return (np.zeros if zero else np.empty)(shape, dtype=dt)


def _strided_view(buf, shape, strides):
    """A view of `buf` (torch tensor or numpy array, 1-byte elements) with element strides."""
    if hasattr(buf, "as_strided"):
        return buf.as_strided(shape, strides)
    import numpy as np
    return np.lib.stride_tricks.as_strided(buf, shape=shape, strides=tuple(s * buf.itemsize for s in strides))


# ---- FP8 cache quantise / dequantise --------------------------------------------------------

def quantize_k_cache(k_cache, fmt, page_stride_bytes=None, out=None):
    """Quantises a bf16 cache [num_pages, page_size, 1, d_qk] (d_qk 576 for V32, 512 for MODEL1;
    a 3-D [num_pages, page_size, d_qk] is accepted too) into `fmt`, byte-exact with FlashMLA's
    tests/quant.py. Returns a [num_pages, page_size, 1, bytes_per_token] tensor (torch:
    float8_e4m3fn, numpy: uint8) whose page stride is page_stride_bytes (default page_size *
    bytes_per_token); for MODEL1 it is a view of the per-page layout (stride(1) = 584, the scales
    after page_size * 576 bytes). `out` may be such a tensor to write into."""
    code = format_code(fmt)
    d_qk, _, _, bpt = FORMATS[code]
    ka = wrap(k_cache, "k_cache", True)
    if ka.ndim == 3:
        ka.shape, ka.strides = (ka.shape[0], ka.shape[1], 1, ka.shape[2]), (ka.strides[0], ka.strides[1], 0, ka.strides[2])
    _need(ka, 4, "[num_pages, page_size, 1, d_qk]")
    _bf16(ka)
    pages, ps, h, d = ka.shape
    if h != 1:
        raise InvalidArgumentError("k_cache must have 1 head (h_kv = 1) for the FP8 formats (got %d)" % h)
    if d != d_qk:
        raise InvalidArgumentError("k_cache has %d dims per token but format %s needs %d"
                                   % (d, "V32" if code == FORMAT_V32 else "MODEL1", d_qk))
    _need_last_contiguous(ka)
    if out is None:
        stride = ps * bpt if page_stride_bytes is None else int(page_stride_bytes)
        if stride < ps * bpt:
            raise InvalidArgumentError("page_stride_bytes (%d) must be >= page_size * %d = %d" % (stride, bpt, ps * bpt))
        buf = _empty(ka, (pages * stride,), "fp8")
        out = _strided_view(buf, (pages, ps, 1, bpt), (stride, bpt, bpt, 1))
    oa = wrap(out, "out")
    _need(oa, 4, "[num_pages, page_size, 1, bytes_per_token]")
    _need_dtype(oa, _BYTE_DTYPES, "uint8, int8 or float8_e4m3fn (raw bytes)")
    if oa.shape != (pages, ps, 1, bpt) or (ps > 1 and oa.strides[1] != bpt):
        raise InvalidArgumentError("out must be [%d, %d, 1, %d] with stride(1) = %d (got shape %s, strides %s)"
                                   % (pages, ps, bpt, bpt, list(oa.shape), list(oa.strides)))
    _same_device(ka, oa)
    _lib.check(_clib().mla_fp8_quantize_cache(code, pages, ps, ka.ptr, ka.strides[0], ka.strides[1],
                                              oa.ptr, oa.strides[0] if pages > 1 else ps * bpt,
                                              ka.device, None),
               "mla_fp8_quantize_cache")
    return out


def dequantize_k_cache(fp8_cache, fmt=None, out=None):
    """The bf16 cache [num_pages, page_size, 1, d_qk] the sparse kernels see for an FP8 cache
    [num_pages, page_size, 1, bytes_per_token] (format from the last dim unless given):
    V32 bf16(e4m3 * bf16(scale)), MODEL1 bf16(e4m3 * 2^(e - 127)), RoPE as stored."""
    fa = wrap(fp8_cache, "fp8_cache")
    _need(fa, 4, "[num_pages, page_size, 1, bytes_per_token]")
    _need_dtype(fa, _BYTE_DTYPES, "uint8, int8 or float8_e4m3fn (raw bytes)")
    pages, ps, h, nb = fa.shape
    code = _format_of_bytes(nb) if fmt is None else format_code(fmt)
    d_qk, _, _, bpt = FORMATS[code]
    if h != 1 or nb != bpt or (ps > 1 and fa.strides[1] != bpt):
        raise InvalidArgumentError("fp8_cache must be [num_pages, page_size, 1, %d] with stride(1) = %d (got shape %s, strides %s)"
                                   % (bpt, bpt, list(fa.shape), list(fa.strides)))
    _need_last_contiguous(fa)
    if out is None:
        if fa.kind == "torch":
            out = _empty(fa, (pages, ps, 1, d_qk), "bf16")
        else:
            import numpy as np
            out = np.empty((pages, ps, 1, d_qk), dtype=np.uint16)
    oa = wrap(out, "out", True)
    _bf16(oa)
    if oa.shape != (pages, ps, 1, d_qk):
        raise InvalidArgumentError("out must have shape %s (got %s)" % ([pages, ps, 1, d_qk], list(oa.shape)))
    _need_last_contiguous(oa)
    _same_device(fa, oa)
    _lib.check(_clib().mla_fp8_dequantize_cache(code, pages, ps, fa.ptr, fa.strides[0] if pages > 1 else ps * bpt,
                                                oa.ptr, oa.strides[0], oa.strides[1], fa.device, None),
               "mla_fp8_dequantize_cache")
    return out


# ---- sparse decode ---------------------------------------------------------------------------

class SparseDecodePlan(object):
    """One mla_sparse_decode_plan_t (a shape class on one device). Immutable, thread-safe."""

    def __init__(self, b, s_q, h_q, topk, page_size, fmt, extra_topk=0, extra_page_size=64,
                 device=_lib.MLA_DEVICE_CPU, cpu_threads=0):
        self._handle = None
        lib = _clib()
        code = format_code(fmt)
        s = lib.mla_sparse_decode_shape_default()
        s.struct_size = ctypes.sizeof(SparseDecodeShape)
        s.b, s.s_q, s.h_q, s.h_kv = int(b), int(s_q), int(h_q), 1
        s.d_qk, s.d_v, s.topk, s.page_size = FORMATS[code][0], 512, int(topk), int(page_size)
        s.format, s.cpu_threads = code, int(cpu_threads)
        s.extra_topk, s.extra_page_size = int(extra_topk), int(extra_page_size)
        handle = ctypes.c_void_p()
        _lib.check(lib.mla_sparse_decode_plan_create(ctypes.byref(handle), ctypes.byref(s), int(device)),
                   "mla_sparse_decode_plan_create")
        self._handle, self._lib, self.shape, self.device = handle, lib, s, int(device)
        ws = ctypes.c_size_t(0)
        _lib.check(lib.mla_sparse_decode_workspace_size(handle, ctypes.byref(ws)), "mla_sparse_decode_workspace_size")
        self.workspace_size = int(ws.value)
        self._workspaces = {}   # stream handle -> torch uint8 tensor (GPU plans)
        self._ws_lock = threading.Lock()
        self._tls = threading.local()   # CPU plans: this thread's workspace

    def cached_workspace(self, stream_handle, torch_device):
        """A torch uint8 workspace on this plan's device, reused for calls on the same stream
        (calls on one stream never overlap). None when the plan needs no workspace."""
        if self.workspace_size == 0:
            return None
        with self._ws_lock:
            ws = self._workspaces.get(stream_handle)
            if ws is None:
                import torch
                ws = torch.empty(self.workspace_size, dtype=torch.uint8, device=torch_device)
                self._workspaces[stream_handle] = ws
        return ws

    def cpu_workspace(self):
        """CPU plans: (address, bytes) of this thread's workspace (ctypes memory, made on the
        thread's first call and kept with the plan): the CPU path's key-split partial rows,
        optional in the C API; one per thread, since concurrent calls may not share one."""
        from ._decode import thread_workspace
        return thread_workspace(self._tls, self.workspace_size)

    @property
    def handle(self):
        if self._handle is None:
            raise InvalidArgumentError("this SparseDecodePlan has been closed")
        return self._handle

    def close(self):
        h, self._handle = self._handle, None
        if h is not None:
            _lib.check(self._lib.mla_sparse_decode_plan_destroy(h), "mla_sparse_decode_plan_destroy")

    def __del__(self):
        try:
            h, self._handle = self._handle, None
            if h is not None:
                self._lib.mla_sparse_decode_plan_destroy(h)
        except Exception:
            pass


_PLAN_CACHE_SIZE = 32
_plans = collections.OrderedDict()
_plans_lock = threading.Lock()


def cached_sparse_plan(*key):
    """A SparseDecodePlan(*key) from a small LRU cache."""
    with _plans_lock:
        p = _plans.get(key)
        if p is not None and p._handle is not None:
            _plans.move_to_end(key)
            return p
    p = SparseDecodePlan(*key)
    with _plans_lock:
        _plans[key] = p
        while len(_plans) > _PLAN_CACHE_SIZE:
            _plans.popitem(last=False)
    return p


def _cache_arr(x, name):
    a = wrap(x, name)
    _need(a, 4, "[num_pages, page_size, 1, bytes_per_token]")
    _need_dtype(a, _BYTE_DTYPES, "uint8, int8 or float8_e4m3fn (raw FP8 cache bytes)")
    pages, ps, h, nb = a.shape
    if h != 1:
        raise InvalidArgumentError("%s must have 1 KV head (got %d): sparse decode is MQA" % (name, h))
    if ps > 1 and a.strides[1] != nb:
        raise InvalidArgumentError("%s: the tokens of a page must be contiguous (stride(1) = %d, want %d)"
                                   % (name, a.strides[1], nb))
    _need_last_contiguous(a)
    return a


def _page_stride(a):
    return a.strides[0] if a.shape[0] > 1 else a.shape[1] * a.shape[3]


def sparse_decode(q, k_cache, indices, topk_length=None, attn_sink=None, extra_k_cache=None,
                  extra_indices=None, extra_topk_length=None, softmax_scale=None, out=None, lse=None,
                  fmt=None, workspace=None, stream=None, reuse_schedule=False, cpu_threads=0):
    """Sparse MLA decode on an FP8 cache (FlashMLA's flash_mla_with_kvcache with indices).

    q [b, s_q, h_q, d_qk] bf16; k_cache [num_pages, page_size, 1, 656 | 584] FP8 bytes (uint8,
    int8 or float8_e4m3fn; the format follows from the last dim, or `fmt`); indices [b, s_q, topk]
    int32 flat positions page * page_size + row (anything outside the cache is masked);
    topk_length [b] int32; attn_sink [h_q] float32; extra_k_cache / extra_indices [b, s_q,
    extra_topk] / extra_topk_length [b]: a second cache in the same softmax. softmax_scale
    None (or <= 0): d_qk ** -0.5. Returns out [b, s_q, h_q, 512] bf16 and lse [b, h_q, s_q]
    float32 (a transposed view of a [b, s_q, h_q] buffer, as FlashMLA returns it)."""
    qa = wrap(q, "q", True)
    ka = _cache_arr(k_cache, "k_cache")
    ia = wrap(indices, "indices")
    tl = _wrap_opt(topk_length, "topk_length")
    sk = _wrap_opt(attn_sink, "attn_sink")
    ea = _cache_arr(extra_k_cache, "extra_k_cache") if extra_k_cache is not None else None
    ei = _wrap_opt(extra_indices, "extra_indices")
    et = _wrap_opt(extra_topk_length, "extra_topk_length")
    _need(qa, 4, "[b, s_q, h_q, d_qk]")
    _bf16(qa)
    b, s_q, h_q, d_qk = qa.shape
    code = _format_of_bytes(ka.shape[3]) if fmt is None else format_code(fmt)
    if FORMATS[code][3] != ka.shape[3]:
        raise InvalidArgumentError("k_cache has %d bytes per token but its format needs %d" % (ka.shape[3], FORMATS[code][3]))
    if d_qk != FORMATS[code][0]:
        raise InvalidArgumentError("q has d_qk %d but the %s cache format has %d dims per token"
                                   % (d_qk, "V32" if code == FORMAT_V32 else "MODEL1", FORMATS[code][0]))
    _need(ia, 3, "[b, s_q, topk]")
    _need_dtype(ia, ("int32",), "int32")
    if ia.shape[:2] != (b, s_q):
        raise InvalidArgumentError("indices must be [b, s_q, topk] = [%d, %d, topk] (got %s)" % (b, s_q, list(ia.shape)))
    topk = ia.shape[2]
    for a in (qa, ia):
        _need_last_contiguous(a)
    if tl is not None:
        _need_dtype(tl, ("int32",), "int32")
        _need_contiguous_1d(tl, b, "(one per request)")
    if sk is not None:
        _need_dtype(sk, ("float32",), "float32")
        _need_contiguous_1d(sk, h_q, "(one per query head)")
    if (ea is None) != (ei is None):
        raise InvalidArgumentError("extra_k_cache and extra_indices must be given together")
    if et is not None and ea is None:
        raise InvalidArgumentError("extra_topk_length needs extra_k_cache and extra_indices")
    extra_topk, extra_ps = 0, 64
    if ea is not None:
        if ea.shape[3] != ka.shape[3]:
            raise InvalidArgumentError("extra_k_cache must have the format of k_cache (%d bytes per token, got %d)"
                                       % (ka.shape[3], ea.shape[3]))
        _need(ei, 3, "[b, s_q, extra_topk]")
        _need_dtype(ei, ("int32",), "int32")
        if ei.shape[:2] != (b, s_q):
            raise InvalidArgumentError("extra_indices must be [b, s_q, extra_topk] = [%d, %d, extra_topk] (got %s)"
                                       % (b, s_q, list(ei.shape)))
        _need_last_contiguous(ei)
        extra_topk, extra_ps = ei.shape[2], ea.shape[1]
        if et is not None:
            _need_dtype(et, ("int32",), "int32")
            _need_contiguous_1d(et, b, "(one per request)")
    _same_device(qa, ka, ia, tl, sk, ea, ei, et)
    device = qa.device
    if device != _lib.MLA_DEVICE_CPU and qa.kind != "torch":
        raise InvalidArgumentError("CUDA inputs must be torch tensors")

    plan = cached_sparse_plan(b, s_q, h_q, topk, ka.shape[1], code, extra_topk, extra_ps, device, int(cpu_threads))

    if out is None:
        out = _empty(qa, (b, s_q, h_q, 512), "bf16")
    oa = wrap(out, "out", True)
    _bf16(oa)
    if oa.shape != (b, s_q, h_q, 512):
        raise InvalidArgumentError("out must have shape %s (got %s)" % ([b, s_q, h_q, 512], list(oa.shape)))
    if lse is None:
        lse_buf = _empty(qa, (b, s_q, h_q), "f32")
        lse = lse_buf.transpose(1, 2) if hasattr(lse_buf, "as_strided") else lse_buf.transpose(0, 2, 1)
    la = wrap(lse, "lse")
    _need_dtype(la, ("float32",), "float32")
    if la.shape != (b, h_q, s_q):
        raise InvalidArgumentError("lse must have shape %s (got %s)" % ([b, h_q, s_q], list(la.shape)))
    _need_last_contiguous(oa)
    _same_device(qa, oa, la)

    ws_ptr, ws_bytes, st = 0, 0, None
    if device != _lib.MLA_DEVICE_CPU:
        from ._decode import _stream_handle, _workspace_ptr
        st = _stream_handle(stream, device, True)
        if workspace is None:   # one cached workspace per (plan, stream); the C call never allocates
            workspace = plan.cached_workspace(st, qa.obj.device)
        ws_ptr, ws_bytes = _workspace_ptr(workspace, device)
    elif stream not in (None, 0):
        raise InvalidArgumentError("a CPU call takes no stream (got %r)" % (stream,))
    elif workspace is not None:   # CPU: optional (the key splits' partial rows)
        from ._decode import _workspace_ptr
        ws_ptr, ws_bytes = _workspace_ptr(workspace, device)
    elif plan.workspace_size > 0:
        ws_ptr, ws_bytes = plan.cpu_workspace()

    a = plan._lib.mla_sparse_decode_args_default()
    a.struct_size = ctypes.sizeof(SparseDecodeArgs)
    a.q, a.q_stride[:] = qa.ptr, qa.strides[:3]
    a.k_cache, a.num_pages, a.k_page_stride_bytes = ka.ptr, ka.shape[0], _page_stride(ka)
    a.indices, a.indices_stride[:] = ia.ptr, ia.strides[:2]
    a.topk_length = tl.ptr if tl is not None else None
    a.attn_sink = sk.ptr if sk is not None else None
    if ea is not None:
        a.extra_k_cache, a.extra_num_pages, a.extra_k_page_stride_bytes = ea.ptr, ea.shape[0], _page_stride(ea)
        a.extra_indices, a.extra_indices_stride[:] = ei.ptr, ei.strides[:2]
        a.extra_topk_length = et.ptr if et is not None else None
    a.out, a.out_stride[:] = oa.ptr, oa.strides[:3]
    a.lse, a.lse_stride[:] = la.ptr, la.strides[:3]
    a.softmax_scale = 0.0 if softmax_scale is None else float(softmax_scale)
    a.flags = SPARSE_DECODE_REUSE_SCHEDULE if reuse_schedule else 0
    _lib.check(plan._lib.mla_sparse_decode(plan.handle, ctypes.byref(a), ctypes.c_void_p(ws_ptr or None),
                                           ctypes.c_size_t(ws_bytes), ctypes.c_void_p(st)),
               "mla_sparse_decode")
    return out, lse


# ---- sparse prefill --------------------------------------------------------------------------

def sparse_prefill(q, kv, indices, sm_scale, d_v=512, attn_sink=None, topk_length=None, out=None,
                   max_logits=None, lse=None, stream=None, cpu_threads=0):
    """Sparse MLA prefill (FlashMLA's flash_mla_sparse_fwd).

    q [s_q, h_q, d_qk] bf16; kv [s_kv, h_kv, d_qk] bf16 (d_qk 576 or 512; h_kv divides h_q);
    indices [s_q, h_kv, topk] int32 (< 0 or >= s_kv: masked); sm_scale required; d_v 512;
    attn_sink [h_q] float32; topk_length [s_q] int32 (per query token). Returns (out [s_q,
    h_q, 512] bf16, max_logits [s_q, h_q] float32, lse [s_q, h_q] float32), natural log; an
    empty row gives out 0, max_logits -inf, lse +inf."""
    if sm_scale is None:
        raise InvalidArgumentError("sm_scale is required (sparse prefill has no default scale)")
    qa = wrap(q, "q", True)
    ka = wrap(kv, "kv", True)
    ia = wrap(indices, "indices")
    sk = _wrap_opt(attn_sink, "attn_sink")
    tl = _wrap_opt(topk_length, "topk_length")
    _need(qa, 3, "[s_q, h_q, d_qk]")
    _need(ka, 3, "[s_kv, h_kv, d_qk]")
    _need(ia, 3, "[s_q, h_kv, topk]")
    _bf16(qa)
    _bf16(ka)
    _need_dtype(ia, ("int32",), "int32")
    s_q, h_q, d_qk = qa.shape
    s_kv, h_kv, d_k = ka.shape
    if d_k != d_qk:
        raise InvalidArgumentError("kv head dim (%d) must equal q head dim (%d)" % (d_k, d_qk))
    if ia.shape[:2] != (s_q, h_kv):
        raise InvalidArgumentError("indices must be [s_q, h_kv, topk] = [%d, %d, topk] (got %s)" % (s_q, h_kv, list(ia.shape)))
    for a in (qa, ka, ia):
        _need_last_contiguous(a)
    if sk is not None:
        _need_dtype(sk, ("float32",), "float32")
        _need_contiguous_1d(sk, h_q, "(one per query head)")
    if tl is not None:
        _need_dtype(tl, ("int32",), "int32")
        _need_contiguous_1d(tl, s_q, "(one per query token)")
    _same_device(qa, ka, ia, sk, tl)
    if out is None:
        out = _empty(qa, (s_q, h_q, int(d_v)), "bf16")
    if max_logits is None:
        max_logits = _empty(qa, (s_q, h_q), "f32")
    if lse is None:
        lse = _empty(qa, (s_q, h_q), "f32")
    oa, ma, la = wrap(out, "out", True), wrap(max_logits, "max_logits"), wrap(lse, "lse")
    _bf16(oa)
    _need_dtype(ma, ("float32",), "float32")
    _need_dtype(la, ("float32",), "float32")
    if oa.shape != (s_q, h_q, int(d_v)):
        raise InvalidArgumentError("out must have shape %s (got %s)" % ([s_q, h_q, int(d_v)], list(oa.shape)))
    for a in (ma, la):
        if a.shape != (s_q, h_q):
            raise InvalidArgumentError("%s must have shape %s (got %s)" % (a.name, [s_q, h_q], list(a.shape)))
    _need_last_contiguous(oa)
    _same_device(qa, oa, ma, la)
    st = None
    if qa.device != _lib.MLA_DEVICE_CPU:
        from ._decode import _stream_handle
        st = _stream_handle(stream, qa.device, True)

    lib = _clib()
    a = lib.mla_sparse_prefill_args_default()
    a.struct_size = ctypes.sizeof(SparsePrefillArgs)
    a.s_q, a.s_kv, a.h_q, a.h_kv, a.d_qk, a.d_v, a.topk = s_q, s_kv, h_q, h_kv, d_qk, int(d_v), ia.shape[2]
    a.q, a.q_stride[:] = qa.ptr, qa.strides[:2]
    a.kv, a.kv_stride[:] = ka.ptr, ka.strides[:2]
    a.indices, a.indices_stride[:] = ia.ptr, ia.strides[:2]
    a.topk_length = tl.ptr if tl is not None else None
    a.attn_sink = sk.ptr if sk is not None else None
    a.out, a.out_stride[:] = oa.ptr, oa.strides[:2]
    a.max_logits, a.max_logits_stride[:] = ma.ptr, ma.strides[:2]
    a.lse, a.lse_stride[:] = la.ptr, la.strides[:2]
    a.softmax_scale = float(sm_scale)
    a.cpu_threads = int(cpu_threads)
    _lib.check(lib.mla_sparse_prefill(ctypes.byref(a), qa.device, None, 0, ctypes.c_void_p(st)), "mla_sparse_prefill")
    return out, max_logits, lse


__all__ = [
    "FORMAT_V32", "FORMAT_MODEL1", "FORMATS", "format_code", "format_info",
    "quantize_k_cache", "dequantize_k_cache", "SparseDecodePlan", "cached_sparse_plan",
    "sparse_decode", "sparse_prefill",
    "SparseDecodeShape", "SparseDecodeArgs", "SparsePrefillArgs",
]
