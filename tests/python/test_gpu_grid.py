"""The FULL spec §6 grid of dense decode on the GPU, through flash_mla.flash_mla_with_kvcache.

Run on a CUDA machine (libmla built with CUDA kernels):

    python3 -m pytest -q -s tests/python/test_gpu_grid.py

Every case of the grid runs (nothing subsampled, unlike build/test_gpu, whose CPU reference is
too slow for the big cases):

  b in {1,2,6,64} x s_q in {1,2,4} x s_k in {20,140,4096} x (h_q, h_kv) in the 16 pairs of
  h_q in {1,3,9,63,64,126,128}, h_kv in {1,2,3,8} with h_q % h_kv == 0 x {fixed, varlen} x
  {causal, not}  = 2304 bf16 cases,
  + the same parameters in fp16 for a deterministic 1/8 of them (6 per group)   =  288 cases,
  + b=128, s_q=2, s_k=4096 with about half the sequences empty, {fixed, varlen} x {causal, not}
    for each of the 16 head pairs (bf16)                                        =   64 cases,
  total 2656 cases; plus a determinism check (a second call, identical bytes) on 1/8 of the grid
  and on every causal b=128 case.

Inputs per spec §6: randn/10 clamped to +-1 (slices at random offsets of one random pool drawn
once on the device, so no case pays for a big random draw), page 64, pages shuffled, cache rows
past each sequence and unused pages NaN, block_table entries past the used pages 2147480000,
varlen lengths max(N(s_k, s_k/2), s_q), fixed lengths s_k. softmax_scale is the default
d_qk ** -0.5. About 1 in 4 cases uses the 2025 API (get_mla_metadata tensors), the rest the
current one (FlashMLASchedMeta).

Reference: an fp32 torch implementation computed on the same device (TF32 off), batched over
requests (sorted by length, padded, masked, chunked to bound memory): gather each request's pages
through block_table, per KV head group scores from the inputs cast to fp32, bottom-right causal
mask for s_q > 1, softmax, out = P @ V (the first 512 dims), natural-log lse; rows with no visible
key out = 0, lse = +inf. Comparison (FlashMLA's, on the device in fp64): +-inf and NaN at the same
places; every other element within abs_tol or rel_tol (rel = abs / (|ref| + 1e-6)); cos_diff =
1 - 2 sum(ab) / sum(a^2 + b^2) <= 5e-6. out: abs 8e-4, rel 2.01/128; lse: abs 1e-6, rel 8.01/65536.

One test per (s_q, h_q, h_kv) group (48 tests); each runs all of its cases, catches per-case
exceptions, and fails with one message listing every failing case and its errors. The last
test prints the total and asserts that the number of cases run equals the grid size.

Without a CUDA device the module is skipped (reported as skipped, never as passed).
MLA_GRID_DEVICE=cpu runs a small deterministic subset (40 cases, b <= 6 and s_k <= 140, plus two
b=128 half-empty cases with s_k = 140) on CPU tensors (libmla's CPU path) against the same
reference, to check this file's logic on a machine without a GPU.
MLA_GRID_SUMMARY=<path> appends one JSON line per group and one for the total to that file.
"""
import gc
import json
import math
import os
import random
import time

import pytest
import torch

MODE = os.environ.get("MLA_GRID_DEVICE", "cuda").strip().lower() or "cuda"
if MODE not in ("cuda", "cpu"):
    raise RuntimeError("MLA_GRID_DEVICE must be 'cuda' (default) or 'cpu', got %r" % MODE)
if MODE == "cuda" and not torch.cuda.is_available():
    pytest.skip("no CUDA device visible to torch: spec §6 GPU grid skipped (MLA_GRID_DEVICE=cpu runs a "
                "CPU subset)", allow_module_level=True)

import flash_mla  # noqa: E402
import mla  # noqa: E402

