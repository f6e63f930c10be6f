"""flash_mla's sparse calls (flash_mla_with_kvcache with indices on an FP8 cache, and
flash_mla_sparse_fwd) and mla.sparse on CPU tensors, against an fp32 torch reference written
here (FlashMLA's tests/ref.py semantics): gather the valid keys of the dequantised cache,
softmax, sink factor 1 / (1 + exp(sink - lse)), empty rows out 0 / lse +inf."""
import math

import pytest
import torch

import flash_mla
import mla
import mla.sparse as sp
from mla_testlib import check_allclose

INT_MIN, INT_MAX = -2 ** 31, 2 ** 31 - 1
DEC_OUT_TOL = dict(abs_tol=1e-3, rel_tol=2.01 / 128, cos_diff_tol=5e-6)
LSE_TOL = dict(abs_tol=1e-6, rel_tol=8.01 / 65536, cos_diff_tol=5e-6)
PRE_OUT_TOL = dict(abs_tol=8e-4, rel_tol=3.01 / 128, cos_diff_tol=7e-6)
PRE_STAT_TOL = dict(abs_tol=1e-6, rel_tol=2.01 / 65536, cos_diff_tol=7e-6)


def weird(g, n, limit):
    """n invalid positions for `limit` valid ones (FlashMLA's set)."""
    choices = torch.tensor([INT_MIN, -123456, -1, limit, 114514, 1919810, 2147480000, INT_MAX], dtype=torch.int64)
    v = choices[torch.randint(0, len(choices), (n,), generator=g)]
    v = v[(v < 0) | (v >= limit)]
    while v.numel() < n:
        v = torch.cat([v, torch.tensor([-1])])
    return v[:n].to(torch.int32)


