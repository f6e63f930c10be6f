"""deepseek_mla model: RoPE convention, MoE routing, absorbed decode attention (through
flash_mla_with_kvcache) against the naive non-absorbed attention, and the whole model's cached
decode logits against a full recompute."""
import math

import pytest
import torch

from deepseek_mla import DeepseekForCausalLM, PagedKVCache, load_model, testing
from deepseek_mla.checkpoint import random_state_dict, tiny_config
from deepseek_mla.model import apply_rope, rope_inv_freq

pytestmark = pytest.mark.usefixtures("dsk_one_thread")

BIG = 2147480000        # spec section 6: unused block_table entries hold a huge value


def _rand(shape, seed, scale=1.0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


def test_rope_is_deepseek_interleaved_pairs():
    """Pair (x[2i], x[2i+1]) is rotated by angle pos*inv_freq[i] (complex multiply, as DeepSeek's
    reference and transformers' DeepSeek-V2 do); the result is laid out [evens' | odds'] as in
    transformers' DeepSeek-V3 ``apply_rotary_pos_emb_interleave``."""
    x = _rand((5, 64), 0)
    ang = _rand((5, 32), 1)
    got = apply_rope(x, ang.cos(), ang.sin(), interleave=True)
    z = torch.complex(x[:, 0::2].double(), x[:, 1::2].double()) * torch.polar(torch.ones_like(ang).double(),
                                                                              ang.double())
    want = torch.cat([z.real, z.imag], dim=-1).float()
    assert torch.allclose(got, want, atol=1e-6)
    # non-interleaved (neox) layout: halves
    got2 = apply_rope(x, ang.cos(), ang.sin(), interleave=False)
    z2 = torch.complex(x[:, :32].double(), x[:, 32:].double()) * torch.polar(torch.ones_like(ang).double(),
                                                                             ang.double())
    assert torch.allclose(got2, torch.cat([z2.real, z2.imag], -1).float(), atol=1e-6)


def test_yarn_inv_freq(dsk_tiny_ckpt):
    m = load_model(dsk_tiny_ckpt)
    cfg = m.config
    inv, att = rope_inv_freq(cfg)
    assert att == 1.0                                           # mscale == mscale_all_dim
    base = 1.0 / (cfg.rope_theta ** (torch.arange(0, 64, 2).double() / 64))
    rs = cfg.rope_scaling
    # high frequencies extrapolate (unchanged), low frequencies interpolate (divided by factor)
    assert torch.allclose(inv[:4].double(), base[:4], rtol=1e-6)
    assert torch.allclose(inv[-4:].double(), base[-4:] / rs["factor"], rtol=1e-6)
    assert torch.all(inv[1:] < inv[:-1])
    assert m.model.layers[0].self_attn.scale == pytest.approx(
        (32 + 64) ** -0.5 * (0.1 * math.log(4.0) + 1) ** 2)


def _assert_same_routes(idx, w, want_idx, want_w, tol):
    """Same experts (order-free) with the same weights."""
    got = sorted(zip(idx.tolist(), w.tolist()))
    want = sorted(zip(list(want_idx), want_w.tolist()))
    assert [g[0] for g in got] == [x[0] for x in want]
    assert all(abs(g[1] - x[1]) < tol for g, x in zip(got, want))


def test_moe_gate_v3_noaux_tc_matches_per_token_loop(dsk_tiny_ckpt):
    m = load_model(dsk_tiny_ckpt)
    gate = m.model.layers[1].mlp.gate
    cfg = m.config
    h = _rand((17, cfg.hidden_size), 2)
    idx, w = gate(h)
    E, G = cfg.n_routed_experts, cfg.n_group
    for t in range(h.shape[0]):
        s = torch.sigmoid(gate.weight.double() @ h[t].double())
        choice = s + gate.e_score_correction_bias.double()
        groups = choice.view(G, E // G)
        gscore = groups.sort(descending=True).values[:, :2].sum(-1)
        keep = set(gscore.argsort(descending=True)[:cfg.topk_group].tolist())
        cand = [e for e in range(E) if e // (E // G) in keep]
        top = sorted(cand, key=lambda e: -float(choice[e]))[:cfg.num_experts_per_tok]
        _assert_same_routes(idx[t], w[t], top, s[top] / s[top].sum() * cfg.routed_scaling_factor, 1e-5)


def test_moe_gate_v2_softmax_greedy(dsk_tiny_ckpt_v2):
    m = load_model(dsk_tiny_ckpt_v2)
    gate = m.model.layers[1].mlp.gate
    cfg = m.config
    h = _rand((9, cfg.hidden_size), 3)
    idx, w = gate(h)
    p = torch.softmax(h.double() @ gate.weight.double().t(), -1)
    top = p.topk(cfg.num_experts_per_tok, -1)
    for t in range(9):
        _assert_same_routes(idx[t], w[t], top.indices[t].tolist(), top.values[t] * cfg.routed_scaling_factor, 1e-6)


def _absorbed_vs_naive(model, ops, kv_dtype, lens, layer=0, seed=0):
    """Per request r: prefill lens[r] tokens (naive path, writes the cache), then one absorbed decode
    step for token lens[r]; compare with naive attention over all lens[r] + 1 tokens."""
    model.mla_ops = ops
    cfg = model.config
    attn = model.model.layers[layer].self_attn
    H = cfg.hidden_size
    dev = model.device
    cache = PagedKVCache(1, 24, 64, cfg.kv_cache_dim, kv_dtype, dev, shuffle_seed=11, fill_value=float("nan"))
    hs, want = [], []
    for r, L in enumerate(lens):
        h = _rand((1, L + 1, H), seed + r).to(dev)
        hs.append(h[0, L])
        cache.add_request(r)
        pos = torch.arange(L + 1, device=dev)[None]
        cos, sin = model.rotary(pos, h.dtype)
        want.append(attn.forward_naive(h, cos, sin)[0, L])
        if L:
            def sink(c_kv, k_pe, _r=r, _L=L):
                cache.write(0, cache.append(_r, _L), c_kv[0], k_pe[0])
            attn.forward_naive(h[:, :L], cos[:, :L], sin[:, :L], sink)
    rids = list(range(len(lens)))
    positions = torch.tensor(lens, device=dev)
    slots = cache.append_batch(rids, 1)
    bt = cache.block_table(rids, max_pages=6, pad_value=BIG)
    seqlens = cache.cache_seqlens(rids)
    assert seqlens.tolist() == [L + 1 for L in lens] and bt.dtype == torch.int32 and seqlens.dtype == torch.int32
    cos, sin = model.rotary(positions, torch.float32)
    meta, splits = ops.get_mla_metadata()
    got = attn.forward_decode(torch.stack(hs), cos, sin, cache.k_caches[0],
                              lambda c, k: cache.write(0, slots, c, k), bt, seqlens, meta, splits, ops)
    return got.cpu(), torch.stack(want).cpu()


LENS = [0, 1, 63, 64, 65, 130, 200]          # page boundaries around 64 / 128


@torch.no_grad()
def test_absorbed_decode_equals_naive_attention_fp32_reference(dsk_tiny_ckpt):
    """The weight-absorbed math (q through W_UK, latent attention, out through W_UV) is exact: with
    an fp32 cache and the fp32 torch reference of flash_mla_with_kvcache it equals the naive
    attention to float rounding."""
    m = load_model(dsk_tiny_ckpt)
    for layer in (0, 1):
        got, want = _absorbed_vs_naive(m, testing, torch.float32, LENS, layer=layer)
        assert torch.isfinite(got).all()
        assert torch.allclose(got, want, atol=2e-5, rtol=1e-4), (got - want).abs().max()


def _model_with_heads(heads, device="cpu", seed=0):
    """A tiny V3 model with ``heads`` query heads, random weights (no checkpoint round trip)."""
    cfg = tiny_config("v3", num_attention_heads=heads, num_key_value_heads=heads)
    m = DeepseekForCausalLM(cfg)
    m.load_state_dict(random_state_dict(cfg, seed=seed))
    return m.to(device).requires_grad_(False).eval()


def _check_close(got, want, tol):
    assert torch.isfinite(got).all()
    err = (got - want).abs().max().item()
    assert err <= tol * want.abs().max().item(), err
    cos = torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0).item()
    assert cos > 0.9999, cos


@torch.no_grad()
@pytest.mark.parametrize("heads,kv_dtype,tol", [(8, torch.bfloat16, 3e-2), (8, torch.float16, 4e-3),
                                                (16, torch.bfloat16, 3e-2), (128, torch.bfloat16, 3e-2)])
def test_absorbed_decode_equals_naive_attention_flash_mla(dsk_flash_mla, heads, kv_dtype, tol):
    """The same through the real flash_mla (libmla CPU path) with a bf16 / fp16 cache, h_q 8 / 16
    (V2-Lite) / 128 (V3), NaN in unused cache rows, shuffled pages and huge values in unused
    block_table entries."""
    got, want = _absorbed_vs_naive(_model_with_heads(heads), dsk_flash_mla, kv_dtype, LENS)
    _check_close(got, want, tol)


@torch.no_grad()
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: GPU kernel case runs on the GPU machine")
def test_absorbed_decode_equals_naive_attention_flash_mla_gpu(dsk_flash_mla):
    """The same with CUDA tensors: the GPU kernel inside the model's decode step."""
    for heads in (8, 16, 128):
        m = _model_with_heads(heads, "cuda")
        for kv_dtype, tol in ((torch.bfloat16, 3e-2), (torch.float16, 4e-3)):
            got, want = _absorbed_vs_naive(m, dsk_flash_mla, kv_dtype, LENS)
            _check_close(got, want, tol)


@torch.no_grad()
@pytest.mark.parametrize("variant", ["v3", "v2"])
def test_cached_decode_logits_equal_full_recompute_fp32(dsk_tiny_ckpt, dsk_tiny_ckpt_v2, variant):
    """Whole model: prefill + absorbed decode steps through the paged cache (fp32 cache, torch
    reference attention) give the logits of a full recompute without cache."""
    m = load_model(dsk_tiny_ckpt if variant == "v3" else dsk_tiny_ckpt_v2, mla_ops=testing)
    prompt = _rand((60,), 5).abs().mul(80).long().clamp(3, 258).tolist()
    cont = _rand((9,), 6).abs().mul(80).long().clamp(3, 258).tolist()        # crosses the 64-token page
    got = testing.cached_logits(m, prompt, cont, torch.float32, shuffle_seed=2)
    want = testing.full_logits(m, prompt, cont)
    assert got.shape == (10, m.config.vocab_size)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-5), (got - want).abs().max()


@torch.no_grad()
def test_cached_decode_logits_flash_mla_bf16(dsk_tiny_ckpt, dsk_flash_mla):
    m = load_model(dsk_tiny_ckpt, mla_ops=dsk_flash_mla)
    prompt = _rand((60,), 5).abs().mul(80).long().clamp(3, 258).tolist()
    cont = _rand((9,), 6).abs().mul(80).long().clamp(3, 258).tolist()
    got = testing.cached_logits(m, prompt, cont, torch.bfloat16, shuffle_seed=2)
    want = testing.full_logits(m, prompt, cont)
    assert (got - want).abs().max().item() < 0.1                # bf16 cache + q move logits ~0.01; margins >~0.5
    assert not testing.argmax_violations(want, got.argmax(-1), tol=0.1)


def test_softmax_scale_is_passed_to_the_kernel(dsk_tiny_ckpt):
    """DeepSeek's scale (qk_head_dim**-0.5 * mscale**2), not FlashMLA's default 576**-0.5."""
    seen = []

    class Spy:
        BACKEND_PREFIX = "spy"

        @staticmethod
        def get_mla_metadata(*a, **k):
            return testing.get_mla_metadata()

        @staticmethod
        def flash_mla_with_kvcache(*a, **k):
            seen.append((k.get("softmax_scale"), k.get("causal"), a[4], tuple(a[0].shape), a[1].shape[1:]))
            return testing.flash_mla_with_kvcache(*a, **k)

    m = load_model(dsk_tiny_ckpt, mla_ops=Spy)
    testing.cached_logits(m, [0, 5, 6], [7], torch.bfloat16)
    assert len(seen) == m.config.num_hidden_layers
    for scale, causal, dv, qshape, kshape in seen:
        assert scale == pytest.approx(m.config.softmax_scale) and scale != pytest.approx(576 ** -0.5)
        assert dv == 512 and qshape == (1, 1, 8, 576) and tuple(kshape) == (64, 1, 576)
