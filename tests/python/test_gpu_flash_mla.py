"""flash_mla / mla on CUDA tensors (run on a GPU machine: `pytest tests/python/test_gpu_flash_mla.py`).

Skipped as a whole (reported as skipped, never as passed) when torch sees no CUDA device.
When a device is visible the library must have CUDA kernels: a CPU-only libmla fails here.
Checks: results against the independent fp32 torch reference (spec §6 tolerances) for both
API generations, non-default streams, a second device, errors with the C message, and a
torch.cuda.CUDAGraph capture replayed with changed cache_seqlens values."""
import math

import pytest
import torch

if not torch.cuda.is_available():
    pytest.skip("no CUDA device visible to torch: GPU suite skipped", allow_module_level=True)

import flash_mla
import mla
from mla_testlib import check_out_lse, make_case, ref_decode, varlen_seqlens

torch.backends.cuda.matmul.allow_tf32 = False      # the reference must be real fp32
torch.backends.cudnn.allow_tf32 = False
BF16, FP16 = torch.bfloat16, torch.float16


def setup_module(module):
    assert mla.has_cuda(), ("torch sees a GPU but %s was built without CUDA kernels; rebuild with nvcc (make lib)"
                            % mla.library_path())


GRID = [
    # b, s_q, h_q, h_kv, page, lengths, causal, dtype
    (1, 1, 1, 1, 64, [20], False, BF16),
    (2, 2, 3, 1, 64, [20, 140], True, FP16),
    (6, 4, 9, 3, 16, "varlen140", True, BF16),
    (6, 1, 63, 3, 64, "varlen140", False, FP16),
    (2, 2, 126, 2, 32, [4096, 1], True, BF16),
    (64, 1, 128, 1, 64, "varlen4096", False, BF16),
    (64, 2, 64, 8, 128, "varlen1000", True, BF16),
    (128, 2, 128, 1, 64, "zero4096", True, BF16),
    (32, 4, 16, 2, 256, "varlen140", True, FP16),
]


def _lengths(spec, b, s_q, seed):
    if isinstance(spec, list):
        return spec
    kind, s_k = ("zero", int(spec[4:])) if spec.startswith("zero") else ("var", int(spec[6:]))
    return varlen_seqlens(b, s_k, s_q, seed, zero_frac=0.5 if kind == "zero" else 0.0)


def _gpu_case(*args, device="cuda", **kwargs):
    return make_case(*args, device=device, **kwargs)


@pytest.mark.parametrize("case", GRID, ids=lambda c: "b%d-sq%d-hq%d-hkv%d-p%d-%s-%s" % (
    c[0], c[1], c[2], c[3], c[4], "causal" if c[6] else "full", str(c[7]).replace("torch.", "")))
@pytest.mark.parametrize("api", ["v3", "v2"])
def test_gpu_matches_reference(case, api):
    b, s_q, h_q, h_kv, page, spec, causal, dtype = case
    seqlens = _lengths(spec, b, s_q, seed=b + h_q)
    q, kc, bt, cs = _gpu_case(b, s_q, h_q, h_kv, seqlens, page, dtype, seed=b * 3 + s_q)
    if api == "v3":
        sched, _ = flash_mla.get_mla_metadata()
        out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, causal=causal)
    else:
        md, ns = flash_mla.get_mla_metadata(cs, s_q * h_q // h_kv, h_kv)
        assert md.is_cuda and ns.is_cuda and ns.shape == (b + 1,)
        out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, md, ns, None, causal)
    assert out.is_cuda and out.dtype == dtype and out.shape == (b, s_q, h_q, 512)
    assert lse.shape == (b, h_q, s_q) and lse.dtype == torch.float32
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=causal)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_gpu_sched_meta_across_layers_and_determinism():
    b, s_q, h_q = 16, 2, 32
    seqlens = varlen_seqlens(b, 1000, s_q, seed=3, zero_frac=0.25)
    sched, _ = flash_mla.get_mla_metadata()
    results = []
    for layer in range(3):
        q, kc, bt, cs = _gpu_case(b, s_q, h_q, 1, seqlens, 64, BF16, seed=50 + layer)
        out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, causal=True)
        ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
        check_out_lse(out, lse, ref_out, ref_lse, " layer %d" % layer)
        results.append((q, kc, bt, cs, out.clone(), lse.clone()))
    assert sched.workspace is not None and sched.workspace.is_cuda
    q, kc, bt, cs, out0, lse0 = results[0]
    out1, lse1 = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True)
    assert torch.equal(out0.view(torch.int16), out1.view(torch.int16))
    assert torch.equal(lse0.view(torch.int32), lse1.view(torch.int32))


def test_gpu_binding_on_side_stream():
    q, kc, bt, cs = _gpu_case(4, 1, 16, 1, [300, 0, 64, 65], 16, FP16, seed=7)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        out, lse = mla.decode(q, kc, bt, cs)
    s.synchronize()
    ref_out, ref_lse = ref_decode(q, kc, bt, cs)
    check_out_lse(out, lse, ref_out, ref_lse)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_gpu_second_device():
    torch.cuda.set_device(0)
    q, kc, bt, cs = _gpu_case(3, 2, 8, 1, [100, 7, 0], 64, BF16, seed=13, device="cuda:1")
    out, lse = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True)
    assert out.device.index == 1 and torch.cuda.current_device() == 0
    torch.cuda.synchronize(1)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True)
    check_out_lse(out, lse, ref_out, ref_lse)