def make_fp8_cache(g, fmt, s_k, ps):
    """A paged FP8 cache holding s_k tokens in shuffled pages (+2 unused), rows nobody uses NaN
    in bf16 before quantisation. Returns (fp8 cache, flat position of every token)."""
    d = 576 if fmt == "V32" else 512
    pages = (s_k + ps - 1) // ps + 2
    perm = torch.randperm(pages, generator=g)
    bf = torch.full((pages, ps, 1, d), float("nan"))
    tok = torch.arange(s_k)
    pos = perm[tok // ps] * ps + tok % ps
    bf.view(-1, d)[pos] = torch.randn(s_k, d, generator=g).clamp(-1, 1)
    return sp.quantize_k_cache(bf.to(torch.bfloat16), fmt), pos.to(torch.int32)


def make_indices(g, b, s_q, topk, pos, limit, invalid="minus1"):
    """[b, s_q, topk]: unique valid tokens (positions `pos`) then invalid entries, shuffled."""
    s_k = pos.numel()
    out = torch.empty(b, s_q, topk, dtype=torch.int32)
    for i in range(b):
        L = int(torch.randint(1, s_k + 1, (1,), generator=g))
        for j in range(s_q):
            nv = 0 if invalid == "all" else min(L, topk)
            row = pos[torch.randperm(L, generator=g)[:nv]]
            bad = weird(g, topk - nv, limit) if invalid != "minus1" else torch.full((topk - nv,), -1, dtype=torch.int32)
            row = torch.cat([row, bad])
            out[i, j] = row[torch.randperm(topk, generator=g)] if invalid != "minus1" else row
    return out


def ref_attend(q, keys, scale, sink, d_v=512):
    """q [h, d] fp32, keys [n, d] fp32 -> out [h, d_v], lse [h], max [h]."""
    h = q.shape[0]
    if keys.shape[0] == 0:
        return torch.zeros(h, d_v), torch.full((h,), math.inf), torch.full((h,), -math.inf)
    s = (q @ keys.T) * scale
    lse = torch.logsumexp(s, dim=-1)
    out = torch.softmax(s, dim=-1) @ keys[:, :d_v]
    if sink is not None:
        out = out / (1 + torch.exp(sink - lse))[:, None]
    return out, lse, s.amax(-1)


def ref_sparse_decode(q, kd, idx, topk_length, sink, scale, ekd=None, eidx=None, etl=None):
    """kd / ekd: dequantised caches flattened to [positions, d] fp32."""
    b, s_q, h_q, _ = q.shape
    out = torch.empty(b, s_q, h_q, 512)
    lse = torch.empty(b, h_q, s_q)
    for i in range(b):
        for j in range(s_q):
            keys = []
            for cache, ind, tl in ((kd, idx, topk_length), (ekd, eidx, etl)):
                if cache is None:
                    continue
                n = ind.shape[-1] if tl is None else max(0, min(int(tl[i]), ind.shape[-1]))
                row = ind[i, j, :n].long()
                row = row[(row >= 0) & (row < cache.shape[0])]
                keys.append(cache[row])
            o, l, _ = ref_attend(q[i, j].float(), torch.cat(keys), scale, sink)
            out[i, j], lse[i, :, j] = o, l
    return out, lse


def flat(deq):
    return deq.float().reshape(-1, deq.shape[-1])


def make_sink(g, h):
    s = torch.randn(h, generator=g)
    u = torch.rand(h, generator=g)
    s[u < 0.15] = math.inf
    s[(u >= 0.15) & (u < 0.3)] = -math.inf
    return s


def test_sparse_decode_cpu_key_split():
    """A call of few row tiles (b=1, 16 heads) splits its 2048 positions into 4 ranges on the
    CPU (the plan reports the workspace; mla.sparse keeps one per thread): it meets the
    reference, and so does the same call with a 1-byte workspace, which runs unsplit."""
    g = torch.Generator().manual_seed(77)
    kc, pos = make_fp8_cache(g, "V32", 4096, 64)
    idx = make_indices(g, 1, 1, 2048, pos, kc.shape[0] * 64, "weird")
    q = torch.randn(1, 1, 16, 576, generator=g).clamp(-1, 1).to(torch.bfloat16)
    sink = make_sink(g, 16)
    plan = sp.SparseDecodePlan(1, 1, 16, 2048, 64, "V32")
    assert plan.workspace_size == 16 * 16 * 514 * 4 + 64   # 1 row tile: 16 ranges at most
    ref_out, ref_lse = ref_sparse_decode(q, flat(sp.dequantize_k_cache(kc)), idx, None, sink, 576 ** -0.5)
    for ws in (None, torch.empty(1, dtype=torch.uint8)):
        out, lse = sp.sparse_decode(q, kc, idx, attn_sink=sink, workspace=ws)
        check_allclose("out", out.float(), ref_out, **DEC_OUT_TOL)
        check_allclose("lse", lse, ref_lse, **LSE_TOL)


@pytest.mark.parametrize("fmt,b,s_q,h_q,s_k,topk,ps,invalid,sink,tl", [
    ("V32", 4, 1, 64, 512, 64, 2, "minus1", True, False),
    ("V32", 2, 2, 3, 1024, 576, 61, "weird", True, True),
    ("V32", 2, 1, 128, 2046, 2048, 576, "minus1", False, False),
    ("MODEL1", 4, 3, 64, 512, 64, 69, "weird", True, True),
    ("MODEL1", 2, 2, 16, 1024, 576, 2, "minus1", True, False),
    ("MODEL1", 3, 1, 128, 300, 128, 64, "all", True, True),
])
def test_flash_mla_sparse_decode(fmt, b, s_q, h_q, s_k, topk, ps, invalid, sink, tl):
    g = torch.Generator().manual_seed(b * 7 + s_q * 3 + h_q + topk + ps)
    d = 576 if fmt == "V32" else 512
    kc, pos = make_fp8_cache(g, fmt, s_k, ps)
    idx = make_indices(g, b, s_q, topk, pos, kc.shape[0] * ps, invalid)
    q = torch.randn(b, s_q, h_q, d, generator=g).clamp(-1, 1).to(torch.bfloat16)
    attn_sink = make_sink(g, h_q) if sink else None
    topk_length = torch.randint(-2, topk + 3, (b,), generator=g, dtype=torch.int32) if tl else None
    scale = d ** -0.55
    sched, _ = flash_mla.get_mla_metadata()
    out, lse = flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, sched, softmax_scale=scale,
                                                is_fp8_kvcache=True, indices=idx, attn_sink=attn_sink,
                                                topk_length=topk_length)
    assert out.dtype == torch.bfloat16 and out.shape == (b, s_q, h_q, 512)
    assert lse.shape == (b, h_q, s_q) and lse.stride() == (s_q * h_q, 1, h_q)   # FlashMLA's transposed view
    assert sched.have_initialized and sched.config.topk == topk
    ref_out, ref_lse = ref_sparse_decode(q, flat(sp.dequantize_k_cache(kc)), idx, topk_length, attn_sink, scale)
    check_allclose("out", out.float(), ref_out, **DEC_OUT_TOL)
    check_allclose("lse", lse, ref_lse, **LSE_TOL)
    if invalid == "all":
        assert (out == 0).all() and torch.isinf(lse).all() and (lse > 0).all()
    # a second layer reuses the sched_meta; a different topk does not match it
    out2, _ = flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, sched, softmax_scale=scale,
                                               is_fp8_kvcache=True, indices=idx, attn_sink=attn_sink,
                                               topk_length=topk_length)
    assert torch.equal(out2.view(torch.int16), out.view(torch.int16))
    with pytest.raises(AssertionError, match="topk"):
        flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, sched, softmax_scale=scale, is_fp8_kvcache=True,
                                         indices=torch.cat([idx, idx], dim=-1))


