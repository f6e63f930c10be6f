"""flash_mla (the FlashMLA drop-in) on torch CPU tensors: both API generations against an
independent fp32 torch reference (spec §6 tolerances), plus its error behaviour."""
import math

import pytest
import torch

import flash_mla
import mla
from mla_testlib import GARBAGE, check_out_lse, make_case, ref_decode, varlen_seqlens

BF16, FP16 = torch.bfloat16, torch.float16

# (b, s_q, h_q, h_kv, page, lengths spec, causal, dtype)
GRID = [
    (1, 1, 1, 1, 64, [20], False, BF16),
    (1, 1, 16, 1, 64, [140], False, FP16),
    (2, 2, 3, 1, 16, [20, 140], True, BF16),
    (2, 4, 9, 3, 64, [140, 5], True, FP16),
    (3, 2, 8, 2, 32, [1, 0, 77], True, BF16),
    (6, 1, 63, 3, 64, "varlen", False, BF16),
    (6, 4, 16, 8, 16, "varlen", True, BF16),
    (4, 2, 64, 1, 64, "varlen0", True, FP16),
    (2, 4, 2, 2, 128, [3, 260], True, FP16),
    (1, 2, 126, 2, 64, [300], False, BF16),
    (2, 1, 128, 1, 64, [257, 64], False, BF16),
    (5, 4, 4, 1, 16, [0, 1, 2, 3, 4], True, BF16),
]


def _lengths(spec, b, s_q, seed):
    if spec == "varlen":
        return varlen_seqlens(b, 140, s_q, seed)
    if spec == "varlen0":
        return varlen_seqlens(b, 140, s_q, seed, zero_frac=0.5)
    return spec


@pytest.mark.parametrize("case", GRID, ids=lambda c: "b%d-sq%d-hq%d-hkv%d-p%d-%s-%s" % (
    c[0], c[1], c[2], c[3], c[4], "causal" if c[6] else "full", str(c[7]).replace("torch.", "")))
@pytest.mark.parametrize("api", ["v3", "v2"])
def test_decode_matches_reference(case, api):
    b, s_q, h_q, h_kv, page, spec, causal, dtype = case
    seqlens = _lengths(spec, b, s_q, seed=b * 7 + h_q)
    q, kc, bt, cs = make_case(b, s_q, h_q, h_kv, seqlens, page, dtype, seed=h_q + s_q)
    if api == "v3":
        sched, none = flash_mla.get_mla_metadata()
        assert isinstance(sched, flash_mla.FlashMLASchedMeta) and none is None
        out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, causal=causal)
        assert sched.have_initialized and sched.config.b == b and sched.config.h_k == h_kv
    else:
        md, ns = flash_mla.get_mla_metadata(cs, s_q * h_q // h_kv, h_kv)
        out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, md, ns, None, causal)
    assert out.shape == (b, s_q, h_q, 512) and out.dtype == dtype
    assert lse.shape == (b, h_q, s_q) and lse.dtype == torch.float32
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=causal)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_old_metadata_tensors():
    cs = torch.tensor([10, 0, 300], dtype=torch.int32)
    md, ns = flash_mla.get_mla_metadata(cs, 2 * 128, 1)
    assert md.dtype == torch.int32 and md.dim() == 2 and md.shape[1] == 8 and md.shape[0] >= 1
    assert ns.dtype == torch.int32 and ns.shape == (4,)
    assert md.device == cs.device and ns.device == cs.device
    # v2 keywords and v1 keyword name
    md2, ns2 = flash_mla.get_mla_metadata(cs, num_q_tokens_per_head_k=128, num_heads_k=1, num_heads_q=128,
                                          is_fp8_kvcache=False, topk=None)
    assert ns2.shape == (4,)
    md3, ns3 = flash_mla.get_mla_metadata(cache_seqlens=cs, num_heads_per_head_k=16, num_heads_k=1)
    assert ns3.shape == (4,)


