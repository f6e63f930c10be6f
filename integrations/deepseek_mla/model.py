"""DeepSeek-V2/V3 decoder in plain PyTorch with Multi-head Latent Attention (MLA).

Module and parameter names are the Hugging Face ones (``model.layers.N.self_attn.kv_b_proj.weight``,
...), so a checkpoint's state dict loads as is.

Two attention paths:

* ``forward`` / ``prefill`` — the naive (non-absorbed) path: K and V are expanded from the latent
  through ``kv_b_proj`` and attention is a plain masked softmax; math and layout as transformers'
  ``DeepseekV3Attention`` (eager). ``prefill`` also writes ``[c_kv | k_pe]`` into the paged cache.
* ``decode`` — the weight-absorbed step (DeepSeek-V2 paper, vLLM/SGLang ``forward_absorb``):
  ``q_nope`` goes through ``W_UK`` into the 512-wide latent, RoPE on the 64 rope dims, the new
  ``[c_kv | k_pe]`` row is written into the paged cache, ``flash_mla.flash_mla_with_kvcache`` does
  MQA attention over the latent cache (d_qk 576, d_v 512), and the result goes out through ``W_UV``
  and ``o_proj``.
"""
from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch import nn

from .config import DeepseekConfig, yarn_get_mscale

_ACT = {"silu": F.silu, "gelu": F.gelu, "relu": F.relu}


# ---------------------------------------------------------------------------------------- ops
_ops_lock = threading.Lock()
_default_ops = None


def default_mla_ops():
    """The ``flash_mla`` module (this project's, over libmla): ``get_mla_metadata`` and
    ``flash_mla_with_kvcache``. Imported on first use."""
    global _default_ops
    with _ops_lock:
        if _default_ops is None:
            import flash_mla  # noqa: WPS433 (lazy: the model is importable without the native lib)
            _default_ops = flash_mla
        return _default_ops


# ---------------------------------------------------------------------------------------- layers
class RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dt = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dt)


