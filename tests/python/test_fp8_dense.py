"""Dense decode on an FP8 e4m3 cache (issue 7 part 1): mla.decode and vLLM's
flash_mla.flash_mla_with_kvcache_fp8 on torch CPU tensors, against the independent fp32 torch
reference run on the dequantised data (spec §6 tolerances), plus the argument errors."""
import numpy as np
import pytest
import torch

import flash_mla
import mla
from mla_testlib import GARBAGE, check_out_lse, make_case, ref_decode, varlen_seqlens

FP8 = torch.float8_e4m3fn


def fp8_case(b, s_q, h_q, h_kv, lengths, page, dq, dk, seed=0):
    """FlashMLA-style case quantised per tensor (x / descale -> e4m3; NaN rows -> NaN codes);
    returns the FP8 tensors and the dequantised fp32 ones the reference uses."""
    q, k, bt, cs = make_case(b, s_q, h_q, h_kv, lengths, page, torch.float32, seed=seed)
    q8, k8 = (q / dq).to(FP8), (k / dk).to(FP8)
    assert torch.isnan(k8.float()).any() and int(bt.max()) == GARBAGE   # the poison is there
    return q8, k8, bt, cs, q8.float() * dq, k8.float() * dk


GRID = [  # b, s_q, h_q, h_kv, page, lengths, causal, dq, dk
    (1, 1, 1, 1, 64, [20], False, 1.0, 1.0),
    (2, 2, 16, 1, 64, [140, 3], True, 0.5, 2.0),
    (3, 4, 9, 3, 16, varlen_seqlens(3, 140, 4, seed=1), True, 0.37, 1.7),
    (4, 1, 64, 8, 64, varlen_seqlens(4, 140, 1, seed=2, zero_frac=0.5), False, 2.0, 0.0625),
    (2, 2, 128, 2, 32, [300, 0], True, 0.25, 3.0),
    (6, 1, 63, 3, 1, varlen_seqlens(6, 140, 1, seed=3), False, 1.0, 0.5),
]


@pytest.mark.parametrize("case", GRID, ids=lambda c: "b%d-sq%d-hq%d-hkv%d-p%d-%s-dq%g-dk%g" % (
    c[0], c[1], c[2], c[3], c[4], "causal" if c[6] else "full", c[7], c[8]))