def test_v3_style_call_with_old_metadata_arguments():
    """vLLM's pattern: old positional arguments to get_mla_metadata, the first result passed as
    tile_scheduler_metadata by keyword, num_splits left out."""
    b, s_q, h_q = 3, 2, 16
    q, kc, bt, cs = make_case(b, s_q, h_q, 1, [90, 0, 200], 64, FP16, seed=12)
    sched, _ = flash_mla.get_mla_metadata(cs, s_q * h_q // 1, 1, is_fp8_kvcache=False)
    for layer in range(2):
        out, lse = flash_mla.flash_mla_with_kvcache(q=q, k_cache=kc, block_table=bt, cache_seqlens=cs, head_dim_v=512,
                                                    tile_scheduler_metadata=sched, softmax_scale=0.05, causal=True,
                                                    is_fp8_kvcache=False)
        ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True, softmax_scale=0.05)
        check_out_lse(out, lse, ref_out, ref_lse)
    with pytest.raises(ValueError, match="cache_seqlens must be int32"):
        flash_mla.get_mla_metadata(cs.long(), 32, 1)


def test_v3_ignores_arguments_without_tensor():
    sched, none = flash_mla.get_mla_metadata(None, 128, 1)
    assert isinstance(sched, flash_mla.FlashMLASchedMeta) and none is None
    assert not sched.have_initialized


def test_v2_keywords_and_default_scale():
    b, s_q, h_q, h_kv = 2, 2, 4, 1
    q, kc, bt, cs = make_case(b, s_q, h_q, h_kv, [33, 90], 64, BF16, seed=3)
    md, ns = flash_mla.get_mla_metadata(cs, s_q * h_q // h_kv, h_kv)
    out, lse = flash_mla.flash_mla_with_kvcache(q=q, k_cache=kc, block_table=bt, cache_seqlens=cs, head_dim_v=512,
                                                tile_scheduler_metadata=md, num_splits=ns, causal=True)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True, softmax_scale=576 ** -0.5)
    check_out_lse(out, lse, ref_out, ref_lse)
    # an explicit scale is used, and is not the default
    out2, lse2 = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, md, ns, softmax_scale=0.1, causal=True)
    ref_out2, ref_lse2 = ref_decode(q, kc, bt, cs, causal=True, softmax_scale=0.1)
    check_out_lse(out2, lse2, ref_out2, ref_lse2)
    assert not torch.allclose(lse2, lse)


def test_sched_meta_reused_across_layers():
    b, s_q, h_q, h_kv = 3, 2, 8, 1
    seqlens = [50, 0, 129]
    sched, _ = flash_mla.get_mla_metadata()
    for layer in range(3):
        q, kc, bt, cs = make_case(b, s_q, h_q, h_kv, seqlens, 64, BF16, seed=100 + layer)
        out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, None, causal=True)
        ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
        check_out_lse(out, lse, ref_out, ref_lse, " layer %d" % layer)
    assert sched.have_initialized and sched.plan is not None


@pytest.mark.parametrize("change, field", [
    (dict(b=3), "b"), (dict(s_q=1), "s_q"), (dict(h_q=16), "h_q"), (dict(page=32), "page_block_size"),
    (dict(h_kv=2), "h_k"), (dict(causal=False), "causal"), (dict(dtype=FP16), "dtype"),
])
def test_sched_meta_config_mismatch(change, field):
    base = dict(b=2, s_q=2, h_q=8, h_kv=1, page=64, causal=True, dtype=BF16)
    sched, _ = flash_mla.get_mla_metadata()
    q, kc, bt, cs = make_case(base["b"], base["s_q"], base["h_q"], base["h_kv"], [10] * base["b"], base["page"],
                              base["dtype"])
    flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, causal=base["causal"])
    p = dict(base, **change)
    q2, kc2, bt2, cs2 = make_case(p["b"], p["s_q"], p["h_q"], p["h_kv"], [10] * p["b"], p["page"], p["dtype"])
    with pytest.raises(mla.SchedMetaMismatchError) as ei:
        flash_mla.flash_mla_with_kvcache(q2, kc2, bt2, cs2, 512, sched, causal=p["causal"])
    assert isinstance(ei.value, AssertionError) and isinstance(ei.value, ValueError)
    assert "sched_meta.config.%s" % field in str(ei.value)