def test_flash_mla_sparse_decode_extra_cache():
    """MODEL1 with topk_length and an extra cache of another page size (the V4 pattern: SWA
    tokens in k_cache, compressed tokens in extra_k_cache)."""
    g = torch.Generator().manual_seed(11)
    b, s_q, h_q, topk, extra_topk = 3, 2, 64, 128, 256
    kc, pos = make_fp8_cache(g, "MODEL1", 700, 256)
    ec, epos = make_fp8_cache(g, "MODEL1", 400, 64)
    idx = make_indices(g, b, s_q, topk, pos, kc.shape[0] * 256, "weird")
    eidx = make_indices(g, b, s_q, extra_topk, epos, ec.shape[0] * 64, "weird")
    q = torch.randn(b, s_q, h_q, 512, generator=g).clamp(-1, 1).to(torch.bfloat16)
    sink = make_sink(g, h_q)
    tl = torch.tensor([5, 128, 0], dtype=torch.int32)
    etl = torch.tensor([256, 17, 300], dtype=torch.int32)
    tile_md, num_splits = flash_mla.get_mla_metadata(tl, s_q * h_q, 1, h_q, True, topk)   # 2025 API
    out, lse = flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, tile_md, num_splits, is_fp8_kvcache=True,
                                                indices=idx, attn_sink=sink, extra_k_cache=ec,
                                                extra_indices_in_kvcache=eidx, topk_length=tl,
                                                extra_topk_length=etl)
    ref_out, ref_lse = ref_sparse_decode(q, flat(sp.dequantize_k_cache(kc)), idx, tl, sink, 512 ** -0.5,
                                         flat(sp.dequantize_k_cache(ec)), eidx, etl)
    check_allclose("out", out.float(), ref_out, **DEC_OUT_TOL)
    check_allclose("lse", lse, ref_lse, **LSE_TOL)


def ref_sparse_prefill(q, kv, idx, scale, sink, topk_length):
    s_q, h_q, _ = q.shape
    h_kv = kv.shape[1]
    hpk = h_q // h_kv
    out = torch.empty(s_q, h_q, 512)
    lse = torch.empty(s_q, h_q)
    mx = torch.empty(s_q, h_q)
    for s in range(s_q):
        n = idx.shape[-1] if topk_length is None else max(0, min(int(topk_length[s]), idx.shape[-1]))
        for gk in range(h_kv):
            row = idx[s, gk, :n].long()
            row = row[(row >= 0) & (row < kv.shape[0])]
            hs = slice(gk * hpk, (gk + 1) * hpk)
            o, l, m = ref_attend(q[s, hs].float(), kv[row, gk].float(), scale,
                                 None if sink is None else sink[hs])
            out[s, hs], lse[s, hs], mx[s, hs] = o, l, m
    return out, mx, lse