def test_flash_mla_with_kvcache_fp8(case):
    b, s_q, h_q, h_kv, page, lengths, causal, dq, dk = case
    q8, k8, bt, cs, qd, kd = fp8_case(b, s_q, h_q, h_kv, lengths, page, dq, dk, seed=h_q)
    tile_md, num_splits = flash_mla.get_mla_metadata_dense_fp8(cs, s_q * h_q // h_kv, h_kv)
    out, lse = flash_mla.flash_mla_with_kvcache_fp8(
        q8, k8, bt, cs, 512, tile_md, num_splits, causal=causal,
        descale_q=torch.tensor([dq]), descale_k=torch.tensor([dk]))
    assert out.dtype == torch.bfloat16 and out.shape == (b, s_q, h_q, 512)
    assert lse.dtype == torch.float32 and lse.shape == (b, h_q, s_q)
    ref_out, ref_lse = ref_decode(qd, kd, bt, cs, causal=causal)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_uint8_codes_and_softmax_scale():
    """vLLM keeps its FP8 cache as uint8: the same codes as uint8 give the same bytes."""
    q8, k8, bt, cs, qd, kd = fp8_case(2, 1, 16, 1, [100, 65], 64, 0.5, 2.0, seed=3)
    dq, dk = torch.tensor([0.5]), torch.tensor([2.0])
    a = flash_mla.flash_mla_with_kvcache_fp8(q8, k8, bt, cs, 512, None, None, 0.05, False, dq, dk)
    b = flash_mla.flash_mla_with_kvcache_fp8(q8.view(torch.uint8), k8.view(torch.uint8), bt, cs, 512, None, None,
                                             0.05, False, dq, dk)
    assert torch.equal(a[0].view(torch.int16), b[0].view(torch.int16)) and torch.equal(a[1], b[1])
    ref_out, ref_lse = ref_decode(qd, kd, bt, cs, softmax_scale=0.05)
    check_out_lse(a[0], a[1], ref_out, ref_lse)


@pytest.mark.parametrize("qdt", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("with_dq", [False, True])
def test_mla_decode_16bit_q_on_fp8_cache(qdt, with_dq):
    q, k, bt, cs = make_case(3, 2, 8, 2, [90, 0, 200], 16, torch.float32, seed=5)
    k8 = (k / 1.5).to(FP8)
    q16 = q.to(qdt)
    kw = dict(descale_q=torch.tensor([0.5])) if with_dq else {}
    out, lse = mla.decode(q16, k8, bt, cs, causal=True, descale_k=torch.tensor([1.5]), **kw)
    assert out.dtype == qdt
    ref_out, ref_lse = ref_decode(q16.float() * (0.5 if with_dq else 1.0), k8.float() * 1.5, bt, cs, causal=True)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_mla_decode_fp16_out_cu_seqlens_float_descales():
    q8, k8, bt, cs, qd, kd = fp8_case(3, 4, 4, 1, [50, 130, 7], 64, 1.0, 0.5, seed=9)
    cu = torch.tensor([0, 4, 5, 7], dtype=torch.int32)
    out, lse = mla.decode(q8, k8, bt, cs, causal=True, cu_seqlens_q=cu, dtype="fp16", descale_q=1.0,
                          descale_k=0.5)
    assert out.dtype == torch.float16
    ref_out, ref_lse = ref_decode(qd, kd, bt, cs, causal=True, cu_seqlens_q=cu)
    lens = [4, 1, 2]
    for i, n in enumerate(lens):       # rows past a request's length are not written (zeros)
        check_out_lse(out[i, :n], lse[i, :, :n], ref_out[i, :n], ref_lse[i, :, :n], tag="[%d]" % i)
        assert torch.all(out[i, n:] == 0)


def test_numpy_codes():
    """numpy: uint8 codes with q_dtype / kv_dtype='fp8', bf16 out as uint16."""
    q8, k8, bt, cs, qd, kd = fp8_case(2, 1, 4, 1, [33, 64], 16, 0.5, 2.0, seed=11)
    out, lse = mla.decode(q8.view(torch.uint8).numpy(), k8.view(torch.uint8).numpy(), bt.numpy(), cs.numpy(),
                          q_dtype="fp8", kv_dtype="fp8", descale_q=np.array([0.5], np.float32),
                          descale_k=np.array([2.0], np.float32))
    assert out.dtype == np.uint16
    out_t = torch.from_numpy(out.astype(np.int16)).view(torch.bfloat16)
    ref_out, ref_lse = ref_decode(qd, kd, bt, cs)
    check_out_lse(out_t, torch.from_numpy(lse), ref_out, ref_lse)


def test_nan_code_in_visible_row():
    q8, k8, bt, cs, qd, kd = fp8_case(2, 1, 4, 1, [40, 40], 64, 1.0, 1.0, seed=13)
    k8 = k8.clone()
    k8.view(torch.uint8)[int(bt[1, 0]), 7, 0, 3] = 0x7F          # request 1, token 7
    out, lse = flash_mla.flash_mla_with_kvcache_fp8(q8, k8, bt, cs, 512, None, None,
                                                    descale_q=torch.ones(1), descale_k=torch.ones(1))
    assert torch.isnan(out[1].float()).all() and torch.isnan(lse[1]).all()
    assert torch.isfinite(out[0].float()).all() and torch.isfinite(lse[0]).all()


def test_errors():
    q8, k8, bt, cs, qd, kd = fp8_case(2, 1, 4, 1, [10, 20], 64, 1.0, 1.0)
    one = torch.ones(1)
    with pytest.raises(mla.InvalidArgumentError, match="descale_q and descale_k are required"):
        flash_mla.flash_mla_with_kvcache_fp8(q8, k8, bt, cs, 512, None, None, descale_q=one)
    with pytest.raises(mla.InvalidArgumentError, match="descale_q and descale_k are required"):
        flash_mla.flash_mla_with_kvcache_fp8(q8, k8, bt, cs, 512, None, None, descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="one element"):
        flash_mla.flash_mla_with_kvcache_fp8(q8, k8, bt, cs, 512, None, None, descale_q=torch.ones(2),
                                             descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="float32"):
        mla.decode(q8, k8, bt, cs, descale_q=one.double(), descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="descale_k is NULL"):          # from the C library
        mla.decode(q8, k8, bt, cs, descale_q=one)
    with pytest.raises(mla.InvalidArgumentError, match="descale_q is NULL"):
        mla.decode(q8, k8, bt, cs, descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="FP8 q needs an FP8 k_cache"):
        mla.decode(q8, kd.to(torch.bfloat16), bt, cs, descale_q=one, descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="descale_k is set"):       # 16-bit cache
        mla.decode(qd.to(torch.bfloat16), kd.to(torch.bfloat16), bt, cs, descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="out dtype"):
        mla.decode(q8, k8, bt, cs, descale_q=one, descale_k=one, out=torch.empty(2, 1, 4, 512))
    with pytest.raises(mla.InvalidArgumentError, match="uint8 or float8"):
        mla.decode(qd, k8, bt, cs, q_dtype="fp8", descale_k=one)
    with pytest.raises(mla.InvalidArgumentError, match="only FP8"):
        mla.decode(q8, k8, bt, cs, kv_dtype="bf16", descale_q=one, descale_k=one)
    with pytest.raises(mla.UnsupportedError):      # flash_mla_with_kvcache keeps FlashMLA's behaviour
        flash_mla.flash_mla_with_kvcache(qd.to(torch.bfloat16), k8, bt, cs, 512, None, None, is_fp8_kvcache=True)