DEVICE = "cuda" if MODE == "cuda" else "cpu"
BF16, FP16 = torch.bfloat16, torch.float16
GARBAGE = 2147480000
PAGE = 64
D_QK, D_V = 576, 512
OUT_TOL = (8e-4, 2.01 / 128, 5e-6)      # abs, rel, cos_diff
LSE_TOL = (1e-6, 8.01 / 65536, 5e-6)

BS = (1, 2, 6, 64)
SQS = (1, 2, 4)
SKS = (20, 140, 4096)
HQS = (1, 3, 9, 63, 64, 126, 128)
HKVS = (1, 2, 3, 8)
HEAD_PAIRS = [(hq, hkv) for hq in HQS for hkv in HKVS if hq % hkv == 0]

EXPECTED = {"cuda": 2304 + 288 + 64, "cpu": 40}

torch.backends.cuda.matmul.allow_tf32 = False     # the reference must be real fp32
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


class Case(object):
    __slots__ = ("idx", "b", "s_q", "s_k", "h_q", "h_kv", "varlen", "half_empty", "causal", "dtype", "api",
                 "determinism")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw[k])

    @property
    def group(self):
        return (self.s_q, self.h_q, self.h_kv)

    @property
    def seed(self):
        return 1000003 * (self.idx + 1)

    def lengths(self):
        """FlashMLA-style lengths: fixed s_k, or max(N(s_k, s_k/2), s_q); half_empty sets about half to 0."""
        rng = random.Random(self.seed)
        out = [max(int(rng.gauss(self.s_k, self.s_k / 2.0)), self.s_q) if self.varlen else self.s_k
               for _ in range(self.b)]
        if self.half_empty:
            zero = [rng.random() < 0.5 for _ in range(self.b)]
            zero[0], zero[1] = True, False          # at least one of each
            out = [0 if z else L for z, L in zip(zero, out)]
        return out

    def name(self):
        return "b%d sq%d sk%d hq%d hkv%d %s%s %s %s %s%s" % (
            self.b, self.s_q, self.s_k, self.h_q, self.h_kv, "varlen" if self.varlen else "fixed",
            "+half-empty" if self.half_empty else "", "causal" if self.causal else "full",
            "bf16" if self.dtype == BF16 else "fp16", self.api, " +det" if self.determinism else "")


def full_grid():
    """All 2656 cases, in a fixed order. Per (s_q, h_q, h_kv) group: 48 bf16 cases; fp16 and the
    determinism check on 6 of them each (positions rotating with the group, so every
    varlen/causal combination gets both); the 2025 API on 12; the b=128 half-empty cases in the
    s_q=2 groups."""
    cases = []
    gi = 0
    for s_q in SQS:
        for h_q, h_kv in HEAD_PAIRS:
            j = 0
            for b in BS:
                for s_k in SKS:
                    for varlen in (False, True):
                        for causal in (False, True):
                            r = (j + gi) % 8
                            common = dict(b=b, s_q=s_q, s_k=s_k, h_q=h_q, h_kv=h_kv, varlen=varlen,
                                          half_empty=False, causal=causal,
                                          api="v2" if (j + gi) % 4 == 3 else "v3")
                            cases.append(Case(idx=len(cases), dtype=BF16, determinism=(r == 4), **common))
                            if r == 0:
                                cases.append(Case(idx=len(cases), dtype=FP16, determinism=False, **common))
                            j += 1
            if s_q == 2:
                for varlen in (False, True):
                    for causal in (False, True):
                        cases.append(Case(idx=len(cases), b=128, s_q=2, s_k=4096, h_q=h_q, h_kv=h_kv, varlen=varlen,
                                          half_empty=True, causal=causal, dtype=BF16, api="v3",
                                          determinism=causal))
            gi += 1
    return cases


def cpu_subset():
    """40 deterministic cases for MLA_GRID_DEVICE=cpu: every k-th small case of the grid (b <= 6,
    s_k <= 140), plus two b=128 half-empty cases with s_k reduced to 140."""
    small = [c for c in full_grid() if c.b <= 6 and c.s_k <= 140]
    step = len(small) // 38
    picked = [small[i * step + (i % 5)] for i in range(38)]
    for causal, (h_q, h_kv) in ((True, (9, 3)), (False, (3, 1))):
        picked.append(Case(idx=100000 + h_q, b=128, s_q=2, s_k=140, h_q=h_q, h_kv=h_kv, varlen=True, half_empty=True,
                           causal=causal, dtype=BF16, api="v3", determinism=True))
    return picked


