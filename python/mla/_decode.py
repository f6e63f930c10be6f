"""Dense MLA decode: Plan (one mla_decode_plan_t), a plan cache, and decode()."""

import collections
import ctypes
import sys
import threading

from . import _lib
from ._errors import InvalidArgumentError
from ._tensor import wrap

_DTYPE_ALIASES = {
    "bf16": _lib.MLA_DTYPE_BF16, "bfloat16": _lib.MLA_DTYPE_BF16,
    "fp16": _lib.MLA_DTYPE_FP16, "float16": _lib.MLA_DTYPE_FP16, "half": _lib.MLA_DTYPE_FP16,
}
_FP8_ALIASES = ("fp8", "fp8_e4m3", "float8_e4m3fn", "e4m3")


def _dtype_code(dtype):
    """mla dtype code of an int, a name ("bf16", "fp16", ...), a torch dtype or a numpy dtype."""
    if isinstance(dtype, int):
        return dtype
    if isinstance(dtype, str):
        key = dtype.lower().replace("torch.", "")
        if key in _DTYPE_ALIASES:
            return _DTYPE_ALIASES[key]
        raise InvalidArgumentError("unknown dtype %r (use 'bf16' or 'fp16')" % (dtype,))
    name = str(dtype).replace("torch.", "")
    if name in _DTYPE_ALIASES:
        return _DTYPE_ALIASES[name]
    raise InvalidArgumentError("unsupported dtype %r (use 'bf16' or 'fp16')" % (dtype,))


def _fp8_code(dtype, name):
    """kv_dtype / q_dtype argument: None (from the tensor), or FP8 ("fp8", "float8_e4m3fn",
    MLA_DTYPE_FP8_E4M3, torch.float8_e4m3fn) meaning "uint8 data holds e4m3 codes"."""
    if dtype is None:
        return None
    if dtype == _lib.MLA_DTYPE_FP8_E4M3 or str(dtype).lower().replace("torch.", "") in _FP8_ALIASES:
        return _lib.MLA_DTYPE_FP8_E4M3
    raise InvalidArgumentError("%s=%r: only FP8 e4m3 ('fp8') can be named here (16-bit dtypes come from the "
                               "tensor)" % (name, dtype))


def _device_code(device):
    """MLA_DEVICE_CPU for None/"cpu"/-1, else the CUDA ordinal (int, "cuda:N", torch.device)."""
    if device is None:
        return _lib.MLA_DEVICE_CPU
    if isinstance(device, int):
        return device
    s = str(device)
    if s == "cpu":
        return _lib.MLA_DEVICE_CPU
    if s.startswith("cuda"):
        if ":" in s:
            return int(s.split(":", 1)[1])
        torch = sys.modules.get("torch")
        return int(torch.cuda.current_device()) if torch is not None else 0
    raise InvalidArgumentError("unsupported device %r (use 'cpu', a CUDA ordinal or 'cuda:N')" % (device,))


