import torch, time
torch.manual_seed(0)
for (b, hq, sq, L) in [(4,16,1,944),(4,128,1,1368),(16,16,1,3473),(1,128,1,9143),(8,128,1,5957)]:
    q = torch.randn(b, sq*hq, 576, dtype=torch.bfloat16)
    k = torch.randn(b, L, 576, dtype=torch.bfloat16)
    def g(q,k):
        s = torch.matmul(q, k.transpose(1,2)) * 0.04
        p = torch.softmax(s.float(), -1).bfloat16()
        return torch.matmul(p, k[..., :512])
    g(q,k); ts=[]
    for _ in range(7):
        t=time.perf_counter(); g(q,k); ts.append(time.perf_counter()-t)
    ts.sort(); t=ts[3]
    print(f"b={b} h_q={hq} L={L}: torch bf16 matmul+softmax (contiguous K, no pages) {t*1e6:.0f} us, {b*hq*sq*L*1088*2/t/1e12:.3f} TFLOPS")