def test_sched_meta_fixed_after_failed_first_call():
    sched, _ = flash_mla.get_mla_metadata()
    q, kc, bt, cs = make_case(1, 1, 3, 1, [10], 64, BF16)
    with pytest.raises(mla.InvalidArgumentError):
        flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 256, sched)     # bad head_dim_v
    assert not sched.have_initialized
    out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_num_splits_must_be_none_with_sched_meta():
    sched, _ = flash_mla.get_mla_metadata()
    q, kc, bt, cs = make_case(1, 1, 2, 1, [10], 64, BF16)
    with pytest.raises(AssertionError, match="num_splits must be None"):
        flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, torch.zeros(2, dtype=torch.int32))


def test_sparse_and_fp8_routing():
    # the sparse calls themselves are tested in test_sparse_flash_mla.py
    q, kc, bt, cs = make_case(1, 1, 64, 1, [10], 64, BF16)
    idx = torch.zeros(1, 1, 64, dtype=torch.int32)
    sched, _ = flash_mla.get_mla_metadata()
    with pytest.raises(ValueError, match="float8_e4m3fn"):    # a bf16 cache is not an FP8 cache
        flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, sched, is_fp8_kvcache=True, indices=idx)
    with pytest.raises(NotImplementedError, match="FP8"):
        flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, is_fp8_kvcache=True)
    with pytest.raises(ValueError, match="attn_sink"):
        flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, attn_sink=torch.zeros(64))
    assert not sched.have_initialized
    out, max_logits, lse = flash_mla.flash_mla_sparse_fwd(q[0], kc[0], idx, 0.1)
    assert out.shape == (1, 64, 512) and max_logits.shape == (1, 64) and lse.shape == (1, 64)
    with pytest.raises(NotImplementedError):
        flash_mla.flash_attn_varlen_func(q, q, q, None, None, 1, 1)


def _c_message_error(fn, *args, **kwargs):
    with pytest.raises(mla.MlaError) as ei:
        fn(*args, **kwargs)
    return ei.value


def test_errors_carry_c_message():
    q, kc, bt, cs = make_case(1, 1, 63, 1, [10], 64, BF16)
    kc2 = kc.repeat(1, 1, 2, 1)       # h_kv = 2 does not divide 63
    for api in ("v3", "v2"):
        md = flash_mla.get_mla_metadata()[0] if api == "v3" else flash_mla.get_mla_metadata(cs, 63, 2)[0]
        e = _c_message_error(flash_mla.flash_mla_with_kvcache, q, kc2, bt, cs, 512, md)
        assert isinstance(e, mla.InvalidArgumentError) and isinstance(e, ValueError)
        assert e.status == mla.MLA_ERR_INVALID_ARGUMENT and e.status_name == "MLA_ERR_INVALID_ARGUMENT"
        assert e.message == mla.last_error()            # the C message, verbatim
        assert "h_q (63) is not divisible by h_kv (2)" in str(e)
    e = _c_message_error(flash_mla.flash_mla_with_kvcache, q, kc, bt, cs, 256, None)
    assert e.message == mla.last_error() and "d_v" in e.message