class Plan(object):
    """One mla_decode_plan_t: a dense-decode shape class on one device (CPU or CUDA ordinal).

    Plans are immutable and thread-safe; free one with close(), a `with` block, or let the
    garbage collector do it. `mla.decode` keeps a small cache of plans (see cached_plan)."""

    def __init__(self, b, s_q, h_q, h_kv, page_size, dtype, d_qk=576, d_v=512, causal=False,
                 device=_lib.MLA_DEVICE_CPU, cpu_threads=0, kv_dtype=0, q_dtype=0):
        self._handle = None
        lib = _lib.lib()
        shape = _lib.new_shape()
        shape.b, shape.s_q, shape.h_q, shape.h_kv = int(b), int(s_q), int(h_q), int(h_kv)
        shape.d_qk, shape.d_v, shape.page_size = int(d_qk), int(d_v), int(page_size)
        shape.dtype = _dtype_code(dtype)
        shape.causal = 1 if causal else 0
        shape.cpu_threads = int(cpu_threads)
        shape.kv_dtype = int(kv_dtype or 0)   # dense FP8 cache: MLA_DTYPE_FP8_E4M3 (0 = dtype)
        shape.q_dtype = int(q_dtype or 0)
        device = _device_code(device)
        handle = ctypes.c_void_p()
        _lib.check(lib.mla_decode_plan_create(ctypes.byref(handle), ctypes.byref(shape), int(device)),
                   "mla_decode_plan_create")
        self._handle = handle
        self._lib = lib
        self.shape = shape
        self.key = plan_key(shape.b, shape.s_q, shape.h_q, shape.h_kv, shape.page_size, shape.dtype,
                            shape.d_qk, shape.d_v, bool(causal), device, shape.cpu_threads,
                            shape.kv_dtype, shape.q_dtype)
        self.cpu_threads = int(shape.cpu_threads)
        ws = ctypes.c_size_t(0)
        _lib.check(lib.mla_decode_workspace_size(handle, ctypes.byref(ws)), "mla_decode_workspace_size")
        self.workspace_size = int(ws.value)
        dev, parts = ctypes.c_int(0), ctypes.c_int(0)
        _lib.check(lib.mla_decode_plan_info(handle, ctypes.byref(dev), ctypes.byref(parts)), "mla_decode_plan_info")
        self.device = int(dev.value)
        self.num_sm_parts = int(parts.value)
        self._workspaces = {}   # stream handle -> torch uint8 tensor (GPU plans)
        self._ws_lock = threading.Lock()
        self._tls = threading.local()   # CPU plans: this thread's workspace

    # -- lifetime ----------------------------------------------------------------------------
    @property
    def handle(self):
        if self._handle is None:
            raise InvalidArgumentError("this mla.Plan has been closed")
        return self._handle

    @property
    def closed(self):
        return self._handle is None

    def close(self):
        h, self._handle = self._handle, None
        self._workspaces = {}
        if h is not None:
            _lib.check(self._lib.mla_decode_plan_destroy(h), "mla_decode_plan_destroy")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            h, self._handle = self._handle, None
            if h is not None:
                self._lib.mla_decode_plan_destroy(h)
        except Exception:
            pass

    def __repr__(self):
        s = self.shape
        return ("mla.Plan(b=%d, s_q=%d, h_q=%d, h_kv=%d, page_size=%d, dtype=%s, d_qk=%d, d_v=%d, causal=%s, "
                "device=%s, num_sm_parts=%d, workspace_size=%d%s)"
                % (s.b, s.s_q, s.h_q, s.h_kv, s.page_size, _lib.DTYPE_NAMES.get(s.dtype, s.dtype), s.d_qk, s.d_v,
                   bool(s.causal), "cpu" if self.device < 0 else "cuda:%d" % self.device, self.num_sm_parts,
                   self.workspace_size, ", closed" if self.closed else ""))

    # -- workspace ---------------------------------------------------------------------------
    def cached_workspace(self, stream_handle, torch_device):
        """A torch uint8 workspace on this plan's device, reused for calls on the same stream
        (calls on one stream never overlap). None when the plan needs no workspace."""
        if self.workspace_size == 0:
            return None
        ws = self._workspaces.get(stream_handle)
        if ws is None:
            import torch
            ws = torch.empty(self.workspace_size, dtype=torch.uint8, device=torch_device)
            with self._ws_lock:
                self._workspaces[stream_handle] = ws
        return ws

    def cpu_workspace(self):
        """CPU plans: (address, bytes) of this thread's workspace (ctypes memory, made on the
        thread's first call and kept with the plan): the CPU path's key-split partial rows,
        optional in the C API; one per thread, since concurrent calls may not share one."""
        return thread_workspace(self._tls, self.workspace_size)

    # -- calls -------------------------------------------------------------------------------
    def schedule(self, cache_seqlens, workspace, stream=None):
        """mla_decode_schedule: writes the split-KV schedule for `cache_seqlens` into `workspace`
        (a later decode(..., reuse_schedule=True) with that workspace uses it)."""
        cs = wrap(cache_seqlens, "cache_seqlens")
        ws_ptr, ws_bytes = _workspace_ptr(workspace, self.device)
        st = _stream_handle(stream, self.device, cs.kind == "torch")
        _lib.check(self._lib.mla_decode_schedule(self.handle, ctypes.c_void_p(cs.ptr), ctypes.c_void_p(ws_ptr),
                                                 ctypes.c_size_t(ws_bytes), ctypes.c_void_p(st)),
                   "mla_decode_schedule")

    def decode(self, q, k_cache, block_table, cache_seqlens, **kwargs):
        """decode() with this plan (the tensors must match its shape)."""
        return decode(q, k_cache, block_table, cache_seqlens, plan=self, **kwargs)