@pytest.mark.parametrize("d,h_q,s_q,s_kv,topk,sink,tl,all_invalid", [
    (576, 64, 17, 592, 128, False, False, False),
    (512, 128, 5, 1521, 512, True, True, False),
    (576, 16, 40, 95, 128, True, False, False),       # s_kv < topk: out-of-bounds entries
    (512, 64, 8, 32, 2048, False, True, False),
    (576, 64, 6, 256, 256, True, True, True),
])
def test_flash_mla_sparse_fwd(d, h_q, s_q, s_kv, topk, sink, tl, all_invalid):
    g = torch.Generator().manual_seed(d + h_q + s_q + s_kv + topk)
    off = torch.randn(2, generator=g) / 10
    q = (torch.randn(s_q, h_q, d, generator=g) / 10 + off[0]).to(torch.bfloat16)
    kv = (torch.randn(s_kv, 1, d, generator=g) / 10 + off[1]).to(torch.bfloat16)
    idx = torch.empty(s_q, 1, topk, dtype=torch.int32)
    for s in range(s_q):
        nv = 0 if all_invalid else min(s_kv, topk) * 3 // 4
        row = torch.cat([torch.randperm(s_kv, generator=g)[:nv].to(torch.int32), weird(g, topk - nv, s_kv)])
        idx[s, 0] = row[torch.randperm(topk, generator=g)]
    attn_sink = make_sink(g, h_q) if sink else None
    topk_length = torch.randint(-1, topk + 2, (s_q,), generator=g, dtype=torch.int32) if tl else None
    out, max_logits, lse = flash_mla.flash_mla_sparse_fwd(q, kv, idx, 0.5, 512, attn_sink, topk_length)
    assert out.dtype == torch.bfloat16 and out.shape == (s_q, h_q, 512)
    ref_out, ref_max, ref_lse = ref_sparse_prefill(q, kv, idx, 0.5, attn_sink, topk_length)
    check_allclose("out", out.float(), ref_out, **PRE_OUT_TOL)
    check_allclose("max_logits", max_logits, ref_max, **PRE_STAT_TOL)
    check_allclose("lse", lse, ref_lse, **PRE_STAT_TOL)
    if all_invalid:
        assert (out == 0).all() and (max_logits == -math.inf).all() and (lse == math.inf).all()


def test_sparse_prefill_h_kv_2_and_numpy():
    np = pytest.importorskip("numpy")
    g = torch.Generator().manual_seed(5)
    s_q, h_q, h_kv, s_kv, topk = 9, 8, 2, 300, 64
    q = (torch.randn(s_q, h_q, 576, generator=g) / 10).to(torch.bfloat16)
    kv = (torch.randn(s_kv, h_kv, 576, generator=g) / 10).to(torch.bfloat16)
    idx = torch.randint(-5, s_kv + 5, (s_q, h_kv, topk), generator=g, dtype=torch.int32)
    out, mx, lse = sp.sparse_prefill(q, kv, idx, 0.3)
    ref = ref_sparse_prefill(q, kv, idx, 0.3, None, None)
    check_allclose("out", out.float(), ref[0], **PRE_OUT_TOL)
    check_allclose("max_logits", mx, ref[1], **PRE_STAT_TOL)
    check_allclose("lse", lse, ref[2], **PRE_STAT_TOL)
    as_np = lambda t: t.view(torch.int16).numpy().view(np.uint16)
    o2, m2, l2 = sp.sparse_prefill(as_np(q), as_np(kv), idx.numpy(), 0.3)
    assert o2.dtype == np.uint16 and (o2 == as_np(out)).all()
    assert (m2 == mx.numpy()).all() and (l2 == lse.numpy()).all()


def test_sparse_errors():
    g = torch.Generator().manual_seed(1)
    kc, pos = make_fp8_cache(g, "V32", 64, 64)
    q = torch.randn(1, 1, 64, 576).to(torch.bfloat16)
    idx = pos[:64].view(1, 1, 64).clone()
    sched, _ = flash_mla.get_mla_metadata()
    with pytest.raises(ValueError, match="causal"):
        flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, sched, causal=True, is_fp8_kvcache=True, indices=idx)
    with pytest.raises(ValueError, match="is_fp8_kvcache=True"):
        flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, sched, indices=idx)
    with pytest.raises(ValueError, match="d_qk"):      # a MODEL1-sized q on a V32 cache
        sp.sparse_decode(q[..., :512].contiguous(), kc, idx)
    with pytest.raises(ValueError, match="one per query head"):
        sp.sparse_decode(q, kc, idx, attn_sink=torch.zeros(3))
    with pytest.raises(ValueError, match="together"):
        sp.sparse_decode(q, kc, idx, extra_k_cache=kc)
    with pytest.raises(ValueError, match="sm_scale"):
        flash_mla.flash_mla_sparse_fwd(q[0], q[0, :, :1], idx, None)
    with pytest.raises(mla.InvalidArgumentError, match="softmax_scale"):   # the C library's check
        flash_mla.flash_mla_sparse_fwd(q[0], q[0, :, :1], idx, float("nan"))
    assert not sched.have_initialized


_GPU = torch.cuda.is_available() and mla.has_cuda()