def test_dtype_errors():
    q, kc, bt, cs = make_case(1, 1, 4, 1, [10], 64, BF16)
    sched = lambda: flash_mla.get_mla_metadata()[0]
    e = _c_message_error(flash_mla.flash_mla_with_kvcache, q.float(), kc.float(), bt, cs, 512, sched())
    assert isinstance(e, ValueError) and e.message == mla.last_error()   # fp32: the C library rejects the dtype
    with pytest.raises(ValueError, match="k_cache dtype"):
        flash_mla.flash_mla_with_kvcache(q, kc.half(), bt, cs, 512, sched())
    with pytest.raises(ValueError, match="block_table must be int32"):
        flash_mla.flash_mla_with_kvcache(q, kc, bt.long(), cs, 512, sched())
    with pytest.raises(ValueError, match="cache_seqlens must be int32"):
        flash_mla.flash_mla_with_kvcache(q, kc, bt, cs.long(), 512, sched())
    with pytest.raises(ValueError, match="q must be bf16 or fp16"):
        flash_mla.flash_mla_with_kvcache(q.double(), kc.double(), bt, cs, 512, sched())
    with pytest.raises(ValueError, match="head dim"):
        flash_mla.flash_mla_with_kvcache(q, kc[..., :512], bt, cs, 512, sched())
    with pytest.raises(ValueError, match="4-D"):
        flash_mla.flash_mla_with_kvcache(q[0], kc, bt, cs, 512, sched())
    with pytest.raises(ValueError, match="block_table and cache_seqlens"):
        flash_mla.flash_mla_with_kvcache(q, kc, None, cs, 512, sched())
    with pytest.raises(ValueError, match="contiguous"):
        flash_mla.flash_mla_with_kvcache(q.transpose(2, 3).contiguous().transpose(2, 3), kc, bt, cs, 512, sched())


def test_bad_block_table_value_is_caught_on_cpu():
    q, kc, bt, cs = make_case(1, 1, 4, 1, [100], 64, BF16)
    bt[0, 1] = GARBAGE        # inside the used range
    e = _c_message_error(flash_mla.flash_mla_with_kvcache, q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0])
    assert isinstance(e, mla.InvalidArgumentError) and e.message == mla.last_error() and e.message


def test_half_empty_batch():
    b, s_q = 16, 2
    seqlens = varlen_seqlens(b, 100, s_q, seed=5, zero_frac=0.5)
    assert 0 in seqlens
    q, kc, bt, cs = make_case(b, s_q, 8, 1, seqlens, 64, BF16, seed=5)
    out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
    check_out_lse(out, lse, ref_out, ref_lse)
    for i, L in enumerate(seqlens):
        if L == 0:
            assert torch.all(out[i] == 0) and torch.all(lse[i] == math.inf)


def test_strided_inputs_and_given_outputs():
    b, s_q, h_q, h_kv = 2, 2, 6, 2
    q, kc, bt, cs = make_case(b, s_q, h_q, h_kv, [70, 130], 64, FP16, seed=11)
    # FlashMLA's non_contiguousify: pad the last dim by 128 and the others by 1, then slice
    def strided(t):
        big = torch.zeros([s + 1 for s in t.shape[:-1]] + [t.shape[-1] + 128], dtype=t.dtype)
        v = big[tuple(slice(0, s) for s in t.shape)]
        v.copy_(t)
        return v
    qs, kcs = strided(q), strided(kc)
    bts = torch.full((b, bt.shape[1] + 5), GARBAGE, dtype=torch.int32)[:, 2:2 + bt.shape[1]]
    bts.copy_(bt)
    out = torch.empty(b, s_q, h_q, 512 + 64, dtype=FP16)[..., :512]
    lse = torch.empty(b, s_q, h_q, dtype=torch.float32).permute(0, 2, 1)     # FlashMLA's sparse lse layout
    assert not qs.is_contiguous() and not out.is_contiguous() and not lse.is_contiguous()
    o, l = flash_mla.flash_mla_with_kvcache(qs, kcs, bts, cs, 512, flash_mla.get_mla_metadata()[0], causal=True,
                                            out=out, lse=lse)
    assert o is out and l is lse
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_cu_seqlens_q_varlen_queries():
    b, s_q, h_q = 4, 4, 4
    q, kc, bt, cs = make_case(b, s_q, h_q, 1, [50, 3, 0, 200], 16, BF16, seed=21)
    qlens = [4, 2, 0, 1]
    cu = torch.tensor([0] + list(torch.tensor(qlens).cumsum(0)), dtype=torch.int32)
    out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True,
                                                cu_seqlens_q=cu)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True, cu_seqlens_q=cu)
    for i, n in enumerate(qlens):
        check_out_lse(out[i, :n], lse[i, :, :n], ref_out[i, :n], ref_lse[i, :, :n], " request %d" % i)
        assert torch.all(out[i, n:] == 0)        # rows past the request's length are untouched (zeros)