def plan_key(b, s_q, h_q, h_kv, page_size, dtype, d_qk, d_v, causal, device, cpu_threads, kv_dtype=0,
             q_dtype=0):
    key = (int(b), int(s_q), int(h_q), int(h_kv), int(page_size), int(dtype), int(d_qk), int(d_v),
           bool(causal), int(device), int(cpu_threads))
    kv, qd = int(kv_dtype or dtype), int(q_dtype or dtype)   # 0 = dtype
    return key if kv == int(dtype) and qd == int(dtype) else key + (kv, qd)


_PLAN_CACHE_SIZE = 64
_plan_cache = collections.OrderedDict()
_plan_cache_lock = threading.Lock()


def cached_plan(b, s_q, h_q, h_kv, page_size, dtype, d_qk=576, d_v=512, causal=False,
                device=_lib.MLA_DEVICE_CPU, cpu_threads=0, kv_dtype=0, q_dtype=0):
    """A Plan for this shape and device from a small LRU cache (created on a miss)."""
    dtype = _dtype_code(dtype)
    device = _device_code(device)
    key = plan_key(b, s_q, h_q, h_kv, page_size, dtype, d_qk, d_v, causal, device, cpu_threads, kv_dtype, q_dtype)
    with _plan_cache_lock:
        p = _plan_cache.get(key)
        if p is not None and not p.closed:
            _plan_cache.move_to_end(key)
            return p
    p = Plan(b, s_q, h_q, h_kv, page_size, dtype, d_qk=d_qk, d_v=d_v, causal=causal, device=device,
             cpu_threads=cpu_threads, kv_dtype=kv_dtype, q_dtype=q_dtype)
    with _plan_cache_lock:
        _plan_cache[key] = p
        while len(_plan_cache) > _PLAN_CACHE_SIZE:
            _plan_cache.popitem(last=False)   # dropped plans are freed when unreferenced
    return p


def clear_plan_cache():
    with _plan_cache_lock:
        _plan_cache.clear()


def _stream_handle(stream, device, is_torch):
    """cudaStream_t as an int: None on the CPU; for GPU plans the given stream (an int handle or a
    torch.cuda.Stream) or torch's current stream of the plan's device."""
    if device == _lib.MLA_DEVICE_CPU:
        if stream not in (None, 0):
            raise InvalidArgumentError("a CPU call takes no stream (got %r)" % (stream,))
        return None
    if stream is None:
        import torch
        return int(torch.cuda.current_stream(device).cuda_stream)
    if isinstance(stream, int):
        return stream
    return int(getattr(stream, "cuda_stream"))


def thread_workspace(tls, nbytes):
    """(address, bytes) of the calling thread's host workspace kept in `tls` (threading.local):
    ctypes memory of nbytes made on the thread's first call."""
    buf = getattr(tls, "ws", None)
    if buf is None:
        buf = ctypes.create_string_buffer(nbytes)
        tls.ws = buf
    return ctypes.addressof(buf), nbytes


def _workspace_ptr(workspace, device):
    if workspace is None:
        return 0, 0
    ws = wrap(workspace, "workspace")
    if ws.device != device:
        raise InvalidArgumentError("workspace is on %s but the plan is on %s"
                                   % (ws.describe_device(), "cpu" if device < 0 else "cuda:%d" % device))
    return ws.ptr, ws.nbytes


def _check_arr(a, ndim, dtypes=None, dtype_msg=None):
    if a.ndim != ndim:
        raise InvalidArgumentError("%s must have %d dimensions (got shape %s)" % (a.name, ndim, list(a.shape)))
    if dtypes is not None and a.dtype not in dtypes:
        raise InvalidArgumentError("%s must be %s (got %s)" % (a.name, dtype_msg, a.dtype_str))


def _check_last_contiguous(a):
    if a.shape[-1] > 1 and a.strides[-1] != 1:
        raise InvalidArgumentError("%s must be contiguous in its last dimension (stride %d)" % (a.name, a.strides[-1]))


