#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/: fuzz_decode.c -> corpus/, fuzz_sparse.c ->
corpus_sparse/.

Input format (see decode_input / apply_fault in fuzz_decode.c):
  16-byte header: mode, b, s_q, h_kv, group, bits, page_size_sel, num_pages, max_pages,
                  padding bits, permutation bits, scale selector, rng seed (u32 LE)
  then up to 8 faults of 3 bytes each: kind, a, b.
Each seed is one named scenario: a valid configuration, or one with one or two faults.
Run: python3 tests/fuzz/gen_corpus.py   (rewrites the directory; deterministic)
"""
import os
import struct
import sys

# fault kinds
SHAPE_FIELD, SHAPE_SIZE, ARGS_SIZE, NULLP, MISALIGN, STRIDE, NUM_PAGES, MAX_PAGES, SEQLEN, \
    BT_VALUE, CU, SCALE, FLAGS, STREAM, WORKSPACE, Q_SPECIAL, K_SPECIAL, DEVICE, VARLEN, TWICE, \
    DESCALE_VALUE, DESCALE_PTR, FP8_DTYPE_FIELD = range(23)
FP8_KV, FP8_KV_Q, EXPLICIT_DTYPES = 0x20, 0x40, 0x60   # header "bits" values (dense FP8)
P_Q, P_K, P_BT, P_SEQ, P_CU, P_OUT, P_LSE = range(7)


def header(mode=0, b=1, s_q=0, h_kv=0, group=0, bits=0, ps=7, num_pages=3, max_pages=3,
           pad=0, perm=0, scale=0, seed=1):
    """b: b-1; s_q: s_q-1; h_kv: h_kv-1; group: h_q/h_kv-1; bits: 1 d512, 2 fp16, 4 causal,
    8/16 cpu_threads, 0x20 FP8 cache, 0x40 FP8 cache + FP8 q, 0x60 explicit kv/q dtypes;
    ps: index into PAGE_SIZES (7 = 16); perm: 1/2/4/8 layouts, 16 descale_q with a 16-bit q."""
    return bytes([mode, b, s_q, h_kv, group, bits, ps, num_pages, max_pages, pad, perm, scale]) + \
        struct.pack("<I", seed)


def faults(*fs):
    return b"".join(bytes([k, a & 255, b & 255]) for k, a, b in fs)


SEEDS = {
    # valid configurations
    "valid_min": header(b=0, s_q=0, group=0, ps=0, num_pages=0, max_pages=0),
    "valid_b3_sq2_causal": header(b=2, s_q=1, group=2, bits=4, ps=7, num_pages=5, max_pages=3),
    "valid_hkv2_fp16": header(b=1, s_q=2, h_kv=1, group=1, bits=2 | 4, ps=4, num_pages=7, max_pages=2),
    "valid_d512": header(b=1, s_q=0, group=2, bits=1, ps=6, num_pages=4, max_pages=3, seed=7),
    "valid_varlen_causal": header(mode=1, b=2, s_q=2, group=1, bits=4, ps=5, num_pages=6, max_pages=3),
    "valid_padded_permuted": header(b=2, s_q=1, h_kv=1, group=1, ps=2, pad=0xff, perm=0x0f, seed=3),
    "valid_twice_threads": header(mode=2, b=2, s_q=2, group=2, bits=8 | 16, ps=7, num_pages=7, max_pages=3),
    "valid_page1": header(b=2, s_q=1, group=0, ps=0, num_pages=7, max_pages=3, seed=11),
    "valid_page64": header(b=0, s_q=0, group=0, ps=11, num_pages=1, max_pages=1, seed=5),
    "valid_scale_custom": header(b=1, group=1, scale=150, seed=9),
    "valid_scale_nan": header(b=1, group=1, scale=202, seed=9),   # SCALES[2] = NaN -> default
    "valid_scale_inf": header(b=1, group=1, scale=203, seed=9),
    # key splits of the CPU path: workspace kind 5 = the plan's workspace with one-chunk ranges
    # (page 64, 4 pages: up to 256 keys, 4 chunks)
    "valid_split_1chunk": header(b=0, s_q=0, group=0, ps=11, num_pages=7, max_pages=3, seed=24) +
    faults((WORKSPACE, 0, 4)),
    "valid_split_causal_varlen": header(mode=1, b=1, s_q=1, group=1, bits=4, ps=11, num_pages=7, max_pages=3,
                                        seed=22) + faults((WORKSPACE, 0, 4)),
    "valid_scale_neg": header(b=1, group=1, scale=201, seed=9),
    # shape faults
    "shape_hq_not_divisible": header(h_kv=1) + faults((SHAPE_FIELD, 2, 7)),       # h_q = 3, h_kv 2
    "shape_b_zero": header() + faults((SHAPE_FIELD, 0, 0)),
    "shape_b_int64min": header() + faults((SHAPE_FIELD, 0, 2)),
    "shape_b_huge": header() + faults((SHAPE_FIELD, 0, 5)),                          # 2^31-1: valid, big
    "shape_hq_2pow40": header() + faults((SHAPE_FIELD, 2, 6)),
    "shape_dqk_577": header() + faults((SHAPE_FIELD, 4, 9)),
    "shape_dv_511": header() + faults((SHAPE_FIELD, 5, 10)),
    "shape_page_zero": header() + faults((SHAPE_FIELD, 6, 0)),
    "shape_dtype_bad": header() + faults((SHAPE_FIELD, 7, 2)),
    "shape_causal_2": header() + faults((SHAPE_FIELD, 8, 2)),
    "shape_threads_neg": header() + faults((SHAPE_FIELD, 9, 0)),
    "shape_size_zero": header() + faults((SHAPE_SIZE, 0, 0)),
    "shape_size_old": header() + faults((SHAPE_SIZE, 0, 3)),                         # ends before h_kv
    "shape_size_newer": header() + faults((SHAPE_SIZE, 0, 6)),
    "shape_null": header() + faults((NULLP, 8, 0)),
    "plan_out_null": header() + faults((NULLP, 7, 0)),
    "device_gpu_in_cpu_build": header() + faults((DEVICE, 1, 0)),
    "device_minus2": header() + faults((DEVICE, 0, 1)),
    # argument faults
    "args_null": header() + faults((NULLP, 9, 0)),
    "args_size_small": header() + faults((ARGS_SIZE, 0, 2)),
    "args_size_old_ok": header() + faults((ARGS_SIZE, 0, 4)),                        # no scale/flags
    "args_size_newer": header() + faults((ARGS_SIZE, 0, 6)),
    "null_q": header() + faults((NULLP, P_Q, 0)),
    "null_lse": header() + faults((NULLP, P_LSE, 0)),
    "null_bytes": header() + faults((NULLP, 10, 0)),
    "misaligned_k": header() + faults((MISALIGN, P_K, 0)),
    "misaligned_seqlens": header() + faults((MISALIGN, P_SEQ, 1)),
    "misaligned_cu": header(mode=1) + faults((MISALIGN, P_CU, 2)),
    "stride_q_overlap": header(group=2) + faults((STRIDE, 2, 7 + 8 * 4)),           # q_stride[2] = 4
    "stride_out_zero": header(b=2) + faults((STRIDE, 6, 0)),
    "stride_k_negative": header() + faults((STRIDE, 3, 1)),
    "stride_k_int64max": header() + faults((STRIDE, 3, 3)),
    "stride_lse_huge": header(b=2) + faults((STRIDE, 9, 6)),
    "stride_bt_small": header(b=2, max_pages=3) + faults((STRIDE, 12, 7 + 8 * 2)),
    "num_pages_zero": header() + faults((NUM_PAGES, 0, 0)),
    "num_pages_huge": header() + faults((NUM_PAGES, 0, 3)),
    "max_pages_neg": header() + faults((MAX_PAGES, 0, 1)),
    "seqlen_negative": header(b=2) + faults((SEQLEN, 1, 0)),
    "seqlen_int32max": header(b=2) + faults((SEQLEN, 0, 3)),
    "seqlen_past_cap": header(b=1) + faults((SEQLEN, 0, 150)),
    "bt_negative_in_use": header(b=1, max_pages=3) + faults((SEQLEN, 0, 5), (BT_VALUE, 0, 0)),
    "bt_garbage_in_use": header(b=2, max_pages=3, seed=4) + faults((BT_VALUE, 4, 3)),
    "bt_eq_num_pages": header(num_pages=3, max_pages=3) + faults((BT_VALUE, 0, 128 + 4)),
    "cu_decreasing": header(mode=1, b=2, s_q=2) + faults((CU, 1, 64 + 9)),
    "cu_too_long": header(mode=1, b=1, s_q=1) + faults((CU, 1, 64 + 60)),
    "flags_unknown": header() + faults((FLAGS, 2, 3)),
    "flags_reuse": header() + faults((FLAGS, 1, 0)),
    "stream_non_null": header() + faults((STREAM, 0, 0)),
    "workspace_garbage": header() + faults((WORKSPACE, 0, 3)),
    "workspace_null_huge": header() + faults((WORKSPACE, 0, 0)),
    # defined results for special values
    "q_nan": header(b=1, s_q=1, group=1) + faults((Q_SPECIAL, 1, 0)),
    "q_pinf": header(b=1, s_q=1, group=1) + faults((Q_SPECIAL, 5, 1)),
    "q_ninf": header(b=1, s_q=1, group=1) + faults((Q_SPECIAL, 17, 2)),
    "k_nan_in_use": header(b=1, s_q=1, group=1, bits=4) + faults((K_SPECIAL, 1, 0)),
    "two_faults": header(b=2) + faults((SEQLEN, 1, 0), (STRIDE, 4, 1)),
    "misaligned_q_by_2_is_aligned": header() + faults((MISALIGN, P_Q, 1)),
    # dense FP8 (vLLM's flash_mla_with_kvcache_fp8): e4m3 cache, optional e4m3 q, descales
    "fp8_kv": header(b=2, s_q=1, group=1, bits=FP8_KV | 4, seed=21),
    "fp8_kv_q": header(b=2, s_q=1, group=1, bits=FP8_KV_Q | 4, seed=22),
    "fp8_kv_fp16_out_dq": header(b=1, group=2, bits=FP8_KV | 2, perm=16, seed=23),
    "fp8_descales": header(b=1, group=1, bits=FP8_KV_Q, seed=24) + faults((DESCALE_VALUE, 1, 1), (DESCALE_VALUE, 0, 2)),
    "fp8_descale_k_nan": header(b=1, bits=FP8_KV_Q, seed=25) + faults((DESCALE_VALUE, 0, 5)),
    "fp8_descale_k_zero": header(b=1, bits=FP8_KV, seed=26) + faults((DESCALE_VALUE, 0, 6)),
    "fp8_descale_k_negative": header(b=1, bits=FP8_KV, seed=27) + faults((DESCALE_VALUE, 0, 7)),
    "fp8_missing_descale_k": header(bits=FP8_KV) + faults((DESCALE_PTR, 1, 0)),
    "fp8_missing_descale_q": header(bits=FP8_KV_Q) + faults((DESCALE_PTR, 0, 0)),
    "fp8_misaligned_descale_k": header(bits=FP8_KV) + faults((DESCALE_PTR, 3, 0)),
    "descales_without_fp8": header() + faults((DESCALE_PTR, 4, 0)),
    "fp8_q_without_fp8_kv": header() + faults((FP8_DTYPE_FIELD, 1, 5)),
    "kv_dtype_fp32": header() + faults((FP8_DTYPE_FIELD, 0, 3)),
    "explicit_dtypes": header(b=1, bits=EXPLICIT_DTYPES | 2, seed=28),
    "fp8_misaligned_k_by_1_is_aligned": header(bits=FP8_KV, seed=29) + faults((MISALIGN, P_K, 0)),
    "fp8_q_nan_code": header(b=1, group=1, bits=FP8_KV_Q) + faults((Q_SPECIAL, 1, 0)),
    "fp8_k_nan_code": header(b=1, group=1, bits=FP8_KV | 4) + faults((K_SPECIAL, 1, 0)),
    "shape_size_v1": header(bits=FP8_KV) + faults((SHAPE_SIZE, 0, 8)),
    # found by fuzz_decode in CI (seventeenth session): with one row per page, k_stride[1] may be
    # any value (INT64_MAX here); the AMX path scaled it to bytes before knowing it was unused
    "page1_k_stride_unused": bytes([0x9c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x07, 0x03, 0x3a,
                                    0x00, 0x00, 0x00, 0x01, 0x00, 0x00]) +
    bytes([0x09, 0x09, 0x00, 0x05, 0x04, 0x03]),
}


# ---- fuzz_sparse.c (sparse prefill: first byte bit 0 clear): 13-byte header (mode, s_q, s_kv, h_kv, group, bits, topk,
# pad, scale, seed u32) + faults (kind % 14, a, b) -------------------------------------------------
SP_FIELD, SP_SIZE, SP_NULL, SP_MISALIGN, SP_STRIDE, SP_INDEX, SP_TOPK_LEN, SP_SINK, SP_SCALE, \
    SP_DEVICE, SP_STREAM, SP_WORKSPACE, SP_TL_TOGGLE, SP_SINK_TOGGLE = range(14)


def sp_header(tl=0, sink=0, s_q=1, s_kv=20, h_kv=0, group=1, bits=0, topk=4, pad=0, scale=0, seed=1):
    """s_q: s_q-1; s_kv: s_kv-1; h_kv: h_kv-1; group: h_q/h_kv-1; bits: 1 d512, 2/4 cpu_threads;
    topk: topk-1; pad: 1/2/4/8/16/64 paddings, 32 transposed lse; scale < 128: d_qk^-0.5."""
    return bytes([2 * tl + 4 * sink, s_q, s_kv, h_kv, group, bits, topk, pad, scale]) + \
        struct.pack("<I", seed)


def sp_faults(*fs):
    return b"".join(bytes([k, a & 255, b & 255]) for k, a, b in fs)


SPARSE_SEEDS = {
    "prefill_valid": sp_header(),
    "prefill_valid_all": sp_header(tl=1, sink=1, s_q=3, s_kv=40, h_kv=1, group=2, topk=7, pad=0x7f, seed=5),
    "prefill_d512": sp_header(bits=1, s_kv=9, topk=7, seed=6),
    "prefill_skv1": sp_header(s_kv=0, topk=0, seed=7),
    "prefill_garbage_index": sp_header(s_kv=10) + sp_faults((SP_INDEX, 0, 1), (SP_INDEX, 16, 2)),
    "prefill_index_eq_skv": sp_header(s_kv=10) + sp_faults((SP_INDEX, 0, 130)),
    "prefill_topk_length_neg_huge": sp_header(tl=1, s_q=2) + sp_faults((SP_TOPK_LEN, 0, 0), (SP_TOPK_LEN, 1, 5)),
    "prefill_sink_nan": sp_header(sink=1, group=1) + sp_faults((SP_SINK, 0, 3)),
    "prefill_sink_pinf": sp_header(sink=1, group=1) + sp_faults((SP_SINK, 1, 4)),
    "prefill_sink_ninf": sp_header(sink=1) + sp_faults((SP_SINK, 0, 5)),
    "prefill_scale_zero": sp_header() + sp_faults((SP_SCALE, 0, 0)),
    "prefill_scale_nan": sp_header() + sp_faults((SP_SCALE, 0, 2)),
    "prefill_hq_not_divisible": sp_header(h_kv=1, group=0) + sp_faults((SP_FIELD, 2, 7)),
    "prefill_dqk_bad": sp_header() + sp_faults((SP_FIELD, 4, 9)),
    "prefill_size_small": sp_header() + sp_faults((SP_SIZE, 0, 3)),
    "prefill_size_newer": sp_header() + sp_faults((SP_SIZE, 0, 4)),
    "prefill_null_kv": sp_header() + sp_faults((SP_NULL, 1, 0)),
    "prefill_null_args": sp_header() + sp_faults((SP_NULL, 8, 0)),
    "prefill_misaligned_sink": sp_header(sink=1) + sp_faults((SP_MISALIGN, 4, 1)),
    "prefill_out_overlap": sp_header(group=2) + sp_faults((SP_STRIDE, 7, 7 + 8 * 8)),
    "prefill_kv_stride_huge": sp_header(s_kv=5) + sp_faults((SP_STRIDE, 2, 6)),
    "prefill_gpu_device": sp_header() + sp_faults((SP_DEVICE, 1, 0)),
    "prefill_stream": sp_header() + sp_faults((SP_STREAM, 0, 0)),
}


# sparse decode (FP8 cache): first byte bit 0 set; bits 1 topk_length, 2 attn_sink, 3 extra cache,
# 4 extra_topk_length, 5 MODEL1 format; then b-1, s_q-1, h_q-1, page sizes (low/high nibble),
# num_pages (low/high nibble: extra), topk (low nibble: topk-1, bits 4-5: extra_topk-1,
# bits 6-7: cpu_threads), pad, scale, seed u32; faults kind % 14.
SD_FIELD, SD_SIZE, SD_NULL, SD_MISALIGN, SD_STRIDE, SD_INDEX, SD_TOPK_LEN, SD_SINK, SD_SCALE, \
    SD_DEVICE, SD_STREAM, SD_FLAGS, SD_EXTRA_WITHOUT, SD_FORMAT = range(14)


def sd_header(tl=0, sink=0, extra=0, xtl=0, model1=0, b=1, s_q=1, h_q=3, ps=0x33, np=0x11,
              topk=0x13, pad=0, scale=0, seed=1):
    m0 = 1 | 2 * tl | 4 * sink | 8 * extra | 16 * xtl | 32 * model1
    return bytes([m0, b, s_q, h_q, ps, np, topk, pad, scale]) + struct.pack("<I", seed)


SPARSE_SEEDS.update({
    "decode_v32": sd_header(),
    "decode_model1": sd_header(model1=1, seed=2),
    "decode_all_options": sd_header(tl=1, sink=1, extra=1, xtl=1, b=2, s_q=2, h_q=2, ps=0x24, np=0x23,
                                    topk=0x37, pad=0x3f, scale=150, seed=3),
    "decode_page1": sd_header(ps=0x00, np=0x03, topk=0x07, seed=4),
    "decode_garbage_index": sd_header() + sp_faults((SD_INDEX, 0, 1), (SD_INDEX, 2, 2)),
    "decode_index_at_end": sd_header() + sp_faults((SD_INDEX, 0, 130)),
    "decode_extra_garbage_index": sd_header(extra=1) + sp_faults((SD_INDEX, 1, 0)),
    "decode_topk_length_clamp": sd_header(tl=1, b=1) + sp_faults((SD_TOPK_LEN, 0, 0), (SD_TOPK_LEN, 2, 5)),
    "decode_sink_nan": sd_header(sink=1) + sp_faults((SD_SINK, 0, 3)),
    "decode_h_kv_2": sd_header() + sp_faults((SD_FIELD, 3, 14)),
    "decode_dqk_mismatch": sd_header(model1=1) + sp_faults((SD_FIELD, 4, 9)),
    "decode_bad_format": sd_header() + sp_faults((SD_FORMAT, 1, 1)),
    "decode_extra_ptr_without_extra": sd_header() + sp_faults((SD_EXTRA_WITHOUT, 0, 0)),
    "decode_null_indices": sd_header() + sp_faults((SD_NULL, 2, 0)),
    "decode_misaligned_lse": sd_header() + sp_faults((SD_MISALIGN, 9, 1)),
    "decode_page_stride_small": sd_header(np=0x12) + sp_faults((SD_STRIDE, 12, 9)),
    "decode_scale_nan_default": sd_header() + sp_faults((SD_SCALE, 0, 2)),
    "decode_flags_unknown": sd_header() + sp_faults((SD_FLAGS, 2, 3)),
    "decode_stream": sd_header() + sp_faults((SD_STREAM, 0, 0)),
    "decode_gpu_device": sd_header() + sp_faults((SD_DEVICE, 1, 0)),
    "decode_shape_size_newer": sd_header() + sp_faults((SD_SIZE, 1, 2)),
    # found by a 600 s run (seventeenth session): prefill on a CUDA ordinal with non-nested lse
    # strides; the library rejects them as on the CPU, the harness wanted UNSUPPORTED
    "prefill_gpu_lse_strides_not_nested": bytes([0x36, 0x12, 0x13, 0x01, 0x0d, 0x00, 0x00, 0x00,
                                                 0x00, 0xe6, 0xb6, 0x01, 0x00, 0x60, 0x30, 0x00,
                                                 0x04, 0xfb, 0x17, 0x09, 0xff, 0xff, 0xff, 0xff]),
    # found by CI's 90 s run (thirty-seventh session): a sparse decode shape whose b x s_q x ceil(h_q / 16)
    # row tiles overflow int64 (each dim valid, up to 2^31 - 1); the CPU split's tile count now saturates
    "decode_cpu_split_tiles_overflow": bytes([0x01, 0x01, 0x01, 0x00, 0x33, 0x03, 0x13, 0x01, 0x11, 0x00,
                                              0x00, 0x33, 0x03, 0x13, 0x01, 0x00, 0x00, 0x00, 0x2a, 0x2a,
                                              0x2a, 0x05, 0x00, 0x01, 0x05, 0x02, 0x02]),
})


def write(dirname, seeds):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), dirname)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}", file=sys.stderr)


def main():
    write("corpus", SEEDS)
    write("corpus_sparse", SPARSE_SEEDS)


if __name__ == "__main__":
    main()
