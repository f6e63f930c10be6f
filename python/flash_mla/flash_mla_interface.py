"""FlashMLA's Python API (all generations) over mla.c.

Scheduling metadata, and why CUDA-graph replay is correct
---------------------------------------------------------
mla.c computes the split-KV schedule on the GPU from `cache_seqlens` inside each decode call
(scheduler kernel + attention kernel + combine kernel, all on the caller's stream), so a
captured CUDA graph recomputes it at every replay from whatever lengths the cache_seqlens
tensor holds then.

* Current API ("v3"): get_mla_metadata() returns (FlashMLASchedMeta(), None). The first
  flash_mla_with_kvcache call on a fresh sched_meta records its configuration, computes the
  schedule into a workspace kept in the sched_meta, and later calls with the same sched_meta
  (the other layers of one decode step) reuse that schedule (MLA_DECODE_REUSE_SCHEDULE) after
  checking that their arguments match the recorded configuration. As in FlashMLA, a
  sched_meta may only be reused while the shapes and the values of cache_seqlens stay the
  same: make a fresh one per decode step (or capture the first call in the graph).
* 2025 API ("v1"/"v2"): get_mla_metadata(cache_seqlens, s_q*h_q//h_kv, h_kv[, h_q, is_fp8,
  topk]) returns two int32 tensors on cache_seqlens' device, (tile_scheduler_metadata
  [num_sm_parts, 8], num_splits [b+1]), with FlashMLA's shapes so code that stores or copies
  them keeps working. They are placeholders that are merely carried: flash_mla_with_kvcache
  ignores their contents and recomputes the schedule on the GPU at every call, so stale
  metadata can never give wrong results.
"""

import dataclasses
import math
import sys
from typing import Any, Optional

import mla
from mla import InvalidArgumentError, SchedMetaMismatchError, UnsupportedError
from mla import _decode
from mla import sparse as _sparse


@dataclasses.dataclass
class FlashMLASchedMeta:
    """Scheduling state shared by the flash_mla_with_kvcache calls of one decode step.

    FlashMLA's fields (have_initialized, config, tile_scheduler_metadata, num_splits) plus
    mla.c's: the plan and the workspace that holds the schedule computed by the first call.
    tile_scheduler_metadata and num_splits stay None: the schedule lives in `workspace`."""

    @dataclasses.dataclass
    class Config:
        b: int
        s_q: int
        h_q: int
        page_block_size: int
        h_k: int
        causal: bool
        is_fp8_kvcache: bool
        topk: Optional[int]
        extra_page_block_size: Optional[int]
        extra_topk: Optional[int]
        # mla.c additions
        d_qk: Optional[int] = None
        d_v: Optional[int] = None
        dtype: Optional[str] = None
        device: Optional[str] = None

    have_initialized: bool = False
    config: Optional[Config] = None
    tile_scheduler_metadata: Optional[Any] = None
    num_splits: Optional[Any] = None
    plan: Optional[Any] = dataclasses.field(default=None, repr=False)
    workspace: Optional[Any] = dataclasses.field(default=None, repr=False)