def _alloc_like(q, shape, float32, zero, code=None):
    """A new array like q (torch/numpy, device): float32, q's dtype, or the 16-bit dtype `code`
    (used when q is FP8; numpy bf16 is uint16 holding bfloat16 bits)."""
    if q.kind == "torch":
        import torch
        dt = torch.float32 if float32 else q.obj.dtype
        if code is not None and not float32:
            dt = torch.bfloat16 if code == _lib.MLA_DTYPE_BF16 else torch.float16
        return (torch.zeros if zero else torch.empty)(shape, dtype=dt, device=q.obj.device)
    import numpy as np
    dt = np.float32 if float32 else q.obj.dtype
    if code is not None and not float32:
        dt = np.uint16 if code == _lib.MLA_DTYPE_BF16 else np.float16
    return (np.zeros if zero else np.empty)(shape, dtype=dt)


def _descale_ptr(x, name, device):
    """(pointer, keep-alive) of a per-tensor descale: None -> (None, None); a float32 tensor or
    array of one element on the call's device; a Python number on the CPU."""
    if x is None:
        return None, None
    if isinstance(x, (int, float)):
        if device != _lib.MLA_DEVICE_CPU:
            raise InvalidArgumentError("%s must be a float32 tensor of one element on cuda:%d for a GPU call "
                                       "(a Python number would need a host-to-device copy)" % (name, device))
        c = ctypes.c_float(float(x))
        return ctypes.addressof(c), c
    a = wrap(x, name)
    n = 1
    for d in a.shape:
        n *= d
    if a.dtype != _lib.MLA_DTYPE_FP32 or n != 1:
        raise InvalidArgumentError("%s must be a float32 tensor with one element (per-tensor descale, shape (1,)); "
                                   "got %s of shape %s" % (name, a.dtype_str, list(a.shape)))
    if a.device != device:
        raise InvalidArgumentError("%s is on %s but q is on %s" % (name, a.describe_device(),
                                                                "cpu" if device < 0 else "cuda:%d" % device))
    return a.ptr, x