@pytest.mark.skipif(not _GPU, reason="needs a CUDA GPU and a CUDA build of libmla")
@pytest.mark.parametrize("fmt", ["V32", "MODEL1"])
def test_sparse_gpu_matches_cpu(fmt):
    """flash_mla's sparse decode and prefill on CUDA tensors against the same calls on CPU tensors
    (the sparse GPU kernels need compute capability 9.0; other GPUs give mla.UnsupportedError)."""
    g = torch.Generator().manual_seed(11 if fmt == "V32" else 12)
    d = 576 if fmt == "V32" else 512
    b, s_q, h_q, topk, ps = 5, 2, 64, 576, 61
    kc, pos = make_fp8_cache(g, fmt, 1500, ps)
    ekc, epos = make_fp8_cache(g, fmt, 400, 16)
    idx = make_indices(g, b, s_q, topk, pos, kc.shape[0] * ps, "weird")
    eidx = make_indices(g, b, s_q, 128, epos, ekc.shape[0] * 16, "minus1")
    q = torch.randn(b, s_q, h_q, d, generator=g).clamp(-1, 1).to(torch.bfloat16)
    sink = make_sink(g, h_q)
    tl = torch.randint(-2, topk + 3, (b,), generator=g, dtype=torch.int32)
    etl = torch.randint(0, 129, (b,), generator=g, dtype=torch.int32)
    cc = torch.cuda.get_device_capability()
    args = dict(softmax_scale=d ** -0.55, is_fp8_kvcache=True, attn_sink=sink, topk_length=tl,
                extra_k_cache=ekc, extra_indices_in_kvcache=eidx, extra_topk_length=etl)
    cuda = {k: (v.cuda() if torch.is_tensor(v) else v) for k, v in args.items()}
    if cc != (9, 0):
        with pytest.raises(mla.UnsupportedError, match="compute capability 9.0"):
            flash_mla.flash_mla_with_kvcache(q.cuda(), kc.cuda(), None, None, 512, flash_mla.get_mla_metadata()[0],
                                             indices=idx.cuda(), **cuda)
        return
    out_c, lse_c = flash_mla.flash_mla_with_kvcache(q, kc, None, None, 512, flash_mla.get_mla_metadata()[0],
                                                    indices=idx, **args)
    out_g, lse_g = flash_mla.flash_mla_with_kvcache(q.cuda(), kc.cuda(), None, None, 512,
                                                    flash_mla.get_mla_metadata()[0], indices=idx.cuda(), **cuda)
    torch.cuda.synchronize()
    assert out_g.is_cuda and lse_g.shape == (b, h_q, s_q)
    # cache values up to 1: bf16 P (as in FlashMLA's kernel) moves some outputs by a few bf16 ulps
    check_allclose("out", out_g.float(), out_c.float(), abs_tol=4e-3, rel_tol=2.01 / 128, cos_diff_tol=5e-6)
    check_allclose("lse", lse_g, lse_c, **LSE_TOL)
    # sparse prefill, d_qk of this format, FlashMLA's prefill data
    s_kv, pt = 900, 320
    off = torch.randn(2, generator=g) / 10
    qp = (torch.randn(40, 64, d, generator=g) / 10 + off[0]).to(torch.bfloat16)
    kv = (torch.randn(s_kv, 1, d, generator=g) / 10 + off[1]).to(torch.bfloat16)
    pidx = torch.stack([torch.cat([torch.randperm(s_kv, generator=g)[:240].to(torch.int32), weird(g, pt - 240, s_kv)])
                        for _ in range(40)]).view(40, 1, pt)
    ptl = torch.randint(-1, pt + 2, (40,), generator=g, dtype=torch.int32)
    ref = flash_mla.flash_mla_sparse_fwd(qp, kv, pidx, 0.5, 512, sink, ptl)
    got = flash_mla.flash_mla_sparse_fwd(qp.cuda(), kv.cuda(), pidx.cuda(), 0.5, 512, sink.cuda(), ptl.cuda())
    torch.cuda.synchronize()
    check_allclose("prefill out", got[0].float(), ref[0].float(), abs_tol=8e-4, rel_tol=3.01 / 128, cos_diff_tol=7e-6)
    for name, a, r in (("max_logits", got[1], ref[1]), ("lse", got[2], ref[2])):
        check_allclose(name, a, r, abs_tol=1e-5, rel_tol=2.01 / 65536, cos_diff_tol=7e-6)