CASES = full_grid() if MODE == "cuda" else cpu_subset()
assert len(CASES) == EXPECTED[MODE], (len(CASES), EXPECTED[MODE])
GROUPS = []
for _c in CASES:
    if _c.group not in GROUPS:
        GROUPS.append(_c.group)
RESULTS = {}          # group -> dict(ran, failed, det, seconds)


def setup_module(module):
    if MODE == "cuda":
        assert mla.has_cuda(), ("torch sees a GPU but %s was built without CUDA kernels; rebuild with nvcc "
                                "(make lib)" % mla.library_path())


# ------------------------------------------------------------------------------------------------
# Inputs: one random pool per run, sliced per case
# ------------------------------------------------------------------------------------------------

def _needs(c):
    lengths = c.lengths()
    pages = sum((L + PAGE - 1) // PAGE for L in lengths) + 3
    return pages * PAGE * c.h_kv * D_QK, c.b * c.s_q * c.h_q * D_QK


_POOL = {}


def _pool():
    """(k_pool, q_pool): bf16 randn/10 clamped to +-1, drawn once on DEVICE in chunks."""
    if not _POOL:
        need_k = need_q = 0
        for c in CASES:
            k, q = _needs(c)
            need_k, need_q = max(need_k, k), max(need_q, q)
        gen = torch.Generator(device=DEVICE).manual_seed(20260601)
        pools = []
        for n in (need_k + need_k // 2 + (1 << 22), 2 * need_q + (1 << 20)):
            p = torch.empty(n, dtype=BF16, device=DEVICE)
            chunk = 1 << 26
            for at in range(0, n, chunk):
                m = min(chunk, n - at)
                p[at:at + m].copy_((torch.randn(m, generator=gen, device=DEVICE) / 10).clamp_(-1, 1))
            pools.append(p)
        _POOL["k"], _POOL["q"] = pools
    return _POOL["k"], _POOL["q"]


def make_inputs(c, lengths):
    """q, k_cache, block_table, cache_seqlens on DEVICE per spec §6 (see the module docstring)."""
    kpool, qpool = _pool()
    rng = random.Random(c.seed + 17)
    b = c.b
    npages = [(L + PAGE - 1) // PAGE for L in lengths]
    total = sum(npages)
    num_pages = total + 3                                   # a few pages nobody uses (NaN)
    max_pages = max(max(npages), 1) + 2                     # and garbage columns past every request
    perm = torch.randperm(num_pages, generator=torch.Generator().manual_seed(c.seed))
    Lt = torch.tensor(lengths, dtype=torch.int64)
    col = torch.arange(max_pages, dtype=torch.int64)
    used = col[None, :] < torch.tensor(npages, dtype=torch.int64)[:, None]          # [b, max_pages]
    bt = torch.full((b, max_pages), GARBAGE, dtype=torch.int32)
    bt[used] = perm[:total].to(torch.int32)                                          # row-major order
    rows_valid = torch.zeros(num_pages, dtype=torch.int64)                           # per physical page
    rows_valid[perm[:total]] = (Lt[:, None] - col[None, :] * PAGE).clamp(0, PAGE)[used]

    nk = num_pages * PAGE * c.h_kv * D_QK
    nq = b * c.s_q * c.h_q * D_QK
    ok = rng.randrange(0, kpool.numel() - nk + 1)
    oq = rng.randrange(0, qpool.numel() - nq + 1)
    k = kpool[ok:ok + nk].view(num_pages, PAGE, c.h_kv, D_QK).to(c.dtype, copy=True)
    q = qpool[oq:oq + nq].view(b, c.s_q, c.h_q, D_QK).to(c.dtype, copy=True)
    bad_rows = torch.arange(PAGE)[None, :] >= rows_valid[:, None]                     # [num_pages, PAGE]
    k.masked_fill_(bad_rows.to(DEVICE)[:, :, None, None], float("nan"))
    return q, k, bt.to(DEVICE), torch.tensor(lengths, dtype=torch.int32, device=DEVICE)


# ------------------------------------------------------------------------------------------------
# fp32 reference, batched over requests
# ------------------------------------------------------------------------------------------------

REF_BUDGET_BYTES = (3 << 30) if MODE == "cuda" else (256 << 20)


def reference(q, k_cache, block_table, lengths, causal, softmax_scale, d_v=D_V):
    """out [b, s_q, h_q, d_v] fp32, lse [b, h_q, s_q] fp32 (see the module docstring). Requests are
    sorted by length and processed in chunks padded to the chunk's longest; padded keys are
    zeroed and masked to -inf, so the cache's NaN rows never enter."""
    dev = q.device
    b, s_q, h_q, d = q.shape
    page, h_kv = k_cache.shape[1], k_cache.shape[2]
    g = h_q // h_kv
    out = torch.zeros(b, s_q, h_q, d_v, dtype=torch.float32, device=dev)
    lse = torch.full((b, h_q, s_q), math.inf, dtype=torch.float32, device=dev)
    order = sorted((i for i in range(b) if lengths[i] > 0), key=lambda i: lengths[i])
    per_key = 4 * (2 * h_kv * d + 2 * h_q * s_q)          # bytes per padded key per request
    at = 0
    while at < len(order):
        end = at + 1
        while end < len(order):
            Lpad = -(-lengths[order[end]] // page) * page
            if (end + 1 - at) * Lpad * per_key > REF_BUDGET_BYTES:
                break
            end += 1
        idx = order[at:end]
        at = end
        c = len(idx)
        Lmax = lengths[idx[-1]]
        P = -(-Lmax // page)
        Lpad = P * page
        ids = torch.tensor(idx, dtype=torch.int64, device=dev)
        Lc = torch.tensor([lengths[i] for i in idx], dtype=torch.int64, device=dev)
        cols = torch.arange(P, device=dev)
        pages = block_table[ids, :P].long()
        pages = torch.where(cols[None, :] < ((Lc + page - 1) // page)[:, None], pages, torch.zeros_like(pages))
        kv = k_cache[pages].reshape(c, Lpad, h_kv, d).float()                     # [c, Lpad, h_kv, d]
        pos = torch.arange(Lpad, device=dev)
        kv.masked_fill_((pos[None, :] >= Lc[:, None])[:, :, None, None], 0.0)
        kh = kv.permute(0, 2, 1, 3)                                                # [c, h_kv, Lpad, d]
        if h_kv > 1:
            kh = kh.contiguous()
        del kv
        qh = q[ids].float().view(c, s_q, h_kv, g, d).permute(0, 2, 3, 1, 4).reshape(c, h_kv, g * s_q, d)
        s = torch.matmul(qh, kh.transpose(-1, -2)).mul_(softmax_scale)             # [c, h_kv, g*s_q, Lpad]
        s = s.view(c, h_kv, g, s_q, Lpad)
        row = torch.arange(s_q, device=dev)
        last = (Lc[:, None] - s_q + row[None, :]) if causal else (Lc[:, None] - 1).expand(c, s_q)   # [c, s_q]
        hidden = pos[None, None, :] > last[:, :, None]                             # [c, s_q, Lpad]
        s.masked_fill_(hidden[:, None, None, :, :], float("-inf"))
        m = torch.logsumexp(s, dim=-1)                                             # [c, h_kv, g, s_q]
        empty = torch.isneginf(m)
        p = s.sub_(m.masked_fill(empty, 0.0)[..., None]).exp_()                    # -inf -> 0
        o = torch.matmul(p.view(c, h_kv, g * s_q, Lpad), kh[..., :d_v])            # [c, h_kv, g*s_q, d_v]
        del p, s, kh
        out[ids] = o.view(c, h_kv, g, s_q, d_v).permute(0, 3, 1, 2, 4).reshape(c, s_q, h_q, d_v)
        lse[ids] = m.masked_fill(empty, math.inf).reshape(c, h_q, s_q)
        del o, m
    return out, lse


# ------------------------------------------------------------------------------------------------
# FlashMLA-style comparison, on the device
# ------------------------------------------------------------------------------------------------

def compare(name, ans, ref, tol):
    """'' when ans matches ref (FlashMLA's check_is_allclose), else a one-line description."""
    abs_tol, rel_tol, cos_tol = tol
    a = ans.double()
    r = ref.double()
    if a.shape != r.shape:
        return "%s: shape %s != %s" % (name, tuple(a.shape), tuple(r.shape))
    pinf = ((a == math.inf) != (r == math.inf)).sum()
    ninf = ((a == -math.inf) != (r == -math.inf)).sum()
    nan = (torch.isnan(a) != torch.isnan(r)).sum()
    special = torch.isinf(r) | torch.isnan(r)
    a = a.masked_fill(special, 0.0)
    r = r.masked_fill(special, 0.0)
    err = (a - r).abs()
    rel = err / (r.abs() + 1e-6)
    bad = ~((err < abs_tol) | (rel < rel_tol))
    nbad = bad.sum()
    max_abs = err.max() if err.numel() else torch.zeros((), dtype=torch.float64, device=a.device)
    worst_rel = torch.where(err >= abs_tol, rel, torch.zeros_like(rel))
    max_rel = worst_rel.max() if err.numel() else max_abs
    dot = (a * r).sum()
    denom = (a * a + r * r).sum()
    vals = torch.stack([pinf.double(), ninf.double(), nan.double(), nbad.double(), max_abs, max_rel, dot,
                        denom]).tolist()
    pinf, ninf, nan, nbad, max_abs, max_rel, dot, denom = vals
    cos_diff = 0.0 if denom == 0 else 1.0 - 2.0 * dot / denom
    msgs = []
    if pinf or ninf or nan:
        msgs.append("special-value positions differ (+inf %d, -inf %d, nan %d)" % (pinf, ninf, nan))
    if nbad or not (cos_diff <= cos_tol):
        msgs.append("%d/%d elements out of tolerance, max abs %.3g (tol %g), max rel %.3g (tol %.3g), "
                    "cos_diff %.3g (tol %g)" % (nbad, err.numel(), max_abs, abs_tol, max_rel, rel_tol, cos_diff,
                                                cos_tol))
    return ("%s: %s" % (name, "; ".join(msgs))) if msgs else ""


def _call(c, q, k, bt, cs):
    if c.api == "v2":
        md, ns = flash_mla.get_mla_metadata(cs, c.s_q * c.h_q // c.h_kv, c.h_kv)
        return flash_mla.flash_mla_with_kvcache(q, k, bt, cs, D_V, md, ns, None, c.causal)
    sched, _ = flash_mla.get_mla_metadata()
    return flash_mla.flash_mla_with_kvcache(q, k, bt, cs, D_V, sched, causal=c.causal)


def run_case(c):
    """Runs one case; returns '' or the failure description."""
    lengths = c.lengths()
    q, k, bt, cs = make_inputs(c, lengths)
    out, lse = _call(c, q, k, bt, cs)
    problems = []
    if tuple(out.shape) != (c.b, c.s_q, c.h_q, D_V) or out.dtype != c.dtype or out.device != q.device:
        problems.append("out: shape %s dtype %s device %s" % (tuple(out.shape), out.dtype, out.device))
    if tuple(lse.shape) != (c.b, c.h_q, c.s_q) or lse.dtype != torch.float32 or lse.device != q.device:
        problems.append("lse: shape %s dtype %s device %s" % (tuple(lse.shape), lse.dtype, lse.device))
    if problems:
        return "; ".join(problems)
    ref_out, ref_lse = reference(q, k, bt, lengths, c.causal, D_QK ** -0.5)   # the default softmax_scale
    for msg in (compare("out", out, ref_out, OUT_TOL), compare("lse", lse, ref_lse, LSE_TOL)):
        if msg:
            problems.append(msg)
    del ref_out, ref_lse
    if c.determinism:
        out2, lse2 = _call(c, q, k, bt, cs)
        same_out = torch.equal(out.view(torch.int16), out2.view(torch.int16))
        same_lse = torch.equal(lse.contiguous().view(torch.int32), lse2.contiguous().view(torch.int32))
        if not (same_out and same_lse):
            problems.append("determinism: second call differs (out %s, lse %s)" % (
                "same" if same_out else "DIFFERENT", "same" if same_lse else "DIFFERENT"))
    return "; ".join(problems)


def _free():
    gc.collect()
    if MODE == "cuda":
        torch.cuda.empty_cache()


def _record(entry):
    path = os.environ.get("MLA_GRID_SUMMARY")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


_OOM = (getattr(torch.cuda, "OutOfMemoryError", RuntimeError), MemoryError)
STARTED = []          # groups whose test began (a group missing from RESULTS after it started crashed)


@pytest.mark.parametrize("group", GROUPS, ids=lambda g: "sq%d-hq%d-hkv%d" % g)
def test_grid_group(group):
    cases = [c for c in CASES if c.group == group]
    STARTED.append(group)
    failures = []
    ran = det = 0
    t0 = time.time()
    try:
        with torch.no_grad():
            for c in cases:
                try:
                    msg = run_case(c)
                except Exception as e:          # recorded per case; the group goes on
                    msg = "%s: %s" % (type(e).__name__, " ".join(str(e).split())[:400])
                    if isinstance(e, _OOM):
                        _free()
                ran += 1
                det += 1 if c.determinism else 0
                if msg:
                    failures.append("  [%s] %s" % (c.name(), msg))
        try:
            if MODE == "cuda":
                torch.cuda.synchronize()
            _free()
        except Exception as e:
            failures.append("  [after the group] %s: %s" % (type(e).__name__, " ".join(str(e).split())[:400]))
    finally:
        dt = time.time() - t0
        RESULTS[group] = dict(ran=ran, failed=len(failures), det=det, seconds=dt)
    line = "grid %s s_q=%d h_q=%d h_kv=%d: %d cases, %d failed, %d determinism checks, %.2f s" % (
        MODE, group[0], group[1], group[2], ran, len(failures), det, dt)
    print("\n" + line, flush=True)
    _record(dict(mode=MODE, s_q=group[0], h_q=group[1], h_kv=group[2], cases=ran, failed=len(failures),
                 determinism=det, seconds=round(dt, 3), failures=failures))
    if ran != len(cases):
        pytest.fail("%s: ran %d of %d cases" % (line, ran, len(cases)), pytrace=False)
    if failures:
        pytest.fail("%s\n%d of %d cases failed:\n%s" % (line, len(failures), ran, "\n".join(failures)),
                    pytrace=False)


def test_grid_total():
    """Prints the totals; asserts that every case of the grid ran (when every group was selected)."""
    ran = sum(r["ran"] for r in RESULTS.values())
    failed = sum(r["failed"] for r in RESULTS.values())
    det = sum(r["det"] for r in RESULTS.values())
    secs = sum(r["seconds"] for r in RESULTS.values())
    line = ("grid %s total: %d cases run of %d expected (%d of %d groups), %d failed, %d determinism checks, "
            "%.1f s in the groups" % (MODE, ran, EXPECTED[MODE], len(RESULTS), len(GROUPS), failed, det, secs))
    print("\n" + line, flush=True)
    _record(dict(mode=MODE, total=True, cases=ran, expected=EXPECTED[MODE], groups=len(RESULTS), failed=failed,
                 determinism=det, seconds=round(secs, 3)))
    if len(STARTED) < len(GROUPS):
        pytest.skip("only %d of %d groups were selected: total not checked; %s" % (len(STARTED), len(GROUPS), line))
    assert ran == EXPECTED[MODE] == len(CASES), line