def test_deterministic():
    q, kc, bt, cs = make_case(3, 2, 16, 1, [300, 17, 64], 64, BF16, seed=9)
    a = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True)
    b = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True)
    assert torch.equal(a[0].view(torch.int16), b[0].view(torch.int16))
    assert torch.equal(a[1].view(torch.int32), b[1].view(torch.int32))


class _FakeCudaTensor(object):
    """Quacks like a torch CUDA tensor (device cuda:N) without a GPU: lets a CPU-only machine
    check that CUDA inputs are routed to a GPU plan on their own device index."""

    def __init__(self, t, index):
        self._t = t
        self.shape = t.shape
        self.dtype = t.dtype
        self.device = torch.device("cuda", index)

    def stride(self):
        return self._t.stride()

    def data_ptr(self):
        return 0x10000000

    def numel(self):
        return self._t.numel()

    def element_size(self):
        return self._t.element_size()


@pytest.fixture
def fake_cuda(monkeypatch):
    orig = mla._tensor.is_torch_tensor
    monkeypatch.setattr(mla._tensor, "is_torch_tensor", lambda x: isinstance(x, _FakeCudaTensor) or orig(x))
    return lambda t, index=1: _FakeCudaTensor(t, index)


def test_cuda_tensors_route_to_gpu_plan(fake_cuda, monkeypatch):
    if mla.has_cuda():
        pytest.skip("library has CUDA kernels: the GPU suite covers this")
    created = []
    orig_plan_init = mla._decode.Plan.__init__

    def spy(self, *a, **kw):
        created.append(kw.get("device"))
        return orig_plan_init(self, *a, **kw)
    monkeypatch.setattr(mla._decode.Plan, "__init__", spy)
    q, kc, bt, cs = make_case(2, 1, 4, 1, [10, 20], 64, BF16)
    fq, fk, fb, fc = (fake_cuda(t, 1) for t in (q, kc, bt, cs))
    for api in ("v3", "v2"):
        md = flash_mla.get_mla_metadata()[0] if api == "v3" else None
        with pytest.raises(mla.UnsupportedError) as ei:
            flash_mla.flash_mla_with_kvcache(fq, fk, fb, fc, 512, md)
        assert isinstance(ei.value, NotImplementedError)
        assert ei.value.message == mla.last_error() and ei.value.message
        # a CPU-only build says "built without CUDA kernels"; a CUDA build on a GPU-less machine
        # says that no CUDA device is usable
        assert "without CUDA kernels" in ei.value.message or "CUDA device" in ei.value.message
    assert created and all(d == 1 for d in created)       # the plan was asked for CUDA device 1
    with pytest.raises(ValueError, match="cuda:1 but q is on cpu"):
        flash_mla.flash_mla_with_kvcache(q, fk, bt, cs, 512, None)


def test_gpu_plan_without_usable_gpu():
    if mla.has_cuda():
        pytest.skip("a CUDA device is usable: the GPU suite covers GPU plans")
    with pytest.raises(mla.UnsupportedError) as ei:
        mla.Plan(1, 1, 16, 1, 64, "bf16", device=0)
    assert ei.value.message == mla.last_error()
    assert "without CUDA kernels" in ei.value.message or "CUDA device" in ei.value.message