def decode(q, k_cache, block_table, cache_seqlens, *, causal=False, softmax_scale=None, cu_seqlens_q=None,
           out=None, lse=None, workspace=None, head_dim_v=512, dtype=None, plan=None, reuse_schedule=False,
           stream=None, cpu_threads=0, descale_q=None, descale_k=None, q_dtype=None, kv_dtype=None):
    """Dense MLA decode over a paged KV cache; returns (out, lse).

    q [b, s_q, h_q, d_qk]; k_cache [num_pages, page_size, h_kv, d_qk] (V = first head_dim_v dims);
    block_table [b, max_pages] int32; cache_seqlens [b] int32; cu_seqlens_q optional [b+1] int32
    (per-request query lengths, each <= s_q); out [b, s_q, h_q, d_v] in q's dtype and lse
    [b, h_q, s_q] float32 are allocated unless given (any strides, last dim of out contiguous).

    numpy arrays and torch tensors are accepted (all on one device). numpy has no bfloat16:
    pass uint16 arrays with dtype="bf16" (ml_dtypes.bfloat16 arrays work as is), or float16.
    CPU data runs the CPU path; CUDA tensors run on their device, on torch's current stream of
    that device (or `stream`). The workspace of GPU plans is allocated here (torch, reused per
    plan and stream) unless `workspace` is given; CPU plans that can split their keys across
    threads (few requests x heads) get one per thread, kept with the plan; the C call never
    allocates. `reuse_schedule`
    sets MLA_DECODE_REUSE_SCHEDULE: the workspace already holds the schedule of an earlier call
    with the same cache_seqlens values. softmax_scale None (or <= 0): d_qk ** -0.5.

    Dense FP8 cache (vLLM's flash_mla_with_kvcache_fp8): k_cache of float8_e4m3fn (torch or
    ml_dtypes; uint8 codes with kv_dtype="fp8") and descale_k, a float32 tensor of one element (a
    Python float on the CPU); q either 16-bit, or FP8 as well (uint8 codes: q_dtype="fp8") with
    descale_q. score = (q . k) * softmax_scale * descale_q * descale_k, out = P @ V * descale_k.
    With an FP8 q, `dtype` names out's dtype (default bf16; numpy bf16 out is uint16)."""
    bf16 = False
    if dtype is not None:
        code = _dtype_code(dtype)
        bf16 = code == _lib.MLA_DTYPE_BF16
    qa = wrap(q, "q", bf16)
    ka = wrap(k_cache, "k_cache", bf16)
    FP8 = _lib.MLA_DTYPE_FP8_E4M3
    for arr, hint in ((qa, _fp8_code(q_dtype, "q_dtype")), (ka, _fp8_code(kv_dtype, "kv_dtype"))):
        if hint is not None:
            if arr.dtype not in (_lib.MLA_DTYPE_UINT8, FP8):
                raise InvalidArgumentError("%s=fp8 needs uint8 or float8_e4m3fn data (got %s)"
                                           % ("q_dtype" if arr is qa else "kv_dtype", arr.dtype_str))
            arr.dtype = FP8
    q_fp8, kv_fp8 = qa.dtype == FP8, ka.dtype == FP8
    bt = wrap(block_table, "block_table")
    cs = wrap(cache_seqlens, "cache_seqlens")
    cu = wrap(cu_seqlens_q, "cu_seqlens_q") if cu_seqlens_q is not None else None

    # What the C library cannot see: array ranks, dtypes of everything but q, devices,
    # the implicit unit strides and the dimensions that are not in mla_decode_args.
    _check_arr(qa, 4)
    if qa.dtype is None:
        hint = " (numpy uint16 holding bfloat16: pass dtype='bf16')" if qa.dtype_str == "uint16" else ""
        raise InvalidArgumentError("q must be bf16 or fp16 (got %s)%s" % (qa.dtype_str, hint))
    if q_fp8:   # dtype names out's dtype
        out_code = _dtype_code(dtype) if dtype is not None else _lib.MLA_DTYPE_BF16
    else:
        if dtype is not None and qa.dtype != _dtype_code(dtype):
            raise InvalidArgumentError("q is %s but dtype=%r was given" % (qa.dtype_str, dtype))
        out_code = qa.dtype
    _check_arr(ka, 4)
    if q_fp8 and not kv_fp8:
        raise InvalidArgumentError("an FP8 q needs an FP8 k_cache (float8_e4m3fn; got %s)" % ka.dtype_str)
    if ka.dtype != qa.dtype and not kv_fp8:
        raise InvalidArgumentError("k_cache dtype (%s) must equal q dtype (%s)" % (ka.dtype_str, qa.dtype_str))
    kv_code, q_code = (FP8 if kv_fp8 else 0), (FP8 if q_fp8 else 0)
    _check_arr(bt, 2, (_lib.MLA_DTYPE_INT32,), "int32")
    _check_arr(cs, 1, (_lib.MLA_DTYPE_INT32,), "int32")
    if cu is not None:
        _check_arr(cu, 1, (_lib.MLA_DTYPE_INT32,), "int32")
    b, s_q, h_q, d_qk = qa.shape
    num_pages, page_size, h_kv, d_k = ka.shape
    d_v = int(head_dim_v)
    if d_k != d_qk:
        raise InvalidArgumentError("k_cache head dim (%d) must equal q head dim (%d)" % (d_k, d_qk))
    if bt.shape[0] != b:
        raise InvalidArgumentError("block_table has %d rows but q has batch %d" % (bt.shape[0], b))
    if cs.shape[0] != b:
        raise InvalidArgumentError("cache_seqlens has %d entries but q has batch %d" % (cs.shape[0], b))
    if cu is not None and cu.shape[0] != b + 1:
        raise InvalidArgumentError("cu_seqlens_q has %d entries but must have b + 1 = %d" % (cu.shape[0], b + 1))
    for a in (qa, ka, bt):
        _check_last_contiguous(a)
    for a in (cs, cu):
        if a is not None and a.shape[0] > 1 and a.strides[0] != 1:
            raise InvalidArgumentError("%s must be contiguous (stride %d)" % (a.name, a.strides[0]))
    device = qa.device
    for a in (ka, bt, cs, cu):
        if a is not None and a.device != device:
            raise InvalidArgumentError("%s is on %s but q is on %s" % (a.name, a.describe_device(), qa.describe_device()))
    if device != _lib.MLA_DEVICE_CPU and qa.kind != "torch":
        raise InvalidArgumentError("CUDA inputs must be torch tensors")

    # The plan: C validates the shape class (h_q % h_kv, d_qk, d_v, page_size, dtype, ...).
    if plan is None:
        plan = cached_plan(b, s_q, h_q, h_kv, page_size, out_code, d_qk=d_qk, d_v=d_v, causal=causal,
                           device=device, cpu_threads=cpu_threads, kv_dtype=kv_code, q_dtype=q_code)
    else:
        want = plan_key(b, s_q, h_q, h_kv, page_size, out_code, d_qk, d_v, causal, device, plan.cpu_threads,
                        kv_code, q_code)
        if plan.key != want:
            raise InvalidArgumentError("the tensors do not match the plan: plan %r, tensors give %r" % (plan, want))

    # Outputs.
    out_shape, lse_shape = (b, s_q, h_q, d_v), (b, h_q, s_q)
    if out is None:
        out = _alloc_like(qa, out_shape, False, cu is not None, out_code if q_fp8 else None)
    oa = wrap(out, "out", bf16 or (q_fp8 and out_code == _lib.MLA_DTYPE_BF16))
    if lse is None:
        lse = _alloc_like(qa, lse_shape, True, cu is not None)
    la = wrap(lse, "lse")
    if oa.shape != out_shape:
        raise InvalidArgumentError("out must have shape %s (got %s)" % (list(out_shape), list(oa.shape)))
    if oa.dtype != out_code:
        if q_fp8:
            raise InvalidArgumentError("out dtype (%s) must be %s (FP8 q: out's dtype is dtype=, default bf16)"
                                       % (oa.dtype_str, _lib.DTYPE_NAMES.get(out_code, out_code)))
        raise InvalidArgumentError("out dtype (%s) must equal q dtype (%s)" % (oa.dtype_str, qa.dtype_str))
    if la.shape != lse_shape:
        raise InvalidArgumentError("lse must have shape %s (got %s)" % (list(lse_shape), list(la.shape)))
    if la.dtype != _lib.MLA_DTYPE_FP32:
        raise InvalidArgumentError("lse must be float32 (got %s)" % la.dtype_str)
    _check_last_contiguous(oa)
    for a in (oa, la):
        if a.device != device:
            raise InvalidArgumentError("%s is on %s but q is on %s" % (a.name, a.describe_device(), qa.describe_device()))

    # Stream and workspace.
    st = _stream_handle(stream, plan.device, qa.kind == "torch")
    if workspace is not None:
        ws_ptr, ws_bytes = _workspace_ptr(workspace, plan.device)
    elif plan.workspace_size > 0 and plan.device < 0:
        ws_ptr, ws_bytes = plan.cpu_workspace()
    elif plan.workspace_size > 0:
        if qa.kind != "torch":
            raise InvalidArgumentError("this plan needs a %d-byte workspace; pass workspace=" % plan.workspace_size)
        ws_t = plan.cached_workspace(st, qa.obj.device)
        ws_ptr, ws_bytes = int(ws_t.data_ptr()), plan.workspace_size
    else:
        ws_ptr, ws_bytes = 0, 0

    args = _lib.new_args()
    args.q = qa.ptr
    args.q_stride[:] = qa.strides[:3]
    args.k_cache = ka.ptr
    args.num_pages = num_pages
    args.k_stride[:] = ka.strides[:3]
    args.block_table = bt.ptr
    args.max_pages = bt.shape[1]
    args.block_table_stride = bt.strides[0]
    args.cache_seqlens = cs.ptr
    args.cu_seqlens_q = cu.ptr if cu is not None else None
    args.out = oa.ptr
    args.out_stride[:] = oa.strides[:3]
    args.lse = la.ptr
    args.lse_stride[:] = la.strides[:3]
    args.softmax_scale = 0.0 if softmax_scale is None else float(softmax_scale)
    args.flags = _lib.MLA_DECODE_REUSE_SCHEDULE if reuse_schedule else 0
    args.descale_q, _keep_q = _descale_ptr(descale_q, "descale_q", device)
    args.descale_k, _keep_k = _descale_ptr(descale_k, "descale_k", device)
    _lib.check(plan._lib.mla_decode(plan.handle, ctypes.byref(args), ctypes.c_void_p(ws_ptr or None),
                                    ctypes.c_size_t(ws_bytes), ctypes.c_void_p(st)),
               "mla_decode")
    return out, lse
