"""Shared test helpers: case generation (FlashMLA's protocol), an independent fp32 torch
reference of dense MLA decode, and a FlashMLA-style allclose."""
import math

import torch

GARBAGE = 2147480000       # unused block_table entries (spec §6)
OUT_TOL = dict(abs_tol=8e-4, rel_tol=2.01 / 128, cos_diff_tol=5e-6)
LSE_TOL = dict(abs_tol=1e-6, rel_tol=8.01 / 65536, cos_diff_tol=5e-6)


def make_case(b, s_q, h_q, h_kv, seqlens, page, dtype, d_qk=576, seed=0, extra_cols=2, device="cpu"):
    """q, k_cache, block_table, cache_seqlens in FlashMLA's test style: randn/10 clamped to
    [-1, 1], pages shuffled, unused cache rows (and unused pages) NaN, unused block_table
    entries GARBAGE."""
    g = torch.Generator().manual_seed(seed)
    gd = torch.Generator(device=device).manual_seed(seed)     # big draws happen on `device`
    seqlens = [int(x) for x in seqlens]
    assert len(seqlens) == b
    npages = [(L + page - 1) // page for L in seqlens]
    max_pages = max(max(npages), 1) + extra_cols
    num_pages = sum(npages) + 3                     # a few pages nobody uses
    q = (torch.randn(b, s_q, h_q, d_qk, generator=gd, device=device) / 10).clamp(-1, 1).to(dtype)
    k_cache = (torch.randn(num_pages, page, h_kv, d_qk, generator=gd, device=device) / 10).clamp(-1, 1)
    perm = torch.randperm(num_pages, generator=g)
    block_table = torch.full((b, max_pages), GARBAGE, dtype=torch.int32)
    used = torch.zeros(num_pages, dtype=torch.bool)
    at = 0
    for i, L in enumerate(seqlens):
        for j in range(npages[i]):
            p = int(perm[at]); at += 1
            block_table[i, j] = p
            used[p] = True
            first_bad = L - j * page                  # rows of this page past the sequence
            if first_bad < page:
                k_cache[p, first_bad:] = float("nan")
    k_cache[(~used).to(device)] = float("nan")
    k_cache = k_cache.to(dtype)
    cache_seqlens = torch.tensor(seqlens, dtype=torch.int32)
    return q, k_cache, block_table.to(device), cache_seqlens.to(device)


def varlen_seqlens(b, s_k, s_q, seed=0, zero_frac=0.0):
    """FlashMLA-style lengths: max(N(s_k, s_k/2), s_q), some set to 0."""
    g = torch.Generator().manual_seed(1000 + seed)
    out = []
    for _ in range(b):
        L = int(max(torch.normal(float(s_k), s_k / 2.0, (1,), generator=g).item(), s_q))
        if zero_frac and torch.rand(1, generator=g).item() < zero_frac:
            L = 0
        out.append(L)
    return out


def ref_decode(q, k_cache, block_table, cache_seqlens, causal=False, softmax_scale=None, d_v=512,
               cu_seqlens_q=None):
    """Independent fp32 reference: gather each request's pages, scores, bottom-right causal
    mask, softmax, natural lse. Rows with no visible key: out 0, lse +inf."""
    dev = q.device                    # computed where q lives (CPU or GPU), in fp32
    q = q.float(); k_cache = k_cache.float().to(dev)
    block_table = block_table.cpu(); cache_seqlens = cache_seqlens.cpu()
    if cu_seqlens_q is not None:
        cu_seqlens_q = cu_seqlens_q.cpu()
    b, s_q, h_q, d = q.shape
    page, h_kv = k_cache.shape[1], k_cache.shape[2]
    scale = d ** -0.5 if softmax_scale is None else softmax_scale
    out = torch.zeros(b, s_q, h_q, d_v, device=dev)
    lse = torch.full((b, h_q, s_q), math.inf, device=dev)
    for i in range(b):
        L = int(cache_seqlens[i])
        n = s_q if cu_seqlens_q is None else int(cu_seqlens_q[i + 1] - cu_seqlens_q[i])
        if L == 0 or n == 0:
            continue
        np_ = (L + page - 1) // page
        pages = block_table[i, :np_].long().to(dev)
        kv = k_cache[pages].reshape(np_ * page, h_kv, d)[:L]                 # [L, h_kv, d]
        qi = q[i, :n].reshape(n, h_kv, h_q // h_kv, d)                        # head h -> KV head h // g
        s = torch.einsum("nkgd,lkd->kgnl", qi, kv).reshape(h_q, n, L) * scale  # [h_q, n, L]
        if causal:
            rows = torch.arange(n, device=dev).view(n, 1)
            cols = torch.arange(L, device=dev).view(1, L)
            s = s.masked_fill(cols > (L - n + rows), float("-inf"))
        row_lse = torch.logsumexp(s, dim=-1)                                  # [h_q, n]
        empty = torch.isinf(row_lse) & (row_lse < 0)
        p = torch.exp(s - row_lse.unsqueeze(-1))
        p = torch.where(empty.unsqueeze(-1), torch.zeros_like(p), p)
        o = torch.einsum("kgnl,lkd->nkgd", p.reshape(h_kv, h_q // h_kv, n, L), kv[..., :d_v]).reshape(n, h_q, d_v)
        out[i, :n] = o
        lse[i, :, :n] = torch.where(empty, torch.full_like(row_lse, math.inf), row_lse)
    return out, lse


def check_allclose(name, ans, ref, abs_tol, rel_tol, cos_diff_tol):
    """FlashMLA-style comparison: +-inf and NaN at the same places; every other element within
    abs_tol or rel_tol; and cos_diff = 1 - 2<a,b>/(|a|^2+|b|^2) <= cos_diff_tol (fp64)."""
    a = ans.detach().cpu().double()
    r = ref.detach().cpu().double()
    assert a.shape == r.shape, "%s: shape %s != %s" % (name, tuple(a.shape), tuple(r.shape))
    for what, fa, fr in (("+inf", a == math.inf, r == math.inf), ("-inf", a == -math.inf, r == -math.inf),
                         ("nan", torch.isnan(a), torch.isnan(r))):
        bad = (fa != fr).nonzero()
        assert bad.numel() == 0, "%s: %s positions differ, first at %s (ans %s, ref %s)" % (
            name, what, bad[0].tolist(), a[tuple(bad[0])].item(), r[tuple(bad[0])].item())
    special = torch.isinf(r) | torch.isnan(r)
    a = a.masked_fill(special, 0.0)
    r = r.masked_fill(special, 0.0)
    err = (a - r).abs()
    rel = err / (r.abs() + 1e-6)
    bad = ~((err < abs_tol) | (rel < rel_tol))
    if bad.any():
        idx = bad.nonzero()[0]
        raise AssertionError("%s: %d elements out of tolerance, first at %s: ans %r ref %r (abs %g rel %g)" % (
            name, int(bad.sum()), idx.tolist(), a[tuple(idx)].item(), r[tuple(idx)].item(),
            err[tuple(idx)].item(), rel[tuple(idx)].item()))
    denom = (a * a + r * r).sum().item()
    cos_diff = 0.0 if denom == 0 else 1 - 2 * (a * r).sum().item() / denom
    assert cos_diff <= cos_diff_tol, "%s: cos_diff %g > %g" % (name, cos_diff, cos_diff_tol)


def check_out_lse(out, lse, ref_out, ref_lse, tag=""):
    check_allclose("out" + tag, out.float() if hasattr(out, "float") else out, ref_out, **OUT_TOL)
    check_allclose("lse" + tag, lse, ref_lse, **LSE_TOL)
