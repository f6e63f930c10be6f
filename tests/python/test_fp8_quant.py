"""mla.sparse.quantize_k_cache / dequantize_k_cache against an independent torch implementation
of FlashMLA's FP8 cache formats (written here from the format description: V32 656 B/token,
MODEL1 584 B/token split per page), byte for byte, plus torch's own float8_e4m3fn cast."""
import pytest
import torch

import mla
import mla.sparse as sp

V32, MODEL1 = sp.FORMAT_V32, sp.FORMAT_MODEL1
META = {V32: (576, 512, 128, 656), MODEL1: (512, 448, 64, 584)}   # d, d_nope, tile, bytes/token


def torch_quant(k, fmt):
    """[P, ps, 1, d] bf16 -> [P, ps * bpt] uint8 page bytes (quant.py's math)."""
    d, dn, tile, bpt = META[fmt]
    P, ps = k.shape[0], k.shape[1]
    x = k[:, :, 0]
    tiles = x[..., :dn].float().view(P, ps, dn // tile, tile)
    amax = tiles.abs().amax(-1)
    scale = torch.pow(2, torch.clamp_min(amax / 448.0, 1e-4).log2().ceil())
    nope = (tiles / scale[..., None]).to(torch.float8_e4m3fn).view(torch.uint8).reshape(P, ps, dn)
    rope = x[..., dn:].contiguous().view(torch.uint8)                           # [P, ps, 128]
    if fmt == V32:
        sc = scale.float().contiguous().view(torch.uint8)                       # [P, ps, 16]
        return torch.cat([nope, sc, rope], dim=-1).reshape(P, ps * bpt)
    e8 = (scale.log2().round() + 127).to(torch.uint8)                           # e8m0 of 2^k: k + 127
    pad = torch.zeros(P, ps, 1, dtype=torch.uint8)
    part1 = torch.cat([nope, rope], dim=-1).reshape(P, ps * 576)
    part2 = torch.cat([e8, pad], dim=-1).reshape(P, ps * 8)
    return torch.cat([part1, part2], dim=1)


def torch_dequant(pages, ps, fmt):
    """[P, ps * bpt] uint8 page bytes -> [P, ps, 1, d] bf16 (quant.py's dequantize)."""
    d, dn, tile, bpt = META[fmt]
    P = pages.shape[0]
    out = torch.empty(P, ps, d, dtype=torch.bfloat16)
    if fmt == V32:
        t = pages.reshape(P, ps, bpt)
        nope = t[..., :dn].contiguous().view(torch.float8_e4m3fn).float().view(P, ps, 4, 128)
        sc = t[..., dn:dn + 16].contiguous().view(torch.float32)
        out[..., :dn] = (nope * sc.to(torch.bfloat16).float()[..., None]).reshape(P, ps, dn).to(torch.bfloat16)
        out[..., dn:] = t[..., dn + 16:].contiguous().view(torch.bfloat16)
    else:
        t = pages[:, :ps * 576].reshape(P, ps, 576)
        nope = t[..., :dn].contiguous().view(torch.float8_e4m3fn).to(torch.bfloat16).view(P, ps, 7, 64)
        sc = torch.pow(2.0, pages[:, ps * 576:].reshape(P, ps, 8)[..., :7].float() - 127).to(torch.bfloat16)
        out[..., :dn] = (nope * sc[..., None]).reshape(P, ps, dn)
        out[..., dn:] = t[..., dn:].contiguous().view(torch.bfloat16)
    return out.view(P, ps, 1, d)


def make_cache(P, ps, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(P, ps, 1, d, generator=g)
    tile = 128 if d == 576 else 64
    mags = torch.tensor([0.0, 1e-7, 1e-3, 1.0, 30.0, 3e4])
    pick = torch.randint(0, len(mags), (P, ps, 1, d // tile + 1), generator=g)
    m = mags[pick].repeat_interleave(tile, dim=-1)[..., :d]
    return (x * m).to(torch.bfloat16)


def page_bytes(t, ps, bpt):
    """The ps * bpt bytes of every page of a [P, ps, 1, bpt] tensor view (any page stride)."""
    P = t.shape[0]
    u = t.view(torch.uint8) if t.dtype != torch.uint8 else t
    return u.as_strided((P, ps * bpt), (u.stride(0), 1)).clone()


@pytest.mark.parametrize("fmt", [V32, MODEL1])
@pytest.mark.parametrize("P,ps", [(4, 1), (3, 2), (2, 53), (3, 64), (1, 69)])
def test_quantize_matches_torch_bytes(fmt, P, ps):
    d, _, _, bpt = META[fmt]
    k = make_cache(P, ps, d, seed=P * 100 + ps + fmt)
    got = sp.quantize_k_cache(k, "V32" if fmt == V32 else "MODEL1")
    assert got.shape == (P, ps, 1, bpt) and got.stride(1) == bpt and got.dtype == torch.float8_e4m3fn
    want = torch_quant(k, fmt)
    gb = page_bytes(got, ps, bpt)
    diff = (gb != want).nonzero()
    assert diff.numel() == 0, "first differing byte at %s: got %d want %d" % (
        diff[0].tolist(), gb[tuple(diff[0])].item(), want[tuple(diff[0])].item())
    # dequantize: the library's bf16 == the torch dequantization of the same bytes
    deq = sp.dequantize_k_cache(got)
    assert deq.dtype == torch.bfloat16 and deq.shape == (P, ps, 1, d)
    ref = torch_dequant(want, ps, fmt)
    assert torch.equal(deq.view(torch.int16), ref.view(torch.int16))
    # and it is close to the input: NoPE within e4m3 precision of its tile (relative 2^-4, or
    # half the subnormal step scale * 2^-10), RoPE exact
    _, dn, tile, _ = META[fmt]
    x = k.float()[:, :, 0, :dn].reshape(P, ps, dn // tile, tile)
    scale = torch.pow(2, torch.clamp_min(x.abs().amax(-1) / 448.0, 1e-4).log2().ceil())[..., None]
    err = (deq.float()[:, :, 0, :dn].reshape(x.shape) - x).abs()
    assert (err <= torch.maximum(x.abs() / 16, scale * 2.0 ** -10)).all()
    assert torch.equal(deq[..., dn:].view(torch.int16), k[..., dn:].view(torch.int16))


@pytest.mark.parametrize("fmt", [V32, MODEL1])
def test_flashmla_padded_layouts(fmt):
    """Dequantize a cache laid out as FlashMLA's quant.py allocates it (V32: [nb, bs + 1, 656]
    sliced to bs; MODEL1: pages padded to a multiple of 576 bytes) and quantize into it."""
    d, _, _, bpt = META[fmt]
    nb, bs = 3, 61
    k = make_cache(nb, bs, d, seed=7 + fmt)
    want = torch_quant(k, fmt)
    if fmt == V32:
        buf = torch.full((nb, bs + 1, bpt), 0xA5, dtype=torch.uint8)
        view = buf[:, :bs].view(nb, bs, 1, bpt)
    else:
        padded = (bs * bpt + 575) // 576 * 576
        buf = torch.full((nb, padded), 0xA5, dtype=torch.uint8)
        view = buf[:, :bs * bpt].view(nb, bs, 1, bpt)
    out = sp.quantize_k_cache(k, fmt, out=view)
    assert out is view
    assert torch.equal(page_bytes(view, bs, bpt), want)
    flat = buf.view(nb, -1)
    assert (flat[:, bs * bpt:] == 0xA5).all(), "padding after a page was written"
    deq = sp.dequantize_k_cache(view.view(torch.float8_e4m3fn))
    assert torch.equal(deq.view(torch.int16), torch_dequant(want, bs, fmt).view(torch.int16))
    # page_stride_bytes: a padded cache allocated by the binding
    out2 = sp.quantize_k_cache(k, fmt, page_stride_bytes=bs * bpt + 48)
    assert out2.stride(0) == bs * bpt + 48
    assert torch.equal(page_bytes(out2, bs, bpt), want)


def test_e4m3_cast_matches_torch_on_every_bf16_value():
    """With a tile anchored at amax = 448 the scale is exactly 1, so the NoPE bytes are the
    e4m3 encodings of the bf16 inputs: compare with torch's float8_e4m3fn cast on every
    bf16 value of magnitude <= 448 (both signs, subnormals and ties included)."""
    bits = torch.arange(0, 0x8000, dtype=torch.int32)
    vals = bits.to(torch.int16).view(torch.bfloat16)
    vals = vals[vals.float().abs() <= 448]
    vals = torch.cat([vals, -vals])
    per = 127                                        # 127 values + the anchor per V32 tile
    n = (vals.numel() + per - 1) // per
    pad = n * per - vals.numel()
    vals = torch.cat([vals, torch.zeros(pad, dtype=torch.bfloat16)]).view(n, per)
    tiles = torch.cat([torch.full((n, 1), 448.0, dtype=torch.bfloat16), vals], dim=1)     # [n, 128]
    ntok = (n + 3) // 4
    nope = torch.cat([tiles, torch.full((ntok * 4 - n, 128), 448.0, dtype=torch.bfloat16)]).view(ntok, 512)
    k = torch.cat([nope, torch.zeros(ntok, 64, dtype=torch.bfloat16)], dim=1).view(1, ntok, 1, 576)
    got = sp.quantize_k_cache(k, "V32").view(torch.uint8).view(ntok, 656)
    scales = got[:, 512:528].contiguous().view(torch.float32)
    assert (scales == 1.0).all()
    want = nope.to(torch.float8_e4m3fn).view(torch.uint8)
    assert torch.equal(got[:, :512], want)


def test_numpy_and_errors():
    np = pytest.importorskip("numpy")
    k = make_cache(2, 5, 512, seed=3)
    want = torch_quant(k, MODEL1)
    k_np = k.view(torch.int16).numpy().view(np.uint16)
    got = sp.quantize_k_cache(k_np, "model1")
    assert got.dtype == np.uint8 and got.shape == (2, 5, 1, 584)
    assert (np.lib.stride_tricks.as_strided(got, (2, 5 * 584), (got.strides[0], 1)) == want.numpy()).all()
    back = sp.dequantize_k_cache(got)
    assert back.dtype == np.uint16 and (back == torch_dequant(want, 5, MODEL1).view(torch.int16).numpy().view(np.uint16)).all()
    with pytest.raises(mla.InvalidArgumentError, match="needs 576"):
        sp.quantize_k_cache(k, "V32")
    with pytest.raises(mla.InvalidArgumentError, match="unknown FP8 cache format"):
        sp.quantize_k_cache(k, "V4")
    with pytest.raises(mla.InvalidArgumentError, match="bfloat16"):
        sp.quantize_k_cache(k.float(), "MODEL1")
    with pytest.raises(mla.InvalidArgumentError, match="656"):
        sp.dequantize_k_cache(torch.zeros(2, 4, 1, 600, dtype=torch.uint8))
    assert sp.format_info("V32") == (576, 512, 128, 656)
    assert sp.format_info(MODEL1) == (512, 448, 64, 584)