def test_gpu_errors_carry_c_message():
    q, kc, bt, cs = _gpu_case(1, 1, 63, 1, [10], 64, BF16)
    with pytest.raises(mla.InvalidArgumentError) as ei:
        flash_mla.flash_mla_with_kvcache(q, kc.repeat(1, 1, 2, 1), bt, cs, 512, flash_mla.get_mla_metadata()[0])
    assert ei.value.message == mla.last_error() and "h_q (63) is not divisible by h_kv (2)" in str(ei.value)
    q, kc, bt, cs = _gpu_case(1, 1, 4, 1, [10], 8, BF16)  # page 8: not a multiple of 16
    with pytest.raises(mla.MlaError) as ei:
        flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, flash_mla.get_mla_metadata()[0])
    assert ei.value.message == mla.last_error() and ei.value.message
    with pytest.raises(ValueError, match="on cpu but q is on cuda"):
        flash_mla.flash_mla_with_kvcache(q, kc, bt.cpu(), cs, 512, None)


def _graph_case(api):
    """Static buffers sized for CAP tokens per request; lengths change between replays."""
    b, s_q, h_q, h_kv, page, cap = 12, 2, 16, 1, 64, 700
    q, kc, bt, cs = _gpu_case(b, s_q, h_q, h_kv, [cap] * b, page, BF16, seed=77)
    q2 = (q.float() * -0.5).to(BF16)                  # a second "layer"
    md = flash_mla.get_mla_metadata(cs, s_q * h_q // h_kv, h_kv) if api == "v2" else None

    def step():
        if api == "v3":
            sched, _ = flash_mla.get_mla_metadata()       # fresh per step: first call schedules
            o1, l1 = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, sched, causal=True)
            o2, l2 = flash_mla.flash_mla_with_kvcache(q2, kc, bt, cs, 512, sched, causal=True)
        else:
            o1, l1 = flash_mla.flash_mla_with_kvcache(q, kc, bt, cs, 512, md[0], md[1], causal=True)
            o2, l2 = flash_mla.flash_mla_with_kvcache(q2, kc, bt, cs, 512, md[0], md[1], causal=True)
        return o1, l1, o2, l2
    return (q, q2, kc, bt, cs, cap, b), step


@pytest.mark.parametrize("api", ["v3", "v2"])
def test_cuda_graph_replay_with_new_lengths(api):
    (q, q2, kc, bt, cs, cap, b), step = _graph_case(api)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):                      # warm-up outside the graph (plans, workspaces)
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        o1, l1, o2, l2 = step()
    gen = torch.Generator().manual_seed(5)
    trials = [
        [cap] * b,
        [0] * b,
        torch.randint(0, cap + 1, (b,), generator=gen).tolist(),
        [1, 2, 0, cap, 63, 64, 65, 128, 3, 0, 500, 699],
        torch.randint(0, 40, (b,), generator=gen).tolist(),
    ]
    for lengths in trials:
        cs.copy_(torch.tensor(lengths, dtype=torch.int32))
        g.replay()
        torch.cuda.synchronize()
        for qq, o, l, tag in ((q, o1, l1, "layer0"), (q2, o2, l2, "layer1")):
            ref_out, ref_lse = ref_decode(qq, kc, bt, cs, causal=True)
            check_out_lse(o, l, ref_out, ref_lse, " %s lengths %s" % (tag, lengths))
            for i, L in enumerate(lengths):
                if L == 0:
                    assert torch.all(o[i] == 0) and torch.all(l[i] == math.inf)


def test_gpu_cu_seqlens_q_and_strided_inputs():
    b, s_q, h_q, h_kv = 4, 4, 8, 2
    q, kc, bt, cs = _gpu_case(b, s_q, h_q, h_kv, [500, 3, 0, 129], 64, BF16, seed=31)

    def strided(t):    # FlashMLA's non_contiguousify: last dim +128, others +1, then sliced
        big = torch.zeros([s + 1 for s in t.shape[:-1]] + [t.shape[-1] + 128], dtype=t.dtype, device=t.device)
        v = big[tuple(slice(0, s) for s in t.shape)]
        v.copy_(t)
        return v
    qs, kcs = strided(q), strided(kc)
    qlens = [4, 2, 0, 1]
    cu = torch.tensor([0, 4, 6, 6, 7], dtype=torch.int32, device="cuda")
    out, lse = flash_mla.flash_mla_with_kvcache(qs, kcs, bt, cs, 512, flash_mla.get_mla_metadata()[0], causal=True,
                                                cu_seqlens_q=cu)
    ref_out, ref_lse = ref_decode(q, kc, bt, cs, causal=True, cu_seqlens_q=cu)
    for i, n in enumerate(qlens):
        check_out_lse(out[i, :n], lse[i, :, :n], ref_out[i, :n], ref_lse[i, :, :n], " request %d" % i)
        assert torch.all(out[i, n:] == 0)