def rope_inv_freq(cfg: DeepseekConfig) -> tuple[torch.Tensor, float]:
    """Inverse frequencies for the ``qk_rope_head_dim`` rope dims and the cos/sin scale
    (yarn ``attention_factor``), as DeepSeek / transformers compute them."""
    dim = cfg.qk_rope_head_dim
    base = float(cfg.rope_theta)
    if cfg.rope_type == "default":
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(torch.float32) / dim)), 1.0
    rs = cfg.rope_scaling
    factor = rs.get("factor")
    orig = rs.get("original_max_position_embeddings", cfg.max_position_embeddings)
    if factor is None:
        factor = cfg.max_position_embeddings / orig
    mscale, mscale_all_dim = rs.get("mscale"), rs.get("mscale_all_dim")
    attention_factor = rs.get("attention_factor")
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = yarn_get_mscale(factor)
    beta_fast = rs.get("beta_fast") or 32
    beta_slow = rs.get("beta_slow") or 1

    def corr_dim(n_rot):
        return (dim * math.log(orig / (n_rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if rs.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float32) / dim)
    extra, inter = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
    extra_factor = 1 - ramp
    inv_freq = inter * (1 - extra_factor) + extra * extra_factor
    return inv_freq, float(attention_factor)


class RotaryEmbedding(nn.Module):
    """cos/sin of shape ``[..., rope_dim // 2]`` (one angle per interleaved pair)."""

    def __init__(self, cfg: DeepseekConfig):
        super().__init__()
        inv_freq, self.attention_scaling = rope_inv_freq(cfg)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype):
        freqs = positions[..., None].float() * self.inv_freq.to(device=positions.device, dtype=torch.float32)
        return (freqs.cos() * self.attention_scaling).to(dtype), (freqs.sin() * self.attention_scaling).to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleave: bool = True) -> torch.Tensor:
    """Rotate the last dim of ``x``. DeepSeek checkpoints hold the rope dims as interleaved pairs
    ``(x0,x1),(x2,x3),..``; the result is de-interleaved ``[evens' | odds']`` exactly like
    transformers' ``apply_rotary_pos_emb_interleave`` (and modeling_deepseek's view/transpose +
    rotate_half). ``cos``/``sin`` broadcast against ``x[..., :d/2]``."""
    if interleave:
        x1, x2 = x[..., 0::2], x[..., 1::2]
    else:
        h = x.shape[-1] // 2
        x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class MLP(nn.Module):
    def __init__(self, cfg: DeepseekConfig, intermediate_size: int | None = None):
        super().__init__()
        inter = cfg.intermediate_size if intermediate_size is None else intermediate_size
        self.gate_proj = nn.Linear(cfg.hidden_size, inter, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, inter, bias=False)
        self.down_proj = nn.Linear(inter, cfg.hidden_size, bias=False)
        self.act = _ACT[cfg.hidden_act]

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class MoEGate(nn.Module):
    """Router. V3: sigmoid scores + ``e_score_correction_bias``, group-limited ``noaux_tc`` choice,
    normalised top-k weights times ``routed_scaling_factor``. V2: softmax scores, ``greedy`` or
    ``group_limited_greedy``."""

    def __init__(self, cfg: DeepseekConfig):
        super().__init__()
        self.cfg = cfg
        self.top_k = cfg.num_experts_per_tok
        self.n_experts = cfg.n_routed_experts
        self.weight = nn.Parameter(torch.empty(cfg.n_routed_experts, cfg.hidden_size))
        if cfg.topk_method == "noaux_tc":
            self.register_buffer("e_score_correction_bias", torch.zeros(cfg.n_routed_experts, dtype=torch.float32))
        else:
            self.e_score_correction_bias = None

    def forward(self, h: torch.Tensor):
        cfg = self.cfg
        h = h.reshape(-1, h.shape[-1])
        logits = F.linear(h.float(), self.weight.float())
        if cfg.scoring_func == "sigmoid":
            scores = logits.sigmoid()
        else:
            scores = logits.softmax(dim=-1, dtype=torch.float32)
        n, e = scores.shape
        if cfg.topk_method == "noaux_tc":
            choice = scores + self.e_score_correction_bias.float()
            g = cfg.n_group
            group_scores = choice.view(n, g, e // g).topk(2, dim=-1)[0].sum(dim=-1)
            group_idx = torch.topk(group_scores, k=cfg.topk_group, dim=-1, sorted=False)[1]
            gmask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
            smask = gmask.unsqueeze(-1).expand(n, g, e // g).reshape(n, e)
            choice = choice.masked_fill(~smask.bool(), float("-inf"))
            idx = torch.topk(choice, k=self.top_k, dim=-1, sorted=False)[1]
            w = scores.gather(1, idx)
        elif cfg.topk_method == "group_limited_greedy":
            g = cfg.n_group
            group_scores = scores.view(n, g, e // g).max(dim=-1).values
            group_idx = torch.topk(group_scores, k=cfg.topk_group, dim=-1, sorted=False)[1]
            gmask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
            smask = gmask.unsqueeze(-1).expand(n, g, e // g).reshape(n, e)
            w, idx = torch.topk(scores.masked_fill(~smask.bool(), 0.0), k=self.top_k, dim=-1, sorted=False)
        else:  # greedy
            w, idx = torch.topk(scores, k=self.top_k, dim=-1, sorted=False)
        normed = self.top_k > 1 and cfg.norm_topk_prob
        if normed:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        if cfg.scoring_func == "sigmoid" or not normed:
            w = w * cfg.routed_scaling_factor
        return idx, w


class MoE(nn.Module):
    def __init__(self, cfg: DeepseekConfig):
        super().__init__()
        self.experts = nn.ModuleList([MLP(cfg, cfg.moe_intermediate_size) for _ in range(cfg.n_routed_experts)])
        self.gate = MoEGate(cfg)
        self.shared_experts = (MLP(cfg, cfg.moe_intermediate_size * cfg.n_shared_experts)
                               if cfg.n_shared_experts else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        idx, w = self.gate(x)
        h = x.reshape(-1, shape[-1])
        out = torch.zeros_like(h)
        for e in torch.unique(idx).tolist():
            tok, k = torch.where(idx == e)
            y = self.experts[e](h[tok]) * w[tok, k, None]
            out.index_add_(0, tok, y.to(out.dtype))
        out = out.view(shape)
        if self.shared_experts is not None:
            out = out + self.shared_experts(x)
        return out


class MLAAttention(nn.Module):
    def __init__(self, cfg: DeepseekConfig, layer_idx: int):
        super().__init__()
        self.cfg = cfg
        self.layer_idx = layer_idx
        self.n_heads = cfg.num_attention_heads
        self.nope, self.rope, self.vdim = cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.v_head_dim
        self.qk_head_dim = cfg.qk_head_dim
        self.kv_lora_rank = cfg.kv_lora_rank
        self.scale = cfg.softmax_scale
        H, N = cfg.hidden_size, self.n_heads
        if cfg.q_lora_rank is None:
            self.q_proj = nn.Linear(H, N * self.qk_head_dim, bias=False)
        else:
            self.q_a_proj = nn.Linear(H, cfg.q_lora_rank, bias=cfg.attention_bias)
            self.q_a_layernorm = RMSNorm(cfg.q_lora_rank)
            self.q_b_proj = nn.Linear(cfg.q_lora_rank, N * self.qk_head_dim, bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(H, cfg.kv_lora_rank + self.rope, bias=cfg.attention_bias)
        self.kv_a_layernorm = RMSNorm(cfg.kv_lora_rank)
        self.kv_b_proj = nn.Linear(cfg.kv_lora_rank, N * (self.nope + self.vdim), bias=False)
        self.o_proj = nn.Linear(N * self.vdim, H, bias=cfg.attention_bias)
        self._absorbed = None      # (key, W_UK [N,P,L], W_UV [N,V,L])

    # -------------------------------------------------------------- shared projections
    def _q(self, h):
        if self.cfg.q_lora_rank is None:
            return self.q_proj(h)
        return self.q_b_proj(self.q_a_layernorm(self.q_a_proj(h)))

    def project(self, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """h ``[..., H]`` -> q_nope ``[..., N, P]``, q_pe ``[..., N, R]`` (roped), c_kv ``[..., L]``
        (normed latent), k_pe ``[..., R]`` (roped). cos/sin ``[..., R/2]``."""
        q = self._q(h).view(*h.shape[:-1], self.n_heads, self.qk_head_dim)
        q_nope, q_pe = torch.split(q, [self.nope, self.rope], dim=-1)
        latent = self.kv_a_proj_with_mqa(h)
        c_kv, k_pe = torch.split(latent, [self.kv_lora_rank, self.rope], dim=-1)
        c_kv = self.kv_a_layernorm(c_kv)
        il = self.cfg.rope_interleave
        q_pe = apply_rope(q_pe, cos.unsqueeze(-2), sin.unsqueeze(-2), il)
        k_pe = apply_rope(k_pe, cos, sin, il)
        return q_nope, q_pe, c_kv, k_pe

    def absorbed_weights(self):
        """``W_UK [N, P, L]`` and ``W_UV [N, V, L]`` views of ``kv_b_proj.weight`` (cached; refreshed
        when the weight changes)."""
        w = self.kv_b_proj.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        if self._absorbed is None or self._absorbed[0] != key:
            wk = w.detach().view(self.n_heads, self.nope + self.vdim, self.kv_lora_rank)
            self._absorbed = (key, wk[:, :self.nope].contiguous(), wk[:, self.nope:].contiguous())
        return self._absorbed[1], self._absorbed[2]

    # -------------------------------------------------------------- naive path
    def forward_naive(self, h: torch.Tensor, cos, sin, kv_sink=None) -> torch.Tensor:
        """Causal self-attention over ``h [B, T, H]`` with K/V expanded from the latent
        (transformers' eager DeepseekV3Attention). ``kv_sink(c_kv [B,T,L], k_pe [B,T,R])`` receives
        the cache rows."""
        B, T, _ = h.shape
        N = self.n_heads
        q_nope, q_pe, c_kv, k_pe = self.project(h, cos, sin)       # [B,T,N,P] [B,T,N,R] [B,T,L] [B,T,R]
        if kv_sink is not None:
            kv_sink(c_kv, k_pe)
        kv = self.kv_b_proj(c_kv).view(B, T, N, self.nope + self.vdim)
        k_nope, v = torch.split(kv, [self.nope, self.vdim], dim=-1)
        q = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)                               # [B,N,T,D]
        k = torch.cat([k_nope, k_pe.unsqueeze(2).expand(B, T, N, self.rope)], dim=-1).transpose(1, 2)
        v = v.transpose(1, 2)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scale
        mask = torch.ones(T, T, dtype=torch.bool, device=h.device).tril()
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        p = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, N * self.vdim)
        return self.o_proj(o)

    # -------------------------------------------------------------- absorbed decode
    def forward_decode(self, h: torch.Tensor, cos, sin, k_cache: torch.Tensor, write_kv, block_table,
                       cache_seqlens, sched_meta, num_splits, ops) -> torch.Tensor:
        """One token per request: ``h [B, H]``. ``write_kv(c_kv [B,L], k_pe [B,R])`` stores the new
        rows (so ``cache_seqlens`` already counts them); attention is one ``flash_mla_with_kvcache``
        call over the latent cache."""
        B = h.shape[0]
        N, L = self.n_heads, self.kv_lora_rank
        q_nope, q_pe, c_kv, k_pe = self.project(h, cos, sin)         # [B,N,P] [B,N,R] [B,L] [B,R]
        write_kv(c_kv, k_pe)
        w_uk, w_uv = self.absorbed_weights()
        ql_nope = torch.einsum("bnp,npl->bnl", q_nope, w_uk)          # q_nope through W_UK -> latent
        q = torch.cat([ql_nope, q_pe], dim=-1).to(k_cache.dtype).view(B, 1, N, L + self.rope)
        o, _lse = ops.flash_mla_with_kvcache(q, k_cache, block_table, cache_seqlens, L, sched_meta,
                                             num_splits, softmax_scale=self.scale, causal=True)
        o = o.view(B, N, L).to(h.dtype)
        o = torch.einsum("bnl,nvl->bnv", o, w_uv)                     # out through W_UV
        return self.o_proj(o.reshape(B, N * self.vdim))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DeepseekConfig, layer_idx: int):
        super().__init__()
        self.self_attn = MLAAttention(cfg, layer_idx)
        self.mlp = MoE(cfg) if cfg.is_moe_layer(layer_idx) else MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def _ffn(self, h):
        return h + self.mlp(self.post_attention_layernorm(h))


class DeepseekModel(nn.Module):
    def __init__(self, cfg: DeepseekConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg, i) for i in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class DeepseekForCausalLM(nn.Module):
    """Whole DeepSeek-V2/V3 decoder. ``mla_ops``: the module providing ``get_mla_metadata`` and
    ``flash_mla_with_kvcache`` (default: ``flash_mla``)."""

    def __init__(self, cfg: DeepseekConfig, mla_ops=None):
        super().__init__()
        self.config = cfg
        self.model = DeepseekModel(cfg)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.rotary = RotaryEmbedding(cfg)
        self._mla_ops = mla_ops

    @property
    def mla_ops(self):
        return self._mla_ops if self._mla_ops is not None else default_mla_ops()

    @mla_ops.setter
    def mla_ops(self, ops):
        self._mla_ops = ops

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    def tie_weights_if_needed(self):
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    # -------------------------------------------------------------- naive full forward
    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor | None = None,
                cache=None, rids=None) -> torch.Tensor:
        """Logits ``[B, T, V]`` (float32) for ``input_ids [B, T]`` with causal attention among these
        tokens, the naive path. With ``cache`` and ``rids`` (fresh requests, one per row) the cache
        rows of all layers are written too (prefill)."""
        if input_ids.dim() == 1:
            input_ids = input_ids[None]
        B, T = input_ids.shape
        dev = self.device
        input_ids = input_ids.to(dev)
        if positions is None:
            positions = torch.arange(T, device=dev).expand(B, T)
        h = self.model.embed_tokens(input_ids)
        cos, sin = self.rotary(positions.to(dev), h.dtype)
        slots = None
        if cache is not None:
            for r in rids:
                if cache.seqlen(r) != 0:
                    raise ValueError(f"prefill needs a fresh request; {r!r} already has {cache.seqlen(r)} tokens")
            slots = cache.append_batch(list(rids), T).view(B, T)
        for i, layer in enumerate(self.model.layers):
            sink = None
            if cache is not None:
                def sink(c_kv, k_pe, _i=i):
                    cache.write(_i, slots.reshape(-1), c_kv.reshape(B * T, -1), k_pe.reshape(B * T, -1))
            h = h + layer.self_attn.forward_naive(layer.input_layernorm(h), cos, sin, sink)
            h = layer._ffn(h)
        return self.lm_head(self.model.norm(h)).float()

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, cache, rid) -> torch.Tensor:
        """Run one fresh request's prompt ``[T]`` through the naive path, writing its cache rows.
        Returns the last position's logits ``[V]``."""
        if not cache.has_request(rid):
            cache.add_request(rid)
        return self.forward(input_ids.reshape(1, -1), cache=cache, rids=[rid])[0, -1]

    # -------------------------------------------------------------- absorbed decode step
    @torch.no_grad()
    def decode(self, input_ids: torch.Tensor, cache, rids) -> torch.Tensor:
        """One decode step: token ``input_ids[i]`` of request ``rids[i]`` at position
        ``cache.seqlen(rids[i])``. Appends one cache row per request in every layer and returns the
        next-token logits ``[B, V]`` (float32). Attention goes through ``flash_mla_with_kvcache``."""
        rids = list(rids)
        B = len(rids)
        dev = self.device
        ids = input_ids.reshape(B).to(dev)
        positions = torch.tensor([cache.seqlen(r) for r in rids], dtype=torch.int64, device=dev)
        slots = cache.append_batch(rids, 1)
        block_table = cache.block_table(rids)
        seqlens = cache.cache_seqlens(rids)
        ops = self.mla_ops
        sched_meta, num_splits = ops.get_mla_metadata()
        h = self.model.embed_tokens(ids)
        cos, sin = self.rotary(positions, h.dtype)
        for i, layer in enumerate(self.model.layers):
            def write_kv(c_kv, k_pe, _i=i):
                cache.write(_i, slots, c_kv, k_pe)
            a = layer.self_attn.forward_decode(layer.input_layernorm(h), cos, sin, cache.k_caches[i], write_kv,
                                               block_table, seqlens, sched_meta, num_splits, ops)
            h = layer._ffn(h + a)
        return self.lm_head(self.model.norm(h)).float()
