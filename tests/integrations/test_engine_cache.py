"""deepseek_mla paged KV cache: page allocator (free list), block tables, seqlens, writes landing
at the right rows with shuffled pages, freeing finished requests."""
import pytest
import torch

from deepseek_mla import OutOfPages, PageAllocator, PagedKVCache

pytestmark = pytest.mark.usefixtures("dsk_one_thread")


def test_allocator_free_list():
    a = PageAllocator(8)
    p = a.alloc(3)
    assert p == [0, 1, 2] and a.num_free == 5 and a.num_used == 3
    a.free([1])
    q = a.alloc(5)
    assert q == [3, 4, 5, 6, 7] and a.num_free == 1          # freed pages go to the back of the list
    q += a.alloc(1)
    assert q[-1] == 1 and a.num_free == 0
    with pytest.raises(OutOfPages, match="need 1 KV pages, only 0 of 8 free"):
        a.alloc(1)
    a.free([0, 2] + q)
    with pytest.raises(ValueError, match="not allocated"):
        a.free([1])                                           # double free
    assert a.num_free == 8 and a.num_used == 0


def test_allocator_shuffled_is_a_permutation():
    a = PageAllocator(32, shuffle_seed=5)
    p = a.alloc(32)
    assert sorted(p) == list(range(32)) and p != list(range(32))
    assert PageAllocator(32, shuffle_seed=5).alloc(32) == p          # seeded


def test_cache_layout_block_table_seqlens_and_rows():
    c = PagedKVCache(num_layers=2, num_pages=10, page_size=16, head_dim=576, dtype=torch.bfloat16,
                     shuffle_seed=3, fill_value=float("nan"))
    assert c.k_caches[0].shape == (10, 16, 1, 576) and c.k_caches[1].dtype == torch.bfloat16
    g = torch.Generator().manual_seed(0)
    rows = {}
    for rid, n in (("a", 5), ("b", 40), ("c", 16)):
        c.add_request(rid)
        s = c.append(rid, n)
        x = torch.randn(n, 576, generator=g)
        c.write(1, s, x[:, :512], x[:, 512:])
        rows[rid] = x.bfloat16()
    # decode step: one more token for a and b together
    s = c.append_batch(["a", "b"], 1)
    y = torch.randn(2, 576, generator=g)
    c.write(1, s, y[:, :512], y[:, 512:])
    rows["a"] = torch.cat([rows["a"], y[:1].bfloat16()])
    rows["b"] = torch.cat([rows["b"], y[1:].bfloat16()])

    rids = ["a", "b", "c"]
    bt = c.block_table(rids, pad_value=-7)
    sl = c.cache_seqlens(rids)
    assert bt.dtype == torch.int32 and sl.dtype == torch.int32
    assert sl.tolist() == [6, 41, 16]
    assert bt.shape == (3, 3) and bt[0, 1:].tolist() == [-7, -7] and bt[2, 1:].tolist() == [-7, -7]
    used = [p for r in rids for p in c.pages(r)]
    assert len(used) == len(set(used)) == 5 and c.allocator.num_free == 5
    assert used != sorted(used)                                     # shuffled physical pages
    for i, r in enumerate(rids):
        # token t of request r is at k_cache[block_table[i, t // page], t % page] (flash_mla's rule)
        for t in range(int(sl[i])):
            got = c.k_caches[1][int(bt[i, t // 16]), t % 16, 0]
            assert torch.equal(got, rows[r][t]), (r, t)
        assert torch.equal(c.gather(1, r), rows[r])
    assert torch.isnan(c.k_caches[0]).all()                         # layer 0 untouched
    # freeing returns the pages; a new request reuses them
    c.free("b")
    assert c.allocator.num_free == 8 and not c.has_request("b")
    c.add_request("d")
    c.append("d", 100)
    assert c.allocator.num_free == 1 and c.seqlen("d") == 100
    with pytest.raises(OutOfPages):
        c.append_batch(["a", "c", "d"], 20)                         # all-or-nothing
    assert c.seqlen("a") == 6 and c.seqlen("d") == 100 and c.allocator.num_free == 1
    for r in ("a", "c", "d"):
        c.free(r)
    assert c.allocator.num_free == 10 and c.requests == []


def test_reserve_and_fixed_width_block_table():
    c = PagedKVCache(1, 6, 64, 576, torch.float32)
    c.add_request(0)
    c.reserve(0, 129)                       # 3 pages, no tokens yet
    assert c.seqlen(0) == 0 and len(c.pages(0)) == 3
    s = c.append(0, 65)
    assert s.tolist()[63:] == [c.pages(0)[0] * 64 + 63, c.pages(0)[1] * 64]
    bt = c.block_table([0], max_pages=5, pad_value=2147480000)
    assert bt.shape == (1, 5) and bt[0, 3:].tolist() == [2147480000] * 2
    with pytest.raises(ValueError, match="max_pages"):
        c.block_table([0], max_pages=2)
    with pytest.raises(ValueError, match="already"):
        c.add_request(0)
