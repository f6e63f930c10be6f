"""flash_mla — a drop-in for DeepSeek's FlashMLA Python module, backed by mla.c.

Both API generations work:

    # current FlashMLA API (2026, "v3")
    sched_meta, _ = flash_mla.get_mla_metadata()
    out, lse = flash_mla.flash_mla_with_kvcache(q, k_cache, block_table, cache_seqlens, 512,
                                                sched_meta, causal=True)

    # 2025 API ("v1"/"v2")
    tile_md, num_splits = flash_mla.get_mla_metadata(cache_seqlens, s_q * h_q // h_kv, h_kv)
    out, lse = flash_mla.flash_mla_with_kvcache(q, k_cache, block_table, cache_seqlens, 512,
                                                tile_md, num_splits, causal=True)

torch CPU tensors run mla.c's CPU path, CUDA tensors run on their own device and torch's
current stream of it. Pure Python over ctypes; no compiled extension. See flash_mla_interface.
"""

from mla import __version__
from .flash_mla_interface import (
    FlashMLASchedMeta,
    get_mla_metadata,
    flash_mla_with_kvcache,
    flash_mla_with_kvcache_fp8,
    get_mla_metadata_dense_fp8,
    flash_mla_sparse_fwd,
    flash_attn_varlen_func,
    flash_attn_varlen_qkvpacked_func,
    flash_attn_varlen_kvpacked_func,
)

__all__ = [
    "FlashMLASchedMeta",
    "get_mla_metadata",
    "flash_mla_with_kvcache",
    "flash_mla_with_kvcache_fp8",
    "get_mla_metadata_dense_fp8",
    "flash_mla_sparse_fwd",
    "flash_attn_varlen_func",
    "flash_attn_varlen_qkvpacked_func",
    "flash_attn_varlen_kvpacked_func",
]
