"""Test helpers: a pure-torch (float32) reference of ``flash_mla_with_kvcache`` with the same call
signature, and a no-cache greedy reference. Not used by the engine unless passed explicitly."""
from __future__ import annotations

import torch

BACKEND_PREFIX = "torchref"


def get_mla_metadata(*args, **kwargs):
    return object(), None


def flash_mla_with_kvcache(q, k_cache, block_table, cache_seqlens, head_dim_v, tile_scheduler_metadata=None,
                           num_splits=None, softmax_scale=None, causal=False, **unused):
    """Dense paged MLA decode (spec section 3), computed in float32: q [b,s_q,h_q,d], k_cache
    [pages,page,h_kv,d]; V = first head_dim_v dims of K. Returns (out [b,s_q,h_q,dv] in q's dtype,
    lse [b,h_q,s_q] float32)."""
    b, s_q, h_q, d = q.shape
    page, h_kv = k_cache.shape[1], k_cache.shape[2]
    if softmax_scale is None:
        softmax_scale = d ** -0.5
    out = torch.zeros(b, s_q, h_q, head_dim_v, dtype=torch.float32, device=q.device)
    lse = torch.full((b, h_q, s_q), float("inf"), dtype=torch.float32, device=q.device)
    g = h_q // h_kv
    for i in range(b):
        L = int(cache_seqlens[i])
        if L == 0:
            continue
        pos = torch.arange(L, device=q.device)
        pages = block_table[i].long()[pos // page]
        kv = k_cache[pages, pos % page].float()                     # [L, h_kv, d]
        for j in range(s_q):
            last = L - s_q + j if causal else L - 1
            if last < 0:
                continue
            k = kv[: last + 1]
            qq = q[i, j].float().view(h_kv, g, d)                     # [h_kv, g, d]
            s = torch.einsum("hgd,lhd->hgl", qq, k) * softmax_scale
            m = torch.logsumexp(s, dim=-1)                            # [h_kv, g]
            p = torch.exp(s - m[..., None])
            o = torch.einsum("hgl,lhd->hgd", p, k[..., :head_dim_v])
            out[i, j] = o.reshape(h_q, head_dim_v)
            lse[i, :, j] = m.reshape(h_q)
    return out.to(q.dtype), lse


@torch.no_grad()
def greedy_reference(model, prompt_ids, max_new_tokens, eos_ids=()):
    """Greedy decoding by full recompute (no cache): each step runs the whole sequence through the
    naive path. Returns the completion ids (EOS excluded)."""
    ids = list(prompt_ids)
    out = []
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([ids], dtype=torch.long))[0, -1]
        t = int(torch.argmax(logits).item())
        if t in eos_ids:
            break
        out.append(t)
        ids.append(t)
    return out


@torch.no_grad()
def cached_logits(model, prompt_ids, cont_ids, kv_dtype=torch.bfloat16, num_pages=16, page_size=64,
                  shuffle_seed=None):
    """Logits through the serving path: prefill ``prompt_ids`` (naive, writes the paged cache), then
    one absorbed decode step per token of ``cont_ids`` (flash_mla_with_kvcache via model.mla_ops).
    Row k predicts the token after prompt + cont[:k]; shape ``[len(cont_ids) + 1, V]``."""
    from .cache import PagedKVCache
    cfg = model.config
    cache = PagedKVCache(cfg.num_hidden_layers, num_pages, page_size, cfg.kv_cache_dim, kv_dtype, model.device,
                         shuffle_seed=shuffle_seed)
    rows = [model.prefill(torch.tensor(list(prompt_ids)), cache, "r")]
    for t in cont_ids:
        rows.append(model.decode(torch.tensor([int(t)]), cache, ["r"])[0])
    return torch.stack(rows).cpu()


@torch.no_grad()
def full_logits(model, prompt_ids, cont_ids):
    """The same rows as ``cached_logits`` from one naive full forward (no cache)."""
    ids = list(prompt_ids) + [int(t) for t in cont_ids]
    lg = model(torch.tensor([ids]))[0].cpu()
    return lg[len(prompt_ids) - 1:]


def argmax_violations(ref_logits, chosen, tol):
    """Steps where ``chosen[k]`` is not within ``tol`` of the reference maximum (teacher-forced
    check of greedy decoding done at lower precision). Returns a list of (step, gap)."""
    bad = []
    for k, t in enumerate(chosen):
        gap = float(ref_logits[k].max() - ref_logits[k][int(t)])
        if gap > tol:
            bad.append((k, gap))
    return bad