def _is_tensor_like(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")


def get_mla_metadata(*args, **kwargs):
    """FlashMLA's get_mla_metadata, both generations.

    * No arguments (current API): returns (FlashMLASchedMeta(), None).
    * (cache_seqlens, num_q_tokens_per_head_k, num_heads_k[, num_heads_q, is_fp8_kvcache, topk])
      (2025 API; num_q_tokens_per_head_k = s_q * h_q // h_kv, also accepted under its v1 name
      num_heads_per_head_k): returns (tile_scheduler_metadata int32 [num_sm_parts, 8],
      num_splits int32 [b + 1]) on cache_seqlens' device. These are placeholders with
      FlashMLA's shapes: flash_mla_with_kvcache recomputes the schedule on the GPU at every
      call (see the module docstring), so passing them back is all they are for.
    * Anything else is ignored, as FlashMLA's current version does: (FlashMLASchedMeta(), None).

    Code written for the current API that still passes the old arguments (vLLM does:
    ``sched, _ = get_mla_metadata(seq_lens, n, 1, is_fp8_kvcache=False)`` then
    ``flash_mla_with_kvcache(..., tile_scheduler_metadata=sched)``) gets the tensor pair and
    keeps working: a tensor given as tile_scheduler_metadata (num_splits None or not) means
    "recompute the schedule in this call", which is always correct, graphs included; only a
    FlashMLASchedMeta shares one schedule across the calls of a step.
    """
    cache_seqlens = args[0] if args else kwargs.get("cache_seqlens")
    if cache_seqlens is None or not _is_tensor_like(cache_seqlens):
        return FlashMLASchedMeta(), None
    rest = list(args[1:])
    names = ("num_q_tokens_per_head_k", "num_heads_k", "num_heads_q", "is_fp8_kvcache", "topk")
    vals = dict(zip(names, rest))
    for k, v in kwargs.items():
        if k == "num_heads_per_head_k":
            k = "num_q_tokens_per_head_k"
        if k in names:
            vals[k] = v
    rows = int(vals.get("num_q_tokens_per_head_k", 1) or 1)
    h_kv = int(vals.get("num_heads_k", 1) or 1)
    if len(cache_seqlens.shape) != 1:
        raise InvalidArgumentError("cache_seqlens must have 1 dimension (got shape %s)" % list(cache_seqlens.shape))
    b = int(cache_seqlens.shape[0])
    if mla._tensor.is_torch_tensor(cache_seqlens):
        torch = sys.modules["torch"]
        if cache_seqlens.dtype != torch.int32:
            raise InvalidArgumentError("cache_seqlens must be int32 (got %s)" % str(cache_seqlens.dtype).replace("torch.", ""))
        dev = cache_seqlens.device
        num_sm_parts = 1
        if dev.type == "cuda":
            sms = torch.cuda.get_device_properties(dev).multi_processor_count
            num_sm_parts = max(sms // max(h_kv, 1) // max(math.ceil(rows / 64), 1), 1)
        tile_md = torch.zeros((num_sm_parts, 8), dtype=torch.int32, device=dev)
        num_splits = torch.arange(b + 1, dtype=torch.int32, device=dev)
        return tile_md, num_splits
    import numpy as np
    return np.zeros((1, 8), dtype=np.int32), np.arange(b + 1, dtype=np.int32)


def _mismatch(field, what, recorded, given):
    return SchedMetaMismatchError(
        "sched_meta.config.%s (%r) must equal %s (%r): the arguments of this call do not match the "
        "FlashMLASchedMeta they reuse; pass the same shapes and flags to every flash_mla_with_kvcache "
        "call that shares one sched_meta, or use a fresh one from get_mla_metadata()."
        % (field, recorded, what, given))


def _device_str(t):
    return str(getattr(t, "device", "cpu"))


def flash_mla_with_kvcache(
    q,
    k_cache,
    block_table,
    cache_seqlens,
    head_dim_v,
    tile_scheduler_metadata=None,
    num_splits=None,
    softmax_scale=None,
    causal=False,
    is_fp8_kvcache=False,
    indices=None,
    attn_sink=None,
    extra_k_cache=None,
    extra_indices_in_kvcache=None,
    topk_length=None,
    extra_topk_length=None,
    *,
    cu_seqlens_q=None,
    out=None,
    lse=None,
):
    """FlashMLA's flash_mla_with_kvcache (dense decode; current and 2025 signatures).

    q [b, s_q, h_q, d_qk] bf16/fp16; k_cache [num_blocks, page_block_size, h_kv, d_qk];
    block_table [b, max_blocks] int32; cache_seqlens [b] int32; head_dim_v 512.
    tile_scheduler_metadata: a FlashMLASchedMeta (current API; num_splits must be None) or the
    tensors of the 2025 get_mla_metadata (carried, not read). softmax_scale defaults to
    d_qk ** -0.5; causal is bottom-right aligned for s_q > 1.
    mla.c extensions (keyword only): cu_seqlens_q [b+1] int32 for per-request query lengths
    (rows past a request's length are left untouched: zero in freshly allocated outputs),
    out / lse to write into existing tensors.
    Returns out [b, s_q, h_q, head_dim_v] in q's dtype and lse [b, h_q, s_q] float32 (natural
    log; +inf and out = 0 for rows that see no key).
    Sparse decode (indices given; needs is_fp8_kvcache=True, causal=False): k_cache is an FP8
    cache [num_blocks, page_block_size, 1, 656 | 584] (mla.sparse.quantize_k_cache), indices
    [b, s_q, topk] int32, with attn_sink, topk_length and extra_k_cache /
    extra_indices_in_kvcache / extra_topk_length; returns bf16 out and lse as a transposed view
    (see mla.sparse.sparse_decode). CPU tensors run mla.c's CPU path; CUDA tensors the sparse GPU
    kernel (compute capability 9.0)."""
    if indices is not None:
        return _sparse_with_kvcache(q, k_cache, head_dim_v, tile_scheduler_metadata, num_splits, softmax_scale,
                                    causal, is_fp8_kvcache, indices, attn_sink, extra_k_cache,
                                    extra_indices_in_kvcache, topk_length, extra_topk_length, out, lse)
    if is_fp8_kvcache:
        raise UnsupportedError("dense decode on an FP8 KV cache (is_fp8_kvcache=True without indices) is not "
                               "supported: the FP8 cache formats are for sparse decode (pass indices=...)")
    sparse_only = dict(attn_sink=attn_sink, extra_k_cache=extra_k_cache,
                       extra_indices_in_kvcache=extra_indices_in_kvcache, topk_length=topk_length,
                       extra_topk_length=extra_topk_length)
    given = [k for k, v in sparse_only.items() if v is not None]
    if given:
        raise InvalidArgumentError("%s must be None for dense attention (they are sparse decode arguments: "
                                   "pass indices=...)" % ", ".join(given))
    if block_table is None or cache_seqlens is None:
        raise InvalidArgumentError("block_table and cache_seqlens must be given for dense attention")
    if not _is_tensor_like(q) or len(q.shape) != 4:
        raise InvalidArgumentError("q must be a 4-D tensor [b, s_q, h_q, d_qk] (got %s)"
                                   % (list(q.shape) if _is_tensor_like(q) else type(q).__name__))
    if not _is_tensor_like(k_cache) or len(k_cache.shape) != 4:
        raise InvalidArgumentError("k_cache must be a 4-D tensor [num_blocks, page_block_size, h_kv, d_qk] (got %s)"
                                   % (list(k_cache.shape) if _is_tensor_like(k_cache) else type(k_cache).__name__))
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** (-0.5)

    sched_meta = tile_scheduler_metadata
    if not isinstance(sched_meta, FlashMLASchedMeta):
        # 2025 API: the metadata tensors are carried; the schedule is recomputed every call.
        return mla.decode(q, k_cache, block_table, cache_seqlens, causal=causal, softmax_scale=softmax_scale,
                          cu_seqlens_q=cu_seqlens_q, out=out, lse=lse, head_dim_v=head_dim_v)

    if num_splits is not None:
        raise SchedMetaMismatchError("num_splits must be None when tile_scheduler_metadata is a FlashMLASchedMeta")
    cfg_now = FlashMLASchedMeta.Config(
        b=int(q.shape[0]), s_q=int(q.shape[1]), h_q=int(q.shape[2]), page_block_size=int(k_cache.shape[1]),
        h_k=int(k_cache.shape[2]), causal=bool(causal), is_fp8_kvcache=bool(is_fp8_kvcache), topk=None,
        extra_page_block_size=None, extra_topk=None, d_qk=int(q.shape[3]), d_v=int(head_dim_v),
        dtype=str(q.dtype), device=_device_str(q))
    if sched_meta.have_initialized:
        cfg = sched_meta.config
        checks = (("b", "batch_size"), ("s_q", "seq_len_q"), ("h_q", "num_heads_q"),
                  ("page_block_size", "page_block_size"), ("h_k", "num_heads_k"), ("causal", "causal"),
                  ("is_fp8_kvcache", "is_fp8_kvcache"), ("topk", "the last dim of indices"),
                  ("extra_page_block_size", "the page_block_size of extra_k_cache"),
                  ("extra_topk", "the last dim of extra_indices_in_kvcache"),
                  ("d_qk", "head_dim of q"), ("d_v", "head_dim_v"), ("dtype", "q.dtype"), ("device", "q.device"))
        for field, what in checks:
            if getattr(cfg, field) != getattr(cfg_now, field):
                raise _mismatch(field, what, getattr(cfg, field), getattr(cfg_now, field))
        reuse = sched_meta.workspace is not None
        return mla.decode(q, k_cache, block_table, cache_seqlens, causal=causal, softmax_scale=softmax_scale,
                          cu_seqlens_q=cu_seqlens_q, out=out, lse=lse, head_dim_v=head_dim_v,
                          plan=sched_meta.plan, workspace=sched_meta.workspace, reuse_schedule=reuse)

    # First call on this sched_meta: make the plan and its workspace, compute the schedule.
    qa = mla._tensor.wrap(q, "q")
    if qa.dtype is None:   # let mla.decode report the bad dtype
        return mla.decode(q, k_cache, block_table, cache_seqlens, causal=causal, softmax_scale=softmax_scale,
                          cu_seqlens_q=cu_seqlens_q, out=out, lse=lse, head_dim_v=head_dim_v)
    plan = _decode.cached_plan(cfg_now.b, cfg_now.s_q, cfg_now.h_q, cfg_now.h_k, cfg_now.page_block_size,
                               qa.dtype,
                               d_qk=cfg_now.d_qk, d_v=cfg_now.d_v, causal=causal, device=qa.device)
    workspace = None
    if plan.workspace_size > 0 and plan.device >= 0:   # CPU plans: mla.decode keeps one per thread
        import torch
        workspace = torch.empty(plan.workspace_size, dtype=torch.uint8, device=q.device)
    result = mla.decode(q, k_cache, block_table, cache_seqlens, causal=causal, softmax_scale=softmax_scale,
                        cu_seqlens_q=cu_seqlens_q, out=out, lse=lse, head_dim_v=head_dim_v,
                        plan=plan, workspace=workspace, reuse_schedule=False)
    sched_meta.config = cfg_now
    sched_meta.plan = plan
    sched_meta.workspace = workspace
    sched_meta.have_initialized = True
    return result


def _sparse_with_kvcache(q, k_cache, head_dim_v, sched_meta, num_splits, softmax_scale, causal, is_fp8_kvcache,
                         indices, attn_sink, extra_k_cache, extra_indices, topk_length, extra_topk_length, out, lse):
    """flash_mla_with_kvcache with indices: FlashMLA's Python-side rules, then mla.sparse.sparse_decode."""
    if causal:
        raise InvalidArgumentError("causal must be False when indices is given (sparse attention)")
    if not is_fp8_kvcache:
        raise InvalidArgumentError("sparse decode (indices=...) needs is_fp8_kvcache=True and an FP8 k_cache "
                                   "(see mla.sparse.quantize_k_cache)")
    if int(head_dim_v) != 512:
        raise InvalidArgumentError("head_dim_v (%d) must be 512" % int(head_dim_v))
    if not _is_tensor_like(q) or len(q.shape) != 4 or not _is_tensor_like(k_cache) or len(k_cache.shape) != 4:
        raise InvalidArgumentError("q and k_cache must be 4-D tensors for sparse decode")
    if (extra_k_cache is None) != (extra_indices is None):
        raise InvalidArgumentError("extra_k_cache and extra_indices_in_kvcache must be given together")
    if softmax_scale is None:
        softmax_scale = q.shape[-1] ** (-0.5)
    cfg_now = None
    if isinstance(sched_meta, FlashMLASchedMeta):
        if num_splits is not None:
            raise SchedMetaMismatchError("num_splits must be None when tile_scheduler_metadata is a FlashMLASchedMeta")
        has_extra = extra_k_cache is not None
        cfg_now = FlashMLASchedMeta.Config(
            b=int(q.shape[0]), s_q=int(q.shape[1]), h_q=int(q.shape[2]), page_block_size=int(k_cache.shape[1]),
            h_k=int(k_cache.shape[2]), causal=False, is_fp8_kvcache=True, topk=int(indices.shape[-1]),
            extra_page_block_size=int(extra_k_cache.shape[1]) if has_extra else None,
            extra_topk=int(extra_indices.shape[-1]) if has_extra else None, d_qk=int(q.shape[3]), d_v=512,
            dtype=str(q.dtype), device=_device_str(q))
        if sched_meta.have_initialized:
            for f in dataclasses.fields(cfg_now):
                if getattr(sched_meta.config, f.name) != getattr(cfg_now, f.name):
                    raise _mismatch(f.name, "this call's " + f.name, getattr(sched_meta.config, f.name),
                                    getattr(cfg_now, f.name))
    result = _sparse.sparse_decode(q, k_cache, indices, topk_length=topk_length, attn_sink=attn_sink,
                                   extra_k_cache=extra_k_cache, extra_indices=extra_indices,
                                   extra_topk_length=extra_topk_length, softmax_scale=softmax_scale, out=out, lse=lse)
    if cfg_now is not None and not sched_meta.have_initialized:
        sched_meta.config = cfg_now
        sched_meta.have_initialized = True
    return result


def flash_mla_sparse_fwd(q, kv, indices, sm_scale, d_v=512, attn_sink=None, topk_length=None, indexer_topk=0):
    """FlashMLA's sparse prefill: (out [s_q, h_q, d_v] bf16, max_logits [s_q, h_q], lse [s_q, h_q]),
    natural log (see mla.sparse.sparse_prefill). CPU tensors run mla.c's CPU path; CUDA tensors the sparse GPU
    kernel (compute capability 9.0; elsewhere mla.UnsupportedError). indexer_topk is ignored."""
    return _sparse.sparse_prefill(q, kv, indices, sm_scale, d_v=d_v, attn_sink=attn_sink, topk_length=topk_length)


def get_mla_metadata_dense_fp8(cache_seqlens, num_q_tokens_per_head_k, num_heads_k):
    """vLLM's FlashMLA fork: the scheduling metadata of flash_mla_with_kvcache_fp8. Returns the
    same (tile_scheduler_metadata [num_sm_parts, 8], num_splits [b + 1]) int32 placeholders as
    the 2025 get_mla_metadata: carried, never read (the schedule is computed on the GPU per call)."""
    return get_mla_metadata(cache_seqlens, num_q_tokens_per_head_k, num_heads_k)


def flash_mla_with_kvcache_fp8(
    q,
    k_cache,
    block_table,
    cache_seqlens,
    head_dim_v,
    tile_scheduler_metadata=None,
    num_splits=None,
    softmax_scale=None,
    causal=False,
    descale_q=None,
    descale_k=None,
    *,
    cu_seqlens_q=None,
    out=None,
    lse=None,
):
    """vLLM's FlashMLA fork: dense decode on an FP8 (e4m3) KV cache with per-tensor descales.

    q [b, s_q, h_q, d_qk] float8_e4m3fn (as vLLM passes it; a bf16/fp16 q also works, then
    descale_q is optional); k_cache [num_blocks, page_block_size, h_kv, d_qk] float8_e4m3fn
    (uint8 tensors are read as e4m3 codes); descale_q / descale_k float32 of shape (1,) on q's
    device (required, as in the fork). score = (q . k) * softmax_scale * descale_q * descale_k;
    out = softmax @ V * descale_k. tile_scheduler_metadata / num_splits (from
    get_mla_metadata_dense_fp8 or get_mla_metadata) are carried, not read. Returns out
    [b, s_q, h_q, head_dim_v] bf16 (fp16 when q is fp16) and lse [b, h_q, s_q] float32 (natural
    log; +inf and out = 0 for rows that see no key). mla.c extensions (keyword only):
    cu_seqlens_q, out, lse as for flash_mla_with_kvcache."""
    if descale_k is None or (descale_q is None and _is_fp8_tensor(q)):
        raise InvalidArgumentError("descale_q and descale_k are required when the input dtype is fp8 (float32 "
                                   "tensors of shape (1,))")
    if softmax_scale is None and _is_tensor_like(q):
        softmax_scale = q.shape[-1] ** (-0.5)
    return mla.decode(q, k_cache, block_table, cache_seqlens, causal=causal, softmax_scale=softmax_scale,
                      cu_seqlens_q=cu_seqlens_q, out=out, lse=lse, head_dim_v=head_dim_v,
                      descale_q=descale_q, descale_k=descale_k, q_dtype=_codes(q), kv_dtype=_codes(k_cache))


def _is_fp8_tensor(t):
    name = str(getattr(t, "dtype", ""))
    return name.endswith("float8_e4m3fn") or name.endswith("uint8")


def _codes(t):
    """'fp8' for a uint8 tensor (raw e4m3 codes, as vLLM allocates its FP8 cache), else None."""
    return "fp8" if str(getattr(t, "dtype", "")).endswith("uint8") else None


def _no_sm100(name):
    def fn(*args, **kwargs):
        raise UnsupportedError("%s is FlashMLA's SM100-only dense prefill; mla.c does not provide it" % name)
    fn.__name__ = name
    fn.__doc__ = "FlashMLA's SM100-only %s; not provided by mla.c (raises NotImplementedError)." % name
    return fn


flash_attn_varlen_func = _no_sm100("flash_attn_varlen_func")
flash_attn_varlen_qkvpacked_func = _no_sm100("flash_attn_varlen_qkvpacked_func")
flash_attn_varlen_kvpacked_func = _no_sm100("flash_attn_varlen_kvpacked_func")
